package sigbatch_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
	voicache "github.com/oasisprotocol/curve25519-voi/primitives/ed25519/extra/cache"

	"github.com/prdcredit/ccnode/credit/sigbatch"
)

type sig struct{ pub, msg, sig []byte }

// signed makes n signatures by 5 signers, as a batch of receipts from a
// few banks and regions would hold.
func signed(n int) []sig {
	out := make([]sig, n)
	for i := range out {
		seed := sha256.Sum256(fmt.Appendf(nil, "signer-%d", i%5))
		k := ed25519.NewKeyFromSeed(seed[:])
		msg := fmt.Appendf(nil, "message %d", i)
		out[i] = sig{k.Public().(ed25519.PublicKey), msg, ed25519.Sign(k, msg)}
	}
	return out
}

func TestBatch(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		tamper func([]sig)
		bad    []int
	}{
		{"empty", 0, func([]sig) {}, nil},
		{"all good", 64, func([]sig) {}, nil},
		{"one", 1, func([]sig) {}, nil},
		{"one bad", 1, func(c []sig) { c[0].msg = []byte("other") }, []int{0}},
		{"altered message", 64, func(c []sig) { c[7].msg = []byte("other") }, []int{7}},
		{"wrong key", 64, func(c []sig) { c[3].pub = c[4].pub }, []int{3}},
		{"swapped signatures", 64, func(c []sig) { c[1].sig, c[2].sig = c[2].sig, c[1].sig }, []int{1, 2}},
		{"s not canonical", 64, func(c []sig) {
			s := append([]byte(nil), c[9].sig...)
			s[63] |= 0xf0
			c[9].sig = s
		}, []int{9}},
		{"R not a point", 64, func(c []sig) {
			s := append([]byte(nil), c[11].sig...)
			for i := range 32 {
				s[i] = 0xff
			}
			c[11].sig = s
		}, []int{11}},
		{"short signature", 64, func(c []sig) { c[5].sig = c[5].sig[:10] }, []int{5}},
		{"bad key bytes", 64, func(c []sig) { c[6].pub = make([]byte, 3) }, []int{6}},
		{"repeated", 64, func(c []sig) { c[10], c[20] = c[30], c[30] }, nil},
		{"repeated, one copy altered", 64, func(c []sig) {
			c[10], c[20] = c[30], c[30]
			c[20].msg = []byte("other")
		}, []int{20}},
		{"repeated bad", 64, func(c []sig) {
			c[30].msg = []byte("other")
			c[10], c[20] = c[30], c[30]
		}, []int{10, 20, 30}},
		{"same signature, other key", 64, func(c []sig) {
			c[10] = c[30]
			c[10].pub = c[31].pub
		}, []int{10}},
		{"many bad", 200, func(c []sig) {
			for i := 0; i < 200; i += 17 {
				c[i].msg = []byte("other")
			}
		}, []int{0, 17, 34, 51, 68, 85, 102, 119, 136, 153, 170, 187}},
		{"all bad", 20, func(c []sig) {
			for i := range c {
				c[i].msg = []byte("other")
			}
		}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}},
	}
	var v sigbatch.Verifier
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := signed(tc.n)
			tc.tamper(c)
			b := v.NewBatch(len(c))
			for _, s := range c {
				b.Add(s.pub, s.msg, s.sig)
			}
			if b.Len() != len(c) {
				t.Fatalf("Len = %d, want %d", b.Len(), len(c))
			}
			ok, all := b.Verify()
			if len(ok) != len(c) {
				t.Fatalf("Verify returned %d results for %d signatures", len(ok), len(c))
			}
			if all != (len(tc.bad) == 0) {
				t.Errorf("all = %v with %d bad signatures", all, len(tc.bad))
			}
			for i := range c {
				wantOK := true
				for _, bad := range tc.bad {
					if bad == i {
						wantOK = false
					}
				}
				if ok[i] != wantOK {
					t.Errorf("signature %d: ok=%v, want %v", i, ok[i], wantOK)
				}
				if std := len(c[i].pub) == ed25519.PublicKeySize && ed25519.Verify(c[i].pub, c[i].msg, c[i].sig); std != ok[i] {
					t.Errorf("signature %d: ok=%v, crypto/ed25519 says %v", i, ok[i], std)
				}
			}
		})
	}
}

func TestBatchReset(t *testing.T) {
	var v sigbatch.Verifier
	c := signed(16)
	b := v.NewBatch(0)
	b.Add(c[0].pub, []byte("other"), c[0].sig)
	if _, all := b.Verify(); all {
		t.Fatal("a bad signature verified")
	}
	b.Reset()
	for _, s := range c {
		b.Add(s.pub, s.msg, s.sig)
	}
	if ok, all := b.Verify(); !all || len(ok) != len(c) {
		t.Fatalf("after Reset: all=%v len=%d, want true %d", all, len(ok), len(c))
	}
}

// TestConcurrent shares one Verifier (and its key cache) between
// goroutines, as a node verifying concurrent requests does; run with -race.
func TestConcurrent(t *testing.T) {
	var v sigbatch.Verifier
	c := signed(40)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			b := v.NewBatch(len(c))
			for i, s := range c {
				if i == g {
					b.Add(s.pub, []byte("other"), s.sig)
					continue
				}
				b.Add(s.pub, s.msg, s.sig)
			}
			ok, _ := b.Verify()
			for i := range ok {
				if ok[i] != (i != g) {
					t.Errorf("goroutine %d, signature %d: ok=%v", g, i, ok[i])
				}
			}
		})
	}
	wg.Wait()
}

// TestReferenceAgrees checks the batch against a second implementation of
// the batch equation (handBatch) on good and altered batches.
func TestReferenceAgrees(t *testing.T) {
	var v sigbatch.Verifier
	var hb handBatch
	for _, n := range []int{2, 50, 300} {
		for bad := -1; bad < n; bad += 1 + n/3 {
			c := signed(n)
			if bad >= 0 {
				c[bad].msg = []byte("other")
			}
			b := v.NewBatch(n)
			for _, s := range c {
				b.Add(s.pub, s.msg, s.sig)
			}
			_, all := b.Verify()
			if ref := hb.verify(c); all != ref || all != (bad < 0) {
				t.Errorf("n=%d bad=%d: sigbatch says %v, reference %v", n, bad, all, ref)
			}
		}
	}
}

// BenchmarkVerify compares, on the same signatures by 5 signers, one-by-one
// verification with crypto/ed25519, this package's batch (per-key sums on
// curve25519-voi's arithmetic), curve25519-voi's own BatchVerifier with its
// cache of expanded keys, and the batch on filippo.io/edwards25519 that
// node/audit used before.
func BenchmarkVerify(b *testing.B) {
	for _, n := range []int{2, 4, 8, 64, 384, 1536} {
		c := signed(n)
		// cpu-µs/sig is the process's CPU time per signature, steadier
		// than wall time on a machine shared with other work.
		var cpu0 time.Duration
		perSig := func(b *testing.B) {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(c))/1000, "µs/sig")
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N*len(c))/1000, "cpu-µs/sig")
		}
		b.Run(fmt.Sprintf("n=%d/crypto-ed25519", n), func(b *testing.B) {
			cpu0 = cpuTime()
			for b.Loop() {
				for _, s := range c {
					ed25519.Verify(s.pub, s.msg, s.sig)
				}
			}
			perSig(b)
		})
		b.Run(fmt.Sprintf("n=%d/sigbatch", n), func(b *testing.B) {
			cpu0 = cpuTime()
			var v sigbatch.Verifier
			bt := v.NewBatch(len(c))
			for b.Loop() {
				bt.Reset()
				for _, s := range c {
					bt.Add(s.pub, s.msg, s.sig)
				}
				if _, all := bt.Verify(); !all {
					b.Fatal("batch failed")
				}
			}
			perSig(b)
		})
		b.Run(fmt.Sprintf("n=%d/voi-BatchVerifier", n), func(b *testing.B) {
			cpu0 = cpuTime()
			cv := voicache.NewVerifier(voicache.NewLRUCache(64))
			bv := voi.NewBatchVerifierWithCapacity(len(c))
			for b.Loop() {
				bv.Reset()
				for _, s := range c {
					cv.Add(bv, s.pub, s.msg, s.sig)
				}
				if !bv.VerifyBatchOnly(nil) {
					b.Fatal("batch failed")
				}
			}
			perSig(b)
		})
		b.Run(fmt.Sprintf("n=%d/edwards25519-hand", n), func(b *testing.B) {
			cpu0 = cpuTime()
			var hb handBatch
			for b.Loop() {
				if !hb.verify(c) {
					b.Fatal("batch failed")
				}
			}
			perSig(b)
		})
	}
}

// cpuTime is the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
