package p2p_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/p2p"
)

// gated holds every answer until n of them are waiting at once, so a test
// knows that n requests from one peer were in progress together on the
// answering host.
type gated struct {
	n int

	mu      sync.Mutex
	waiting int
	all     chan struct{}
}

func (g *gated) wait(ctx context.Context) error {
	g.mu.Lock()
	g.waiting++
	if g.waiting == g.n {
		close(g.all)
	}
	g.mu.Unlock()
	select {
	case <-g.all:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestManyInFlightFromOnePeer: a home region with more queries in flight
// to one answering region than go-libp2p's default per-protocol stream
// limit for a peer (64 inbound) gets every one answered, on TCP and QUIC.
func TestManyInFlightFromOnePeer(t *testing.T) {
	if testing.Short() {
		t.Skip("real transports on loopback")
	}
	const inflight = 160
	for _, tt := range []struct{ name, listen string }{
		{"tcp", "/ip4/127.0.0.1/tcp/0"},
		{"quic", "/ip4/127.0.0.1/udp/0/quic-v1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			home, ans := newRegion(t, 0), newRegion(t, 1)
			homeMembers, ansMembers := p2p.NewMembership(testkit.LoggerAt(t, slog.LevelDebug), nil), p2p.NewMembership(testkit.LoggerAt(t, slog.LevelDebug), nil)
			homeHost := newTestHost(t, home, tt.listen, homeMembers)
			ansHost := newTestHost(t, ans, tt.listen, ansMembers)
			var members []credit.RegionMember
			for _, x := range []struct {
				r region
				h host.Host
			}{{home, homeHost}, {ans, ansHost}} {
				m := x.r.Member
				for _, a := range x.h.Addrs() {
					m.Addrs = append(m.Addrs, a.String())
				}
				members = append(members, m)
			}
			for _, m := range []*p2p.Membership{homeMembers, ansMembers} {
				if err := m.SetMembers(members); err != nil {
					t.Fatal(err)
				}
			}
			subject := testSubject(t)
			inner := answering(t, ans, testRecords(subject, 5, true), 5)
			g := &gated{n: inflight, all: make(chan struct{})}
			h := &handler{answer: func(ctx context.Context, from peer.ID, req *p2p.Request, w p2p.AnswerWriter) error {
				if err := g.wait(ctx); err != nil {
					return err
				}
				return inner.answer(ctx, from, req, w)
			}}
			srv, err := p2p.NewServer(p2p.ServerConfig{NetworkID: testNet, Handler: h, Timeout: 20 * time.Second, Logger: testkit.LoggerAt(t, slog.LevelDebug)})
			if err != nil {
				t.Fatal(err)
			}
			srv.Register(ansHost)
			t.Cleanup(func() { srv.Close() })
			c, err := p2p.NewClient(p2p.ClientConfig{Host: homeHost, NetworkID: testNet, Members: homeMembers, Timeout: 20 * time.Second, Logger: testkit.LoggerAt(t, slog.LevelDebug)})
			if err != nil {
				t.Fatal(err)
			}
			reqs := make([][]byte, inflight)
			for i := range reqs {
				_, qj := newQuery(t, subject, ans)
				reqs[i] = p2p.EncodeRequest(home.Member.ID, qj)
			}
			errs := make([]error, inflight)
			var wg sync.WaitGroup
			for i := range reqs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = c.Ask(context.Background(), ans.Member.ID, reqs[i], nil)
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("request %d of %d in flight: %v", i, inflight, err)
				}
			}
		})
	}
}

// newTestHost builds a real host for r listening on listen.
func newTestHost(t *testing.T, r region, listen string, m *p2p.Membership) host.Host {
	t.Helper()
	h, err := p2p.NewHost(p2p.HostConfig{Key: r.Key, Listen: []string{listen}, Members: m, Logger: testkit.LoggerAt(t, slog.LevelDebug)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}
