package p2p_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/p2p"
	"github.com/prdcredit/ccnode/p2p/p2ptest"
)

const testNet = "test-net"

// tlog writes a logger's lines to t.Log.
type tlog struct{ t testing.TB }

func (w tlog) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// node is one region on the mocknet.
type node struct {
	region  p2ptest.Region
	host    host.Host
	store   *p2ptest.Store
	members *p2p.Membership
	server  *p2p.Server
	router  *p2p.Router
}

// cluster is a consortium of regions on one mocknet sharing one ledger
// view, with a bank homed in the first region and a consent on a subject
// registered in the second.
type cluster struct {
	t       testing.TB
	mn      mocknet.Mocknet
	ledger  *p2ptest.Ledger
	now     time.Time
	nodes   []*node
	bank    p2ptest.Bank
	subject credit.USCC
	consent *credit.ConsentGrant
	cats    []credit.Category
}

var regionIDs = []credit.RegionID{"440300", "440100", "440400", "440600", "441900"}
var divisions = []string{"4403", "4401", "4404", "4406", "4419"}

// newCluster builds n regions (linked and connected: the first `linked`
// of them; the rest exist on the ledger but have no link, so they are
// unreachable).
func newCluster(t testing.TB, n, linked int) *cluster {
	t.Helper()
	c := &cluster{t: t, mn: mocknet.New(), ledger: p2ptest.NewLedger(), now: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	t.Cleanup(func() { c.mn.Close() })
	for i := 0; i < n; i++ {
		r, err := p2ptest.NewRegion(regionIDs[i], divisions[i])
		if err != nil {
			t.Fatal(err)
		}
		c.ledger.PutRegion(r.Member)
		sk, err := crypto.UnmarshalEd25519PrivateKey(r.Key)
		if err != nil {
			t.Fatal(err)
		}
		h, err := c.mn.AddPeer(sk, mustAddr(t, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 4001+i)))
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, &node{region: r, host: h, store: p2ptest.NewStore()})
	}
	for i := 0; i < linked; i++ {
		for j := i + 1; j < linked; j++ {
			if _, err := c.mn.LinkPeers(c.nodes[i].host.ID(), c.nodes[j].host.ID()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, nd := range c.nodes {
		nd.members = p2p.NewMembership(testLogger(t), nil)
		if err := nd.members.SetMembers(c.ledger.Regions()); err != nil {
			t.Fatal(err)
		}
		srv, err := p2p.NewServer(p2p.ServerConfig{
			NetworkID: testNet, Region: nd.region.Member.ID, Key: nd.region.Key,
			Members: c.ledger, Consent: c.ledger, Source: nd.store, Receipts: nd.store, Acks: nd.store,
			Nonces: p2ptest.NewNonces(), Now: c.clock, Logger: testLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		srv.Register(nd.host)
		t.Cleanup(func() { srv.Close() })
		nd.server = srv
		rt, err := p2p.NewRouter(p2p.RouterConfig{
			Host: nd.host, NetworkID: testNet, Region: nd.region.Member.ID, Key: nd.region.Key,
			Members: nd.members, Local: srv, Timeout: 5 * time.Second, Now: c.clock, Logger: testLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		nd.router = rt
	}
	var err error
	c.bank, err = p2ptest.NewBank("bank-a", regionIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	c.ledger.PutBank(c.bank.Member)
	c.subject, err = credit.CompleteUSCC("91" + "440100" + "MA5FABCD1")
	if err != nil {
		t.Fatal(err)
	}
	c.cats = []credit.Category{credit.Registration, credit.Penalty, credit.Tax, credit.Judicial}
	c.consent = c.newConsent("consent-0001", c.bank.Member.ID, c.cats, c.now.Add(-time.Hour), c.now.Add(24*time.Hour), true)
	return c
}

func (c *cluster) clock() time.Time { return c.now }

func (c *cluster) newConsent(id string, bank credit.BankID, cats []credit.Category, from, until time.Time, record bool) *credit.ConsentGrant {
	c.t.Helper()
	g, err := p2ptest.Consent(id, c.subject, bank, cats, c.nodes[1].region, from, until)
	if err != nil {
		c.t.Fatal(err)
	}
	if record {
		if err := c.ledger.PutConsent(g, from); err != nil {
			c.t.Fatal(err)
		}
	}
	return g
}

func (c *cluster) query(b p2ptest.Bank, g *credit.ConsentGrant, cats []credit.Category) *credit.Query {
	c.t.Helper()
	q, err := p2ptest.Query(b, g, cats, c.now)
	if err != nil {
		c.t.Fatal(err)
	}
	return q
}
