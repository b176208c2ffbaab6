//go:build linux

package faults_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/faults"
	"github.com/prdcredit/ccnode/p2p"
)

// hostilePeers checks the peer-facing half of promise 6 against
// Guangzhou's node: a libp2p peer that is no member gets no stream; a
// member relaying another region's bank's query, replaying a request,
// claiming another region, or sending a stale query, and oversized,
// malformed, truncated or never-finished frames are
// each refused with the documented code (README: the libp2p protocols);
// Guangzhou keeps answering Shenzhen meanwhile and its goroutines come
// back down. The test acts as Zhuhai (its process is killed first, so
// the test holds the only host with Zhuhai's key).
func hostilePeers(t *testing.T, c *consortium) {
	ctx := context.Background()
	c.zh().Kill(t)
	led := c.fab.Ledger(t, c.sz().Region)
	regions, err := led.Regions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	members := p2p.NewMembership(quiet, nil)
	if err := members.SetMembers(regions); err != nil {
		t.Fatal(err)
	}
	gzm, err := members.Region(c.gz().Region)
	if err != nil {
		t.Fatal(err)
	}
	gzPeer, err := peer.Decode(gzm.PeerID)
	if err != nil {
		t.Fatal(err)
	}
	var gzAddrs []ma.Multiaddr
	for _, a := range gzm.Addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			t.Fatal(err)
		}
		gzAddrs = append(gzAddrs, m)
	}
	gz := peer.AddrInfo{ID: gzPeer, Addrs: gzAddrs}
	proto := p2p.ReportProtocol(node.DefaultNetworkID)
	newHost := func(key ed25519.PrivateKey) host.Host {
		h, err := p2p.NewHost(p2p.HostConfig{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Members: members, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	m0, err := c.gz().Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gzServes := func(t *testing.T) {
		t.Helper()
		res, err := c.query(ctx)
		if err != nil {
			t.Fatalf("Shenzhen's query during the attack: %v", err)
		}
		if st := statuses(res)[c.gz().Region]; st.Status != node.StatusOK {
			t.Fatalf("Guangzhou during the attack: %s %s %s", st.Status, st.Reason, st.Message)
		}
	}

	t.Run("non-member peer", func(t *testing.T) {
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		h := newHost(key)
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = h.Connect(cctx, gz) // the gater may refuse after the handshake: judged by the stream
		st, err := h.NewStream(cctx, gzPeer, proto)
		if err == nil {
			// A stream that opened must still get nothing: the
			// connection is closed under it.
			p2p.WriteFrame(st, []byte{0})
			_, rerr := p2p.ReadFrame(st, p2p.MaxResponseFrame)
			st.Reset()
			if rerr == nil {
				t.Fatal("a non-member peer got an answer from Guangzhou")
			}
		}
		gzServes(t)
	})

	zhKey, err := node.LoadKeyFile(c.fab.KeyFile(c.zh().Region))
	if err != nil {
		t.Fatal(err)
	}
	zh := newHost(zhKey)
	if err := zh.Connect(ctx, gz); err != nil {
		t.Fatalf("Zhuhai's key connecting to Guangzhou: %v", err)
	}
	// exchange sends one raw request frame on a new report stream and
	// returns the refusal code of the answer ("" for an answer, whose
	// receipt the test as requester deliberately never acknowledges: the
	// audit must and does report it, see revocationUnderLoad).
	exchange := func(t *testing.T, write func(s network.Stream) error) credit.Code {
		t.Helper()
		s, err := zh.NewStream(ctx, gzPeer, proto)
		if err != nil {
			t.Fatalf("stream to Guangzhou: %v", err)
		}
		defer s.Close()
		if err := write(s); err != nil {
			t.Fatalf("writing: %v", err)
		}
		s.CloseWrite()
		b, err := p2p.ReadFrame(s, p2p.MaxResponseFrame)
		if err != nil {
			t.Fatalf("reading Guangzhou's answer: %v", err)
		}
		leaf, _, err := p2p.DecodeResponse(b)
		if r := credit.RefusalOf(err); r != nil {
			return r.Code
		}
		if err != nil {
			t.Fatalf("decoding Guangzhou's answer: %v", err)
		}
		rc, err := credit.DecodeReceipt(leaf)
		if err != nil {
			t.Fatalf("decoding Guangzhou's receipt: %v", err)
		}
		c.unacked[rc.ID] = true
		return ""
	}
	request := func(t *testing.T, req *p2p.Request) func(network.Stream) error {
		qj, _, err := req.Query.CanonicalAndDigest()
		if err != nil {
			t.Fatal(err)
		}
		b := p2p.EncodeRequest(req.Requester, qj)
		return func(s network.Stream) error { _, err := s.Write(b); return err }
	}
	// fresh is a query of Shenzhen's bank, which Zhuhai holds once
	// Shenzhen asks it; own is one of Zhuhai's own bank.
	fresh := func(t *testing.T) credit.Query {
		q, err := c.bank.Query(&c.grant)
		if err != nil {
			t.Fatal(err)
		}
		return *q
	}
	own := func(t *testing.T) credit.Query {
		q, err := c.zhBank.Query(&c.zhGrant)
		if err != nil {
			t.Fatal(err)
		}
		return *q
	}

	t.Run("relayed query", func(t *testing.T) {
		if code := exchange(t, request(t, &p2p.Request{Requester: c.zh().Region, Query: fresh(t)})); code != credit.CodeWrongHomeRegion {
			t.Fatalf("Zhuhai relaying Shenzhen's bank's query: %q, want %q", code, credit.CodeWrongHomeRegion)
		}
		gzServes(t)
	})
	t.Run("replayed request", func(t *testing.T) {
		req := &p2p.Request{Requester: c.zh().Region, Query: own(t)}
		if code := exchange(t, request(t, req)); code != "" {
			t.Fatalf("first request refused: %s", code)
		}
		if code := exchange(t, request(t, req)); code != credit.CodeReplayedNonce {
			t.Fatalf("replayed request: %q, want %q", code, credit.CodeReplayedNonce)
		}
		gzServes(t)
	})
	t.Run("member claiming another region", func(t *testing.T) {
		if code := exchange(t, request(t, &p2p.Request{Requester: c.sz().Region, Query: fresh(t)})); code != credit.CodeNotMember {
			t.Fatalf("Zhuhai claiming Shenzhen: %q, want %q", code, credit.CodeNotMember)
		}
	})
	t.Run("stale query", func(t *testing.T) {
		q := own(t)
		q.Time = q.Time.Add(-time.Hour)
		if err := q.Sign(c.zhBank.Key); err != nil {
			t.Fatal(err)
		}
		if code := exchange(t, request(t, &p2p.Request{Requester: c.zh().Region, Query: q})); code != credit.CodeStaleQuery {
			t.Fatalf("query an hour old: %q, want %q", code, credit.CodeStaleQuery)
		}
	})
	t.Run("oversized frame", func(t *testing.T) {
		code := exchange(t, func(s network.Stream) error {
			hdr := binary.AppendUvarint(nil, 1<<30)
			_, err := s.Write(append(hdr, make([]byte, 1024)...))
			return err
		})
		if code != credit.CodeTooLarge {
			t.Fatalf("a 1 GiB frame header: %q, want %q", code, credit.CodeTooLarge)
		}
		gzServes(t)
	})
	for name, write := range map[string]func(network.Stream) error{
		"garbage frame": func(s network.Stream) error { return p2p.WriteFrame(s, []byte("\xff\xff\xff garbage \x00")) },
		"truncated frame": func(s network.Stream) error {
			_, err := s.Write(append(binary.AppendUvarint(nil, 500), 1, 2, 3))
			return err
		},
		"empty stream": func(s network.Stream) error { return nil },
		"bad varint": func(s network.Stream) error {
			_, err := s.Write([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			if code := exchange(t, write); code != credit.CodeInvalidQuery {
				t.Fatalf("%s: %q, want %q", name, code, credit.CodeInvalidQuery)
			}
		})
	}
	t.Run("never-finished frames", func(t *testing.T) {
		// Streams that start a frame and never finish it: each must be
		// ended by Guangzhou (its per-stream deadline), not held open.
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := zh.NewStream(ctx, gzPeer, proto)
				if err != nil {
					errs <- err
					return
				}
				defer s.Reset()
				s.Write(binary.AppendUvarint(nil, 1000))
				s.SetReadDeadline(time.Now().Add(time.Minute))
				_, err = io.Copy(io.Discard, s)
				if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
					errs <- fmt.Errorf("a never-finished stream was still open after a minute")
				}
			}()
		}
		gzServes(t)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})

	zh.Close()
	var g1 float64
	faults.WaitFor(t, time.Minute, "Guangzhou's goroutines back down", func() (bool, string) {
		m, err := c.gz().Metrics(ctx)
		if err != nil {
			return false, err.Error()
		}
		g1 = m["go_goroutines"]
		return g1 <= m0["go_goroutines"]+20, fmt.Sprintf("%.0f goroutines, %.0f before", g1, m0["go_goroutines"])
	})
	t.Logf("Guangzhou: goroutines %.0f → %.0f, RSS %.0f MiB", m0["go_goroutines"], g1, m0["process_resident_memory_bytes"]/(1<<20))
	c.zh().Start(t)
	c.zh().WaitReady(t, time.Minute)
	c.waitAllAnswer(t, time.Minute)
}
