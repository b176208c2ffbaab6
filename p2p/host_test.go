package p2p_test

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/p2p"
	"github.com/prdcredit/ccnode/p2p/p2ptest"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, not waiting a guessed time
	}
}

type realNode struct {
	region  p2ptest.Region
	host    host.Host
	members *p2p.Membership
	store   *p2ptest.Store
	router  *p2p.Router
}

func TestHostConsortiumOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("real transports on loopback")
	}
	psk := make(pnet.PSK, 32)
	rand.Read(psk)
	strangerPSK := make(pnet.PSK, 32)
	rand.Read(strangerPSK)
	tests := []struct {
		name     string
		listen   string
		security string
		psk      pnet.PSK
	}{
		{"tcp noise", "/ip4/127.0.0.1/tcp/0", p2p.SecurityNoise, nil},
		{"tcp tls", "/ip4/127.0.0.1/tcp/0", p2p.SecurityTLS, nil},
		{"quic", "/ip4/127.0.0.1/udp/0/quic-v1", p2p.SecurityNoise, nil},
		{"tcp private network", "/ip4/127.0.0.1/tcp/0", p2p.SecurityNoise, psk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ledger := p2ptest.NewLedger()
			now := time.Now()
			var nodes []*realNode
			for i := 0; i < 4; i++ {
				r, err := p2ptest.NewRegion(regionIDs[i], divisions[i])
				if err != nil {
					t.Fatal(err)
				}
				if i < 3 { // the fourth is not a member
					ledger.PutRegion(r.Member)
				}
				nodes = append(nodes, &realNode{region: r, store: p2ptest.NewStore()})
			}
			for i, nd := range nodes {
				nd.members = p2p.NewMembership(testLogger(t), nil)
				k := tt.psk
				if i == 3 && k != nil {
					k = strangerPSK
				}
				h, err := p2p.NewHost(p2p.HostConfig{Key: nd.region.Key, Listen: []string{tt.listen}, PSK: k, Security: tt.security, Members: nd.members, Logger: testLogger(t)})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { h.Close() })
				nd.host = h
			}
			// Member records carry the real listen addresses; the stranger
			// knows them all and counts itself in.
			var all []credit.RegionMember
			for _, nd := range nodes {
				m := nd.region.Member
				for _, a := range nd.host.Addrs() {
					m.Addrs = append(m.Addrs, a.String())
				}
				if nd != nodes[3] {
					ledger.PutRegion(m)
				}
				all = append(all, m)
			}
			for _, nd := range nodes {
				view := ledger.Regions()
				if nd == nodes[3] {
					view = all
				}
				if err := nd.members.SetMembers(view); err != nil {
					t.Fatal(err)
				}
				srv, err := p2p.NewServer(p2p.ServerConfig{NetworkID: testNet, Region: nd.region.Member.ID, Key: nd.region.Key,
					Members: ledger, Consent: ledger, Source: nd.store, Receipts: nd.store, Acks: nd.store, Nonces: p2ptest.NewNonces(), Logger: testLogger(t)})
				if err != nil {
					t.Fatal(err)
				}
				srv.Register(nd.host)
				t.Cleanup(func() { srv.Close() })
				nd.router, err = p2p.NewRouter(p2p.RouterConfig{Host: nd.host, NetworkID: testNet, Region: nd.region.Member.ID, Key: nd.region.Key, Members: nd.members, Local: srv, Timeout: 5 * time.Second, Logger: testLogger(t)})
				if err != nil {
					t.Fatal(err)
				}
			}
			bank, _ := p2ptest.NewBank("bank-a", regionIDs[0])
			ledger.PutBank(bank.Member)
			subject, _ := credit.CompleteUSCC("91440100MA5FABCD1")
			cats := credit.AllCategories()
			g, err := p2ptest.Consent("consent-0001", subject, bank.Member.ID, cats, nodes[1].region, now.Add(-time.Hour), now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if err := ledger.PutConsent(g, now.Add(-time.Hour)); err != nil {
				t.Fatal(err)
			}
			nodes[1].store.Put(subject, p2ptest.Records(subject, 183))
			ask := func(from *realNode) map[credit.RegionID]p2p.RegionResult {
				q, err := p2ptest.Query(bank, g, cats, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				return byRegion(t, from.router.QueryRegions(context.Background(), q, []credit.RegionID{regionIDs[0], regionIDs[1], regionIDs[2]}))
			}

			// Members reach each other with no explicit connect: addresses
			// come from the member records.
			got := ask(nodes[0])
			if r := got[regionIDs[1]]; r.Status != p2p.StatusAnswered || r.Report.Count() != 183 {
				t.Fatalf("registration region: %s %v", r.Status, r.Err)
			}
			if r := got[regionIDs[2]]; r.Status != p2p.StatusNoData {
				t.Fatalf("third region: %s %v", r.Status, r.Err)
			}
			if _, err := nodes[0].router.Ack(context.Background(), got[regionIDs[1]].Receipt); err != nil {
				t.Fatalf("ack: %v", err)
			}

			// The stranger is refused at connection time, whatever Connect
			// says: no member ever holds a connection to it.
			stranger := nodes[3]
			for _, nd := range nodes[:3] {
				_ = stranger.host.Connect(context.Background(), peer.AddrInfo{ID: nd.host.ID(), Addrs: nd.host.Addrs()})
				if n := len(nd.host.Network().ConnsToPeer(stranger.host.ID())); n != 0 {
					t.Errorf("member %s holds %d connections to the stranger", nd.region.Member.ID, n)
				}
				waitFor(t, "the stranger to see its connection closed", func() bool {
					return stranger.host.Network().Connectedness(nd.host.ID()) != network.Connected
				})
			}
			if err := nodes[0].host.Connect(context.Background(), peer.AddrInfo{ID: stranger.host.ID(), Addrs: stranger.host.Addrs()}); err == nil {
				t.Error("a member dialled the stranger")
			}
			q, _ := p2ptest.Query(bank, g, cats, time.Now())
			if r := stranger.router.Ask(context.Background(), regionIDs[1], q); r.Status == p2p.StatusAnswered || r.Status == p2p.StatusNoData {
				t.Fatalf("the stranger got an answer: %s", r.Status)
			}

			// Region 2 retires on the ledger: the others cut it off and
			// refuse it, and stop asking it.
			retired := nodes[2].region.Member
			retired.Status = credit.StatusRetired
			ledger.PutRegion(retired)
			for _, nd := range nodes[:2] {
				if err := nd.members.SetMembers(ledger.Regions()); err != nil {
					t.Fatal(err)
				}
			}
			for _, nd := range nodes[:2] {
				waitFor(t, "the retired region to be disconnected", func() bool {
					return nd.host.Network().Connectedness(nodes[2].host.ID()) != network.Connected
				})
			}
			q, _ = p2ptest.Query(bank, g, cats, time.Now())
			if r := nodes[2].router.Ask(context.Background(), regionIDs[1], q); r.Status == p2p.StatusAnswered || r.Status == p2p.StatusNoData {
				t.Fatalf("the retired region got an answer: %s", r.Status)
			}
			if n := len(nodes[1].host.Network().ConnsToPeer(nodes[2].host.ID())); n != 0 {
				t.Errorf("a member holds %d connections to the retired region", n)
			}
			got = ask(nodes[0])
			if r := got[regionIDs[2]]; r.Status != p2p.StatusUnreachable {
				t.Errorf("retired region asked: %s", r.Status)
			}
			if r := got[regionIDs[1]]; r.Status != p2p.StatusAnswered {
				t.Errorf("after the retirement: %s %v", r.Status, r.Err)
			}
		})
	}
}

func TestHostConfigErrors(t *testing.T) {
	_, key, _ := p2ptestKey(t)
	psk := make(pnet.PSK, 32)
	m := p2p.NewMembership(nil, nil)
	tests := []struct {
		name  string
		cfg   p2p.HostConfig
		field string
		is    error
	}{
		{"quic with psk", p2p.HostConfig{Key: key, Members: m, PSK: psk, Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}}, "listen", p2p.ErrQUICWithPSK},
		{"no key", p2p.HostConfig{Members: m}, "key", p2p.ErrBadKey},
		{"no gater", p2p.HostConfig{Key: key}, "members", nil},
		{"bad listen", p2p.HostConfig{Key: key, Members: m, Listen: []string{"tcp://x"}}, "listen", nil},
		{"short psk", p2p.HostConfig{Key: key, Members: m, PSK: psk[:5]}, "psk", nil},
		{"unknown security", p2p.HostConfig{Key: key, Members: m, Security: "ssl3"}, "security", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := p2p.NewHost(tt.cfg)
			if err == nil {
				h.Close()
				t.Fatal("accepted")
			}
			var ce *p2p.ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field {
				t.Fatalf("%v, want a ConfigError on %s", err, tt.field)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("%v, want %v", err, tt.is)
			}
		})
	}
}

func p2ptestKey(t *testing.T) (credit.RegionID, []byte, peer.ID) {
	t.Helper()
	r, err := p2ptest.NewRegion("440300", "4403")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.Decode(r.Member.PeerID)
	return r.Member.ID, r.Key, id
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "node.key")
	k1, err := p2p.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	k2, err := p2p.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Fatal("reloading gave another key")
	}
	bad := filepath.Join(t.TempDir(), "bad.key")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	if _, err := p2p.LoadOrCreateKey(bad); !errors.Is(err, p2p.ErrBadKey) {
		t.Fatalf("bad key file: %v", err)
	}
}

func TestSetMembersRejectsMismatchedKey(t *testing.T) {
	a, _ := p2ptest.NewRegion("440300", "4403")
	b, _ := p2ptest.NewRegion("440100", "4401")
	c, _ := p2ptest.NewRegion("440400", "4404")
	forged := b.Member
	forged.PubKey = c.Member.PubKey // b's peer id with c's key
	m := p2p.NewMembership(nil, nil)
	err := m.SetMembers([]credit.RegionMember{a.Member, forged})
	if !errors.Is(err, p2p.ErrMemberKey) {
		t.Fatalf("SetMembers: %v, want ErrMemberKey", err)
	}
	pa, _ := peer.Decode(a.Member.PeerID)
	pb, _ := peer.Decode(b.Member.PeerID)
	if !m.Admits(pa) || m.Admits(pb) {
		t.Fatal("wrong peers admitted")
	}
	if got := m.Active(); len(got) != 1 || got[0].ID != a.Member.ID {
		t.Fatalf("active %v", got)
	}
	u, _ := credit.CompleteUSCC("91440300MA5FABCD1")
	if r, ok := m.RegistrationRegion(u); !ok || r != a.Member.ID {
		t.Fatalf("registration region %s %v", r, ok)
	}
}

func TestConnectorReconnects(t *testing.T) {
	if testing.Short() {
		t.Skip("real transports on loopback")
	}
	var regs []p2ptest.Region
	var hosts []host.Host
	var views []*p2p.Membership
	for i := 0; i < 2; i++ {
		r, _ := p2ptest.NewRegion(regionIDs[i], divisions[i])
		m := p2p.NewMembership(testLogger(t), nil)
		h, err := p2p.NewHost(p2p.HostConfig{Key: r.Key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Members: m})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		r.Member.Addrs = []string{h.Addrs()[0].String()}
		regs, hosts, views = append(regs, r), append(hosts, h), append(views, m)
	}
	for _, m := range views {
		if err := m.SetMembers([]credit.RegionMember{regs[0].Member, regs[1].Member}); err != nil {
			t.Fatal(err)
		}
	}
	var conns atomic.Int32
	hosts[1].Network().Notify(&network.NotifyBundle{ConnectedF: func(network.Network, network.Conn) { conns.Add(1) }})
	c := p2p.NewConnector(hosts[0], views[0], 20*time.Millisecond, 200*time.Millisecond, testLogger(t))
	defer c.Close()
	waitFor(t, "the connector to connect", func() bool { return conns.Load() >= 1 })
	// The other side drops the connection: the connector dials again.
	if err := hosts[1].Network().ClosePeer(hosts[0].ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the connector to reconnect", func() bool {
		return conns.Load() >= 2 && hosts[0].Network().Connectedness(hosts[1].ID()) == network.Connected
	})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c.Close() // twice is fine
}

// TestDefaultSecurityIsTLS: two hosts with the default settings secure
// their TCP connection with TLS 1.3, and a host that prefers Noise still
// reaches a default one (each offers the other handshake second).
func TestDefaultSecurityIsTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("real transports on loopback")
	}
	tests := []struct {
		name, dialer, want string
	}{
		{"both default", "", "/tls/1.0.0"},
		{"dialer prefers noise", p2p.SecurityNoise, "/noise"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := p2ptest.NewRegion(regionIDs[0], divisions[0])
			if err != nil {
				t.Fatal(err)
			}
			b, err := p2ptest.NewRegion(regionIDs[1], divisions[1])
			if err != nil {
				t.Fatal(err)
			}
			listen := p2p.NewMembership(testLogger(t), nil)
			lh, err := p2p.NewHost(p2p.HostConfig{Key: b.Key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Members: listen, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { lh.Close() })
			dial := p2p.NewMembership(testLogger(t), nil)
			dh, err := p2p.NewHost(p2p.HostConfig{Key: a.Key, Security: tt.dialer, Members: dial, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { dh.Close() })
			bm := b.Member
			for _, ad := range lh.Addrs() {
				bm.Addrs = append(bm.Addrs, ad.String())
			}
			for _, m := range []*p2p.Membership{listen, dial} {
				if err := m.SetMembers([]credit.RegionMember{a.Member, bm}); err != nil {
					t.Fatal(err)
				}
			}
			if err := dh.Connect(context.Background(), peer.AddrInfo{ID: lh.ID(), Addrs: lh.Addrs()}); err != nil {
				t.Fatal(err)
			}
			conns := dh.Network().ConnsToPeer(lh.ID())
			if len(conns) == 0 {
				t.Fatal("no connection")
			}
			if got := string(conns[0].ConnState().Security); got != tt.want {
				t.Fatalf("security %q, want %q", got, tt.want)
			}
		})
	}
}
