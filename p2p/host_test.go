package p2p_test

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
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
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/p2p"
)

type realNode struct {
	region  region
	host    host.Host
	members *p2p.Membership
	client  *p2p.Client
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
			var nodes []*realNode
			for i := 0; i < 4; i++ { // the fourth is not a member
				nodes = append(nodes, &realNode{region: newRegion(t, i)})
			}
			for i, nd := range nodes {
				nd.members = p2p.NewMembership(testkit.LoggerAt(t, slog.LevelDebug), nil)
				k := tt.psk
				if i == 3 && k != nil {
					k = strangerPSK
				}
				h, err := p2p.NewHost(p2p.HostConfig{Key: nd.region.Key, Listen: []string{tt.listen}, PSK: k, Security: tt.security, Members: nd.members, Logger: testkit.LoggerAt(t, slog.LevelDebug)})
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
				all = append(all, m)
			}
			subject := testSubject(t)
			for i, nd := range nodes {
				view := all[:3]
				if nd == nodes[3] {
					view = all
				}
				if err := nd.members.SetMembers(view); err != nil {
					t.Fatal(err)
				}
				recs := testRecords(subject, 183*(i%2), true) // region 1 holds the subject's records
				srv, err := p2p.NewServer(p2p.ServerConfig{NetworkID: testNet, Handler: answering(t, nd.region, recs, 64), Logger: testkit.LoggerAt(t, slog.LevelDebug)})
				if err != nil {
					t.Fatal(err)
				}
				srv.Register(nd.host)
				t.Cleanup(func() { srv.Close() })
				nd.client, err = p2p.NewClient(p2p.ClientConfig{Host: nd.host, NetworkID: testNet, Members: nd.members, Timeout: 5 * time.Second, Logger: testkit.LoggerAt(t, slog.LevelDebug)})
				if err != nil {
					t.Fatal(err)
				}
			}
			// Every answer is acknowledged on its stream.
			ask := func(from *realNode, to credit.RegionID) (*p2p.Reply, error) {
				_, qj := newQuery(t, subject, nodes[1].region)
				return from.client.Ask(context.Background(), to, p2p.EncodeRequest(from.region.Member.ID, qj), func(r *p2p.Reply) *credit.Ack {
					ack, err := credit.NewAck(&r.Receipt, from.region.Member.ID, time.Now(), from.region.Key)
					if err != nil {
						t.Error(err)
						return nil
					}
					return &ack
				})
			}

			// Members reach each other with no explicit connect: addresses
			// come from the member records.
			r, err := ask(nodes[0], regionIDs[1])
			if err != nil || len(r.Records) != 183 || !r.Acked || r.AckOutcome() != nil {
				t.Fatalf("registration region: %v, %+v", err, r)
			}
			if r, err := ask(nodes[0], regionIDs[2]); err != nil || len(r.Records) != 0 || r.AckOutcome() != nil {
				t.Fatalf("third region: %v", err)
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
			if _, err := ask(stranger, regionIDs[1]); !errors.Is(err, p2p.ErrUnreachable) {
				t.Fatalf("the stranger: %v", err)
			}

			// Region 2 retires on the ledger: the others cut it off and
			// refuse it, and stop asking it.
			retired := all[2]
			retired.Status = credit.StatusRetired
			for _, nd := range nodes[:2] {
				if err := nd.members.SetMembers([]credit.RegionMember{all[0], all[1], retired}); err != nil {
					t.Fatal(err)
				}
			}
			for _, nd := range nodes[:2] {
				waitFor(t, "the retired region to be disconnected", func() bool {
					return nd.host.Network().Connectedness(nodes[2].host.ID()) != network.Connected
				})
			}
			if _, err := ask(nodes[2], regionIDs[1]); !errors.Is(err, p2p.ErrUnreachable) {
				t.Fatalf("the retired region: %v", err)
			}
			if n := len(nodes[1].host.Network().ConnsToPeer(nodes[2].host.ID())); n != 0 {
				t.Errorf("a member holds %d connections to the retired region", n)
			}
			if _, err := ask(nodes[0], regionIDs[2]); !errors.Is(err, p2p.ErrUnreachable) {
				t.Errorf("retired region asked: %v", err)
			}
			if _, err := ask(nodes[0], regionIDs[1]); err != nil {
				t.Errorf("after the retirement: %v", err)
			}
		})
	}
}

func TestHostConfigErrors(t *testing.T) {
	_, key, _ := testKey(t)
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

func testKey(t *testing.T) (credit.RegionID, []byte, peer.ID) {
	t.Helper()
	r := newRegion(t, 0)
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
	a, b, c := newRegion(t, 0), newRegion(t, 1), newRegion(t, 2)
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
	var regs []region
	var hosts []host.Host
	var views []*p2p.Membership
	for i := 0; i < 2; i++ {
		r := newRegion(t, i)
		m := p2p.NewMembership(testkit.LoggerAt(t, slog.LevelDebug), nil)
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
	c := p2p.NewConnector(hosts[0], views[0], 20*time.Millisecond, 200*time.Millisecond, testkit.LoggerAt(t, slog.LevelDebug))
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
			a, b := newRegion(t, 0), newRegion(t, 1)
			listen := p2p.NewMembership(testkit.LoggerAt(t, slog.LevelDebug), nil)
			lh, err := p2p.NewHost(p2p.HostConfig{Key: b.Key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Members: listen, Logger: testkit.LoggerAt(t, slog.LevelDebug)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { lh.Close() })
			dial := p2p.NewMembership(testkit.LoggerAt(t, slog.LevelDebug), nil)
			dh, err := p2p.NewHost(p2p.HostConfig{Key: a.Key, Security: tt.dialer, Members: dial, Logger: testkit.LoggerAt(t, slog.LevelDebug)})
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
