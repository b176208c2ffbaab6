package p2p_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"syscall"
	"testing"
	"time"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/credit/sigbatch"
	"github.com/prdcredit/ccnode/p2p"
	"github.com/prdcredit/ccnode/p2p/p2ptest"
)

// BenchmarkFloor measures, in one run on one machine, each primitive an
// answer of 183 records (~40 KB) needs, so that the CPU per answer of
// p2pbench can be set against what the trust rules require (see
// p2p/cmd/p2pbench/RESULTS.md, "Where the floor is"):
//
//	go test -run x -bench Floor -count 5 ./p2p/
//
// cpu-µs/op (the process's CPU time per operation) is the figure to read
// on a loaded machine.
// Signatures are over messages of a real receipt's size; the 40 KB
// figures are over the answer's own bytes (its canonical form for the
// digest, its wire frame for the ciphers, which see what the transport
// sends).
func BenchmarkFloor(b *testing.B) {
	subject, err := credit.CompleteUSCC("91440100MA5FABCD1")
	if err != nil {
		b.Fatal(err)
	}
	rep := credit.NewReport(subject, p2ptest.Records(subject, 183))
	canonical := rep.AppendCanonical(nil)

	// One real answer, for the wire encoding and the receipt's size: every
	// category asked, as p2pbench asks.
	c := newCluster(b, 2, 2)
	home, reg := c.nodes[0], c.nodes[1]
	reg.store.Put(c.subject, p2ptest.Records(c.subject, 183))
	all := credit.AllCategories()
	g := c.newConsent("consent-floor", c.bank.Member.ID, all, c.now.Add(-time.Hour), c.now.Add(time.Hour), true)
	q := c.query(c.bank, g, all)
	resp, err := reg.server.Answer(context.Background(), home.host.ID(), &p2p.Request{Requester: home.region.Member.ID, Query: *q})
	if err != nil {
		b.Fatal(err)
	}
	wire, err := p2p.EncodeResponse(resp)
	if err != nil {
		b.Fatal(err)
	}
	receiptMsg, err := resp.Receipt.SignedMessage()
	if err != nil {
		b.Fatal(err)
	}
	reqFrame, err := p2p.EncodeRequest(&p2p.Request{Requester: home.region.Member.ID, Query: *q})
	if err != nil {
		b.Fatal(err)
	}

	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	sig := ed25519.Sign(key, receiptMsg)

	run(b, "ed25519-sign", func(b *testing.B) {
		b.SetBytes(int64(len(receiptMsg)))
		for b.Loop() {
			voi.Sign(voi.PrivateKey(key), receiptMsg)
		}
	})
	run(b, "ed25519-verify-kept-key", func(b *testing.B) {
		v := credit.NewSignatureVerifier(16)
		for b.Loop() {
			if !v.Verify(pub, receiptMsg, sig) {
				b.Fatal("verify failed")
			}
		}
	})
	run(b, "ed25519-verify-crypto", func(b *testing.B) {
		for b.Loop() {
			if !ed25519.Verify(pub, receiptMsg, sig) {
				b.Fatal("verify failed")
			}
		}
	})
	for _, n := range []int{8, 32} {
		// n distinct receipts by four signers, as a batch of concurrent
		// answers would hold.
		type signed struct{ pub, msg, sig []byte }
		var sigs []signed
		var keys []ed25519.PrivateKey
		for range 4 {
			_, k, _ := ed25519.GenerateKey(nil)
			keys = append(keys, k)
		}
		for i := range n {
			k := keys[i%len(keys)]
			msg := append(append([]byte(nil), receiptMsg...), byte(i), byte(i>>8))
			sigs = append(sigs, signed{k.Public().(ed25519.PublicKey), msg, ed25519.Sign(k, msg)})
		}
		run(b, fmt.Sprintf("sigbatch-%d", n), func(b *testing.B) {
			cpu0 := cpuTime()
			var v sigbatch.Verifier
			bt := v.NewBatch(n)
			for b.Loop() {
				bt.Reset()
				for _, s := range sigs {
					bt.Add(s.pub, s.msg, s.sig)
				}
				if _, all := bt.Verify(); !all {
					b.Fatal("batch failed")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n)/1000, "µs/sig")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*n)/1000, "cpu-µs/sig")
		})
	}
	run(b, "sha256-canonical-report", func(b *testing.B) {
		b.SetBytes(int64(len(canonical)))
		for b.Loop() {
			sha256.Sum256(canonical)
		}
	})
	run(b, "chacha20poly1305-seal-answer", func(b *testing.B) {
		aead, err := chacha20poly1305.New(make([]byte, chacha20poly1305.KeySize))
		if err != nil {
			b.Fatal(err)
		}
		benchSeal(b, aead, wire)
	})
	for _, bits := range []int{128, 256} {
		run(b, fmt.Sprintf("aes%d-gcm-seal-answer", bits), func(b *testing.B) {
			blk, err := aes.NewCipher(make([]byte, bits/8))
			if err != nil {
				b.Fatal(err)
			}
			aead, err := cipher.NewGCM(blk)
			if err != nil {
				b.Fatal(err)
			}
			benchSeal(b, aead, wire)
		})
	}
	run(b, "report-canonical-encode", func(b *testing.B) {
		buf := make([]byte, 0, 2*len(canonical))
		b.SetBytes(int64(len(canonical)))
		for b.Loop() {
			buf = rep.AppendCanonical(buf[:0])
		}
	})
	run(b, "report-digest", func(b *testing.B) {
		b.SetBytes(int64(len(canonical)))
		for b.Loop() {
			rep.Digest()
		}
	})
	run(b, "answer-wire-encode", func(b *testing.B) {
		b.SetBytes(int64(len(wire)))
		for b.Loop() {
			if _, err := p2p.EncodeResponse(resp); err != nil {
				b.Fatal(err)
			}
		}
	})
	run(b, "answer-wire-decode", func(b *testing.B) {
		b.SetBytes(int64(len(wire)))
		for b.Loop() {
			if _, err := p2p.DecodeResponse(wire); err != nil {
				b.Fatal(err)
			}
		}
	})
	run(b, "request-decode", func(b *testing.B) {
		b.SetBytes(int64(len(reqFrame)))
		for b.Loop() {
			if _, err := p2p.DecodeRequest(reqFrame); err != nil {
				b.Fatal(err)
			}
		}
	})
	run(b, "query-canonical-and-digest", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := q.CanonicalAndDigest(); err != nil {
				b.Fatal(err)
			}
		}
	})
	run(b, "query-signed-message", func(b *testing.B) {
		for b.Loop() {
			if _, err := q.AppendSignedMessage(nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Logf("canonical report %d bytes, answer frame %d bytes, request frame %d bytes, receipt's signed message %d bytes (%s)",
		len(canonical), len(wire), len(reqFrame), len(receiptMsg), time.Now().UTC().Format(time.RFC3339))
}

// run is b.Run that also reports the process's CPU time per operation
// (user and system, from getrusage): on a machine shared with other work
// it moves far less than the wall-clock ns/op.
func run(b *testing.B, name string, f func(b *testing.B)) {
	b.Run(name, func(b *testing.B) {
		cpu0 := cpuTime()
		f(b)
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1000, "cpu-µs/op")
	})
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchSeal(b *testing.B, aead cipher.AEAD, msg []byte) {
	nonce := make([]byte, aead.NonceSize())
	out := make([]byte, 0, len(msg)+aead.Overhead())
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		out = aead.Seal(out[:0], nonce, msg, nil)
	}
}
