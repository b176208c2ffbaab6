package p2p_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/p2p"
	"github.com/prdcredit/ccnode/p2p/p2ptest"
)

// gatedSource holds every report read until n of them are waiting at
// once, so a test knows that n requests from one peer were in progress
// together on the answering host.
type gatedSource struct {
	inner *p2ptest.Store
	n     int

	mu      sync.Mutex
	waiting int
	all     chan struct{}
}

func (g *gatedSource) Report(ctx context.Context, u credit.USCC, cats []credit.Category) ([]credit.Record, error) {
	g.mu.Lock()
	g.waiting++
	if g.waiting == g.n {
		close(g.all)
	}
	g.mu.Unlock()
	select {
	case <-g.all:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.inner.Report(ctx, u, cats)
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
			ledger := p2ptest.NewLedger()
			now := time.Now()
			home, err := p2ptest.NewRegion(regionIDs[0], divisions[0])
			if err != nil {
				t.Fatal(err)
			}
			ans, err := p2ptest.NewRegion(regionIDs[1], divisions[1])
			if err != nil {
				t.Fatal(err)
			}
			homeMembers, ansMembers := p2p.NewMembership(testLogger(t), nil), p2p.NewMembership(testLogger(t), nil)
			homeHost := newTestHost(t, home, tt.listen, homeMembers)
			ansHost := newTestHost(t, ans, tt.listen, ansMembers)
			var members []credit.RegionMember
			for _, x := range []struct {
				r p2ptest.Region
				h host.Host
			}{{home, homeHost}, {ans, ansHost}} {
				m := x.r.Member
				for _, a := range x.h.Addrs() {
					m.Addrs = append(m.Addrs, a.String())
				}
				ledger.PutRegion(m)
				members = append(members, m)
			}
			for _, m := range []*p2p.Membership{homeMembers, ansMembers} {
				if err := m.SetMembers(members); err != nil {
					t.Fatal(err)
				}
			}
			bank, err := p2ptest.NewBank("bank-a", home.Member.ID)
			if err != nil {
				t.Fatal(err)
			}
			ledger.PutBank(bank.Member)
			subject, err := credit.CompleteUSCC("91440100MA5FABCD1")
			if err != nil {
				t.Fatal(err)
			}
			cats := credit.AllCategories()
			g, err := p2ptest.Consent("consent-0001", subject, bank.Member.ID, cats, ans, now.Add(-time.Hour), now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if err := ledger.PutConsent(g, now.Add(-time.Hour)); err != nil {
				t.Fatal(err)
			}
			store := p2ptest.NewStore()
			store.Put(subject, p2ptest.Records(subject, 5))
			src := &gatedSource{inner: store, n: inflight, all: make(chan struct{})}
			srv, err := p2p.NewServer(p2p.ServerConfig{NetworkID: testNet, Region: ans.Member.ID, Key: ans.Key,
				Members: ledger, Consent: ledger, Source: src, Receipts: store, Acks: store, Nonces: p2ptest.NewNonces(),
				Timeout: 20 * time.Second, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			srv.Register(ansHost)
			t.Cleanup(func() { srv.Close() })
			rt, err := p2p.NewRouter(p2p.RouterConfig{Host: homeHost, NetworkID: testNet, Region: home.Member.ID, Key: home.Key,
				Members: homeMembers, Timeout: 20 * time.Second, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			qs := make([]*credit.Query, inflight)
			for i := range qs {
				if qs[i], err = p2ptest.Query(bank, g, cats, time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			results := make([]p2p.RegionResult, inflight)
			var wg sync.WaitGroup
			for i := range qs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i] = rt.Ask(context.Background(), ans.Member.ID, qs[i])
				}()
			}
			wg.Wait()
			for i, r := range results {
				if r.Status != p2p.StatusAnswered {
					t.Fatalf("request %d of %d in flight: %s: %v", i, inflight, r.Status, r.Err)
				}
			}
		})
	}
}

// newTestHost builds a real host for r listening on listen.
func newTestHost(t *testing.T, r p2ptest.Region, listen string, m *p2p.Membership) host.Host {
	t.Helper()
	h, err := p2p.NewHost(p2p.HostConfig{Key: r.Key, Listen: []string{listen}, Members: m, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}
