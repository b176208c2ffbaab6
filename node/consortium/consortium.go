// Package consortium builds a whole consortium of regional nodes in one
// process — a shared ledger, one Badger database, record source and node
// per region, banks and their keys — for the demo and for end-to-end
// tests. It wires parts; every decision stays in package node.
package consortium

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/network/embedded"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/memledger"
	"github.com/prdcredit/ccnode/p2p"
	"github.com/prdcredit/ccnode/store"
)

// PRD3 is the demo's three regions.
func PRD3() []credit.Region {
	return []credit.Region{
		{ID: "440300", Name: "Shenzhen", Divisions: []string{"4403"}},
		{ID: "440100", Name: "Guangzhou", Divisions: []string{"4401"}},
		{ID: "440400", Name: "Zhuhai", Divisions: []string{"4404"}},
	}
}

// BankSpec names a bank and its home region.
type BankSpec struct {
	ID     credit.BankID
	Name   string
	Region credit.RegionID
}

// Options configure Start.
type Options struct {
	// Dir holds one folder per region; empty runs Badger in memory.
	Dir     string
	Regions []credit.Region // default PRD3
	Banks   []BankSpec      // default: one bank in each of the first two regions
	Logger  *slog.Logger
	// P2P routes queries over real libp2p hosts on 127.0.0.1 (TCP with TLS 1.3 or Noise,
	// the membership gater) instead of in-process calls.
	P2P bool
	// Tune adjusts each region's config before its node is built.
	Tune func(*node.Config)
	// Ledger, when set, is an in-memory ledger the caller controls (to
	// take it down, or model commit latency). Otherwise the consortium
	// runs the embedded ledger (network/embedded): in Dir/ledger, or in
	// memory when Dir is empty.
	Ledger *memledger.Server
}

// Region is one running region.
type Region struct {
	credit.Region
	Key    ed25519.PrivateKey
	Store  *store.DB
	Node   *node.Node
	Ledger network.Ledger
	Dir    string
	// With Options.P2P: the region's libp2p host, gater and servers.
	Host    host.Host
	Members *p2p.Membership
	Server  *p2p.Server
	router  *node.P2PRouter
}

// Bank is a bank with its signing key.
type Bank struct {
	BankSpec
	Key ed25519.PrivateKey
}

// Consortium is the running set.
type Consortium struct {
	Ledger   *memledger.Server // when Options.Ledger was set
	Embedded *embedded.Server  // otherwise
	Router   *node.LocalRouter
	Regions  []*Region
	Banks    []*Bank
	once     sync.Once
}

// AdminToken is the admin token of every node of an in-process
// consortium (the demo prints it for --keep).
const AdminToken = "demo-admin-token"

// Start builds and starts every region. On failure what started is closed.
func Start(ctx context.Context, o Options) (c *Consortium, err error) {
	if o.Regions == nil {
		o.Regions = PRD3()
	}
	if o.Banks == nil {
		o.Banks = []BankSpec{
			{ID: "bank-sz-merchants", Name: "Shenzhen Merchants Bank", Region: o.Regions[0].ID},
			{ID: "bank-gz-rural", Name: "Guangzhou Rural Commercial Bank", Region: o.Regions[min(1, len(o.Regions)-1)].ID},
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	// The in-process router waits for each region as long as the nodes'
	// own config says (query.region_timeout, after Tune), so that a test
	// or benchmark that lengthens it is not cut short by the default.
	timeout := node.DefaultRegionTimeout
	if o.Tune != nil && len(o.Regions) > 0 {
		cfg := node.DefaultConfig(o.Regions[0].ID, "")
		o.Tune(&cfg)
		timeout = cfg.Query.RegionTimeout
	}
	c = &Consortium{Ledger: o.Ledger, Router: node.NewLocalRouter(timeout)}
	if o.Ledger == nil {
		eo := embedded.Options{InMemory: o.Dir == "", Logger: o.Logger}
		if c.Embedded, err = embedded.Open(filepath.Join(o.Dir, "ledger"), eo); err != nil {
			return c, err
		}
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	var members []credit.RegionMember
	for _, spec := range o.Regions {
		r := &Region{Region: spec}
		if o.Dir != "" {
			r.Dir = filepath.Join(o.Dir, string(spec.ID))
		}
		key, err := regionKey(r.Dir)
		if err != nil {
			return c, err
		}
		r.Key = key
		so := store.Options{InMemory: true, Logger: o.Logger}
		if o.Dir != "" {
			so = store.Options{Dir: filepath.Join(r.Dir, "db"), Logger: o.Logger}
		}
		if r.Store, err = store.Open(ctx, so); err != nil {
			return c, fmt.Errorf("region %s: %w", spec.ID, err)
		}
		c.Regions = append(c.Regions, r)
		pid, err := node.PeerID(key.Public().(ed25519.PublicKey))
		if err != nil {
			return c, err
		}
		m := credit.RegionMember{
			ID: spec.ID, Name: spec.Name, Divisions: spec.Divisions, MSPID: mspID(spec.ID),
			PeerID: pid, PubKey: key.Public().(ed25519.PublicKey), Status: credit.StatusActive,
		}
		if o.P2P {
			r.Members = p2p.NewMembership(o.Logger, nil)
			if r.Host, err = p2p.NewHost(p2p.HostConfig{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Members: r.Members, Logger: o.Logger}); err != nil {
				return c, fmt.Errorf("region %s: %w", spec.ID, err)
			}
			for _, a := range r.Host.Addrs() {
				m.Addrs = append(m.Addrs, a.String())
			}
		}
		members = append(members, m)
	}
	var banks []credit.BankMember
	for _, spec := range o.Banks {
		key, err := bankKey(o.Dir, spec.ID)
		if err != nil {
			return c, err
		}
		c.Banks = append(c.Banks, &Bank{BankSpec: spec, Key: key})
		banks = append(banks, credit.BankMember{ID: spec.ID, Name: spec.Name, Region: spec.Region, PubKey: key.Public().(ed25519.PublicKey), Status: credit.StatusActive})
	}
	for _, r := range c.Regions {
		if r.Ledger, err = c.client(mspID(r.ID), r.Key); err != nil {
			return c, err
		}
	}
	// A kept folder's ledger already has its members: each region then
	// publishes its new addresses.
	if err := c.Regions[0].Ledger.Bootstrap(ctx, members, banks); errors.Is(err, network.ErrConflict) && o.P2P {
		for i, r := range c.Regions {
			if err := r.Ledger.UpdateRegion(ctx, members[i]); err != nil {
				return c, err
			}
		}
	} else if err != nil && !errors.Is(err, network.ErrConflict) {
		return c, err
	}
	for _, r := range c.Regions {
		dir := r.Dir
		if dir == "" {
			dir = "mem/" + string(r.ID)
		}
		cfg := node.DefaultConfig(r.ID, dir)
		cfg.HTTP.Addr = "127.0.0.1:0"
		cfg.Ledger.MSPID = mspID(r.ID)
		if o.Tune != nil {
			o.Tune(&cfg)
		}
		deps := node.Deps{
			DB: r.Store.Badger(), Records: node.StoreRecords{Reader: r.Store}, Ledger: r.Ledger, Router: c.Router, Key: r.Key,
			Logger: o.Logger, AdminToken: AdminToken,
		}
		if o.P2P {
			r.router = &node.P2PRouter{}
			deps.Router = r.router
			members, h := r.Members, r.Host
			deps.OnRegions = func(rs []credit.RegionMember) {
				if err := members.SetMembers(rs); err != nil {
					o.Logger.Warn("p2p members", "region", r.ID, "err", err)
				}
			}
			deps.Peers = func() int { return len(h.Network().Peers()) }
		}
		if r.Node, err = node.New(cfg, deps); err != nil {
			return c, err
		}
		c.Router.Add(r.ID, r.Node.Answerer())
	}
	for _, r := range c.Regions {
		if err := r.Node.Start(ctx); err != nil {
			return c, err
		}
		if !o.P2P {
			continue
		}
		scfg, err := r.Node.P2PServerConfig(r.Store)
		if err != nil {
			return c, err
		}
		if r.Server, err = p2p.NewServer(scfg); err != nil {
			return c, err
		}
		r.Server.Register(r.Host)
		cfg := r.Node.Config()
		rt, err := p2p.NewRouter(p2p.RouterConfig{Host: r.Host, NetworkID: cfg.P2P.NetworkID, Region: r.ID, Key: r.Key,
			Members: r.Members, Local: r.Server, Timeout: cfg.Query.RegionTimeout, Logger: o.Logger})
		if err != nil {
			return c, err
		}
		r.router.Set(rt)
	}
	// Wait until every node's ledger view is confirmed.
	for _, r := range c.Regions {
		if err := waitReady(ctx, r.Node); err != nil {
			return c, err
		}
	}
	return c, nil
}

func waitReady(ctx context.Context, n *node.Node) error {
	deadline := time.Now().Add(10 * time.Second)
	for n.Ready() != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not ready: %w", n.Config().Region, n.Ready())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// client is a ledger client acting as a region's MSP identity.
func (c *Consortium) client(msp string, key ed25519.PrivateKey) (network.Ledger, error) {
	if c.Ledger != nil {
		return c.Ledger.Client(msp), nil
	}
	if err := c.Embedded.AddIdentity(msp, key.Public().(ed25519.PublicKey)); err != nil {
		return nil, err
	}
	return c.Embedded.Client(msp, key), nil
}

// LedgerTransactions counts the ledger's committed write transactions.
func (c *Consortium) LedgerTransactions() int {
	if c.Ledger != nil {
		return c.Ledger.Transactions()
	}
	return int(c.Embedded.Height())
}

// regionKey loads the region's key from dir/node.key, creating it; with
// no dir it makes a fresh one.
func regionKey(dir string) (ed25519.PrivateKey, error) {
	if dir == "" {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return loadOrCreateKey(filepath.Join(dir, "node.key"))
}

// bankKey loads a bank's key from dir/banks, creating it; with no dir it
// makes a fresh one.
func bankKey(dir string, id credit.BankID) (ed25519.PrivateKey, error) {
	if dir == "" {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return loadOrCreateKey(filepath.Join(dir, "banks", string(id)+".key"))
}

func loadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	k, err := node.LoadKeyFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return node.GenerateKeyFile(path)
	}
	return k, err
}

func mspID(r credit.RegionID) string { return "Region" + string(r) + "MSP" }

// Region returns a region by id.
func (c *Consortium) Region(id credit.RegionID) *Region {
	for _, r := range c.Regions {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// Bank returns a bank by id.
func (c *Consortium) Bank(id credit.BankID) *Bank {
	for _, b := range c.Banks {
		if b.ID == id {
			return b
		}
	}
	return nil
}

// Close stops every node and closes its database. Safe twice.
func (c *Consortium) Close() error {
	var errs []error
	c.once.Do(func() {
		for _, r := range slices.Backward(c.Regions) {
			if r.Node != nil {
				errs = append(errs, r.Node.Close())
			}
			if r.Server != nil {
				errs = append(errs, r.Server.Close())
			}
			if r.Host != nil {
				errs = append(errs, r.Host.Close())
			}
			if r.Store != nil {
				errs = append(errs, r.Store.Close())
			}
		}
		if c.Embedded != nil {
			errs = append(errs, c.Embedded.Close())
		}
	})
	return errors.Join(errs...)
}

// Enterprise is an enterprise with the key it signs consents with.
type Enterprise struct {
	USCC credit.USCC
	Key  ed25519.PrivateKey
}

// NewEnterprise makes a key for an enterprise.
func NewEnterprise(u credit.USCC) Enterprise {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	return Enterprise{USCC: u, Key: key}
}

// Grant builds and signs (as the enterprise) a consent for bank, issued
// in region, valid from now for validity.
func (e Enterprise) Grant(bank credit.BankID, region credit.RegionID, cats []credit.Category, purpose credit.Purpose, now time.Time, validity time.Duration) (credit.ConsentGrant, error) {
	g := credit.ConsentGrant{
		Version: 1, ID: "consent-" + randHex(8), Subject: e.USCC, Grantee: bank, Categories: cats,
		Purpose: purpose, ValidFrom: now.Add(-time.Minute).UTC().Truncate(time.Second),
		ValidUntil: now.Add(validity).UTC().Truncate(time.Second), Region: region,
	}
	if err := g.SignEnterprise(e.Key); err != nil {
		return g, err
	}
	return g, nil
}

// Query builds and signs a query by the bank.
func (b *Bank) Query(subject credit.USCC, cats []credit.Category, purpose credit.Purpose, consent *credit.ConsentGrant, now time.Time) (credit.Query, error) {
	q := credit.Query{
		Version: 1, Bank: b.ID, Subject: subject, Categories: cats, Purpose: purpose,
		Nonce: "n-" + randHex(12), Time: now.UTC(), Consent: consent,
	}
	if consent != nil {
		q.ConsentID = consent.ID
	}
	return q, q.Sign(b.Key)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
