// Package consortium composes several regional nodes in one process — a
// shared ledger, and per region a Badger store, a key, a development
// enterprise identity authority and a node.New — for the demo and for
// end-to-end tests, with banks and their keys and certified enterprises.
// Every node runs the production path (node.New, the p2p server and client);
// this package only wires them together and makes no decision of its own.
// Every bank API serves TLS with a certificate from the consortium's
// development CA (CAFile), which Client and HTTPClient trust.
package consortium

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/network/embedded"
	"github.com/prdcredit/ccnode/node"
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
	// Dir holds one folder per region and the ledger's; empty runs Badger
	// and the embedded ledger in memory.
	Dir     string
	Regions []credit.Region // default PRD3
	Banks   []BankSpec      // default: one bank in each of the first two regions
	Logger  *slog.Logger
	// Mocknet connects the regions over libp2p's mocknet, in memory and
	// without ports (tests); otherwise each node builds its own host on
	// 127.0.0.1 TCP, as `ccnode run` does.
	Mocknet bool
	// Tune adjusts each region's config before its node starts.
	Tune func(*node.Config)
	// WrapLedger, when set, wraps each region's ledger client (tests wrap
	// them in one network/ledgerfault controller).
	WrapLedger func(network.Ledger) network.Ledger
	// Now, when set, is every node's clock (node.Deps.Now).
	Now func() time.Time
	// Operators authenticates every node's admin API; nil gives each node
	// one operator, OperatorName, holding the consortium's OperatorToken.
	Operators node.OperatorAuth
}

// OperatorName is the operator of an in-process consortium's nodes when
// Options.Operators is nil.
const OperatorName = "operator"

// Region is one running region.
type Region struct {
	credit.Region
	Key    ed25519.PrivateKey
	Store  *store.DB
	Node   *node.Node
	Ledger network.Ledger
	Dir    string
	host   host.Host // the mocknet host, when Options.Mocknet
	// tlsCert and tlsKey are the bank API's certificate and key files,
	// issued by the consortium's development CA.
	tlsCert, tlsKey string

	// Authority certifies the enterprises of the region's divisions; the
	// region registers it on the ledger at Start.
	Authority *Authority
}

// Bank is a bank with its signing key.
type Bank struct {
	BankSpec
	Key ed25519.PrivateKey
}

// Consortium is the running set.
type Consortium struct {
	Ledger  *embedded.Server
	Regions []*Region
	Banks   []*Bank
	// OperatorToken is OperatorName's token (random per Start) for every
	// node's admin API, when Options.Operators is nil.
	OperatorToken string
	// CAFile is the development CA certificate that issued every bank
	// API's TLS certificate (Options.Dir/tls/ca.crt when Dir is set): a
	// bank trusts every node with `ccnode query --ca-file CAFile`.
	CAFile string
	tls    *devTLS
	// tmpTLS is the folder of the TLS files when Options.Dir is empty,
	// removed by Close.
	tmpTLS string
	opts   Options
	mock   mocknet.Mocknet
	once   sync.Once
	err    error
}

// Start builds and starts every region, phase by phase; on failure what
// started is closed.
func Start(ctx context.Context, o Options) (_ *Consortium, err error) {
	c := &Consortium{opts: withDefaults(o)}
	if c.opts.Operators == nil {
		c.OperatorToken = randHex(32)
		c.opts.Operators = node.OperatorList{{Name: OperatorName, TokenHash: node.HashOperatorToken(c.OperatorToken)}}
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
		}
	}()
	if err := c.startTLS(); err != nil {
		return nil, err
	}
	eo := embedded.Options{InMemory: o.Dir == "", Logger: c.opts.Logger}
	if c.Ledger, err = embedded.Open(filepath.Join(o.Dir, "ledger"), eo); err != nil {
		return nil, err
	}
	members, err := c.openRegions(ctx)
	if err != nil {
		return nil, err
	}
	banks, err := c.makeBanks()
	if err != nil {
		return nil, err
	}
	if o.Mocknet {
		if err := c.mockHosts(); err != nil {
			return nil, err
		}
		// Addresses known in advance go in the bootstrap, as in a real
		// consortium's bootstrap file: the nodes then have nothing to
		// publish at their first start.
		for i, r := range c.Regions {
			for _, a := range r.host.Addrs() {
				members[i].Addrs = append(members[i].Addrs, a.String())
			}
		}
	}
	// A kept folder's ledger has its members already.
	if err := c.Regions[0].Ledger.Bootstrap(ctx, members, banks); err != nil && !errors.Is(err, network.ErrConflict) {
		return nil, err
	}
	// Each region vouches for its own divisions' enterprises (registering
	// the same authority again, in a kept folder, is a no-op).
	for _, r := range c.Regions {
		if err := r.Ledger.RegisterAuthority(ctx, r.Authority.Record); err != nil {
			return nil, fmt.Errorf("region %s: register identity authority: %w", r.ID, err)
		}
	}
	for _, r := range c.Regions {
		if r.Node, err = node.New(ctx, c.config(r), node.Deps{Store: r.Store, Ledger: r.Ledger, Key: r.Key, Host: r.host,
			Logger: c.opts.Logger.With("region", string(r.ID)), Operators: c.opts.Operators, Now: c.opts.Now}); err != nil {
			return nil, err
		}
	}
	if err := c.waitConnected(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func withDefaults(o Options) Options {
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
	return o
}

// openRegions opens each region's key, store and ledger client and
// returns the regions' member records.
func (c *Consortium) openRegions(ctx context.Context) ([]credit.RegionMember, error) {
	var members []credit.RegionMember
	for _, spec := range c.opts.Regions {
		m, err := c.openRegion(ctx, spec)
		if err != nil {
			return nil, err
		}
		members = append(members, m)
	}
	return members, nil
}

// openRegion opens one region's key, store and ledger identity, adds it
// to c.Regions and returns its member record.
func (c *Consortium) openRegion(ctx context.Context, spec credit.Region) (credit.RegionMember, error) {
	o := c.opts
	var none credit.RegionMember
	r := &Region{Region: spec}
	if o.Dir != "" {
		r.Dir = filepath.Join(o.Dir, string(spec.ID))
	}
	key, err := regionKey(r.Dir)
	if err != nil {
		return none, err
	}
	r.Key = key
	if r.tlsCert, r.tlsKey, err = c.tls.issue(spec.ID, time.Now()); err != nil {
		return none, err
	}
	if r.Authority, err = regionAuthority(r.Dir, spec, time.Now()); err != nil {
		return none, fmt.Errorf("region %s: %w", spec.ID, err)
	}
	so := store.Options{InMemory: true, Logger: o.Logger}
	if o.Dir != "" {
		so = store.Options{Dir: filepath.Join(r.Dir, "db"), Logger: o.Logger}
	}
	if r.Store, err = store.Open(ctx, so); err != nil {
		return none, fmt.Errorf("region %s: %w", spec.ID, err)
	}
	c.Regions = append(c.Regions, r)
	pub := key.Public().(ed25519.PublicKey)
	lkey, err := ledgerKey(r.Dir, key)
	if err != nil {
		return none, fmt.Errorf("region %s: %w", spec.ID, err)
	}
	if err := c.Ledger.AddIdentity(mspID(r.ID), lkey.Public().(ed25519.PublicKey)); err != nil {
		return none, err
	}
	r.Ledger = c.Ledger.Client(mspID(r.ID), lkey)
	if o.WrapLedger != nil {
		r.Ledger = o.WrapLedger(r.Ledger)
	}
	pid, err := node.PeerID(pub)
	if err != nil {
		return none, err
	}
	return credit.RegionMember{
		ID: spec.ID, Name: spec.Name, Divisions: spec.Divisions, MSPID: mspID(spec.ID),
		PeerID: pid, PubKey: pub, Status: credit.StatusActive,
	}, nil
}

// makeBanks makes (or, in Dir, loads) the banks' keys.
func (c *Consortium) makeBanks() ([]credit.BankMember, error) {
	var banks []credit.BankMember
	for _, spec := range c.opts.Banks {
		key, err := bankKey(c.opts.Dir, spec.ID)
		if err != nil {
			return nil, err
		}
		c.Banks = append(c.Banks, &Bank{BankSpec: spec, Key: key})
		banks = append(banks, credit.BankMember{ID: spec.ID, Name: spec.Name, Region: spec.Region,
			PubKey: key.Public().(ed25519.PublicKey), Status: credit.StatusActive})
	}
	return banks, nil
}

// mockHosts puts every region's host on one mocknet, linked and
// connected.
func (c *Consortium) mockHosts() error {
	c.mock = mocknet.New()
	for i, r := range c.Regions {
		sk, err := crypto.UnmarshalEd25519PrivateKey(r.Key)
		if err != nil {
			return err
		}
		if r.host, err = c.mock.AddPeer(sk, ma.StringCast(fmt.Sprintf("/ip4/10.44.0.%d/tcp/4001", i+1))); err != nil {
			return fmt.Errorf("region %s: mocknet host: %w", r.ID, err)
		}
	}
	if err := c.mock.LinkAll(); err != nil {
		return err
	}
	return c.mock.ConnectAllButSelf()
}

// startTLS makes the consortium's development CA, its files in Dir/tls
// (or a temporary folder Close removes).
func (c *Consortium) startTLS() error {
	dir := filepath.Join(c.opts.Dir, "tls")
	if c.opts.Dir == "" {
		tmp, err := os.MkdirTemp("", "ccnode-consortium-tls-")
		if err != nil {
			return fmt.Errorf("development TLS: %w", err)
		}
		c.tmpTLS, dir = tmp, tmp
	}
	d, err := newDevTLS(dir, time.Now())
	if err != nil {
		return err
	}
	c.tls, c.CAFile = d, d.caFile
	return nil
}

// config is a region's node config: the defaults in its folder, the bank
// API on a free port of 127.0.0.1 serving TLS with the region's
// certificate, the admin API on another, then Options.Tune.
func (c *Consortium) config(r *Region) node.Config {
	dir := r.Dir
	if dir == "" {
		dir = "mem/" + string(r.ID)
	}
	cfg := node.DefaultConfig(r.ID, dir)
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.TLSCertFile, cfg.HTTP.TLSKeyFile = r.tlsCert, r.tlsKey
	cfg.Admin.Addr = "127.0.0.1:0"
	cfg.Ledger.MSPID = mspID(r.ID)
	if c.opts.Tune != nil {
		c.opts.Tune(&cfg)
	}
	return cfg
}

// waitConnected waits until every node's ledger view is confirmed and
// holds every other region's p2p addresses (each node publishes its own
// as it starts).
func (c *Consortium) waitConnected(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for _, r := range c.Regions {
		for {
			err := r.Node.Ready()
			if errors.Is(err, store.ErrCorrupt) {
				// The region joins and refuses to answer from its store;
				// connectivity is what is waited for here.
				err = nil
			}
			for _, other := range c.Regions {
				if m, ok := r.Node.View().Region(other.ID); err == nil && (!ok || len(m.Addrs) == 0) {
					err = fmt.Errorf("region %s's addresses not known yet", other.ID)
				}
			}
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("node %s not ready: %w", r.ID, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// LedgerTransactions counts the ledger's committed write transactions.
func (c *Consortium) LedgerTransactions() int { return int(c.Ledger.Height()) }

// regionKey loads the region's key from dir/node.key, creating it; with
// no dir it makes a fresh one.
func regionKey(dir string) (ed25519.PrivateKey, error) {
	if dir == "" {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return loadOrCreateKey(filepath.Join(dir, "node.key"))
}

// LedgerKeyFile, in a region's folder, holds the key of the region's
// ledger identity when it is not the node's key: after a key rotation the
// region keeps acting on the ledger as the identity it was registered
// with (on Fabric, its MSP certificate), and its node publishes the new
// node key in the region's record.
const LedgerKeyFile = "ledger.key"

// ledgerKey is dir/LedgerKeyFile's key if the file exists, else the node's.
func ledgerKey(dir string, nodeKey ed25519.PrivateKey) (ed25519.PrivateKey, error) {
	if dir == "" {
		return nodeKey, nil
	}
	p := filepath.Join(dir, LedgerKeyFile)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return nodeKey, nil
	}
	return loadOrCreateKey(p)
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

// Client is a client of the region's bank API (over TLS, trusting the
// consortium's CA) and of its admin API as the consortium's operator.
func (c *Consortium) Client(r *Region) *node.Client {
	return &node.Client{Base: r.Node.HTTPURL(), Admin: "http://" + r.Node.AdminAddr(), OperatorToken: c.OperatorToken, HTTP: c.HTTPClient()}
}

// HTTPClient is an HTTP client that trusts the consortium's CA (and no
// other), for requests to the bank APIs Client does not make.
func (c *Consortium) HTTPClient() *http.Client { return c.tls.client }

// Bank returns a bank by id.
func (c *Consortium) Bank(id credit.BankID) *Bank {
	for _, b := range c.Banks {
		if b.ID == id {
			return b
		}
	}
	return nil
}

// Close stops every node, its host and its store, then the ledger. Safe
// twice.
func (c *Consortium) Close() error {
	c.once.Do(func() {
		var errs []error
		for _, r := range slices.Backward(c.Regions) {
			if r.Node != nil {
				errs = append(errs, r.Node.Close())
			}
			if r.host != nil {
				errs = append(errs, r.host.Close())
			}
			if r.Store != nil {
				errs = append(errs, r.Store.Close())
			}
		}
		if c.mock != nil {
			errs = append(errs, c.mock.Close())
		}
		if c.Ledger != nil {
			errs = append(errs, c.Ledger.Close())
		}
		if c.tls != nil {
			c.tls.client.CloseIdleConnections()
		}
		if c.tmpTLS != "" {
			errs = append(errs, os.RemoveAll(c.tmpTLS))
		}
		c.err = errors.Join(errs...)
	})
	return c.err
}

// Enterprise is an enterprise with the key it signs consents with and
// that key's certificate chain (leaf first) from an identity authority.
type Enterprise struct {
	USCC  credit.USCC
	Key   ed25519.PrivateKey
	Chain [][]byte
}

// Enterprise certifies a fresh key for u by the authority of the region
// whose divisions hold u's registration.
func (c *Consortium) Enterprise(u credit.USCC) (Enterprise, error) {
	div := u.Division()
	for _, r := range c.Regions {
		if r.Authority.Record.Vouches(div) {
			return r.Authority.Certify(u, time.Now())
		}
	}
	return Enterprise{}, fmt.Errorf("enterprise %s: no region's authority vouches for division %s", u, div)
}

// Grant builds and signs (as the enterprise) a consent for bank, issued
// in region, valid from now for validity.
func (e Enterprise) Grant(bank credit.BankID, region credit.RegionID, cats []credit.Category, purpose credit.Purpose, now time.Time, validity time.Duration) (credit.ConsentGrant, error) {
	g := credit.ConsentGrant{
		Version: credit.ConsentVersion, ID: "consent-" + randHex(8), Subject: e.USCC, Grantee: bank, Categories: cats,
		Purpose: purpose, ValidFrom: now.Add(-time.Minute).UTC().Truncate(time.Second),
		ValidUntil: now.Add(validity).UTC().Truncate(time.Second), Region: region,
	}
	if err := g.SignEnterprise(e.Key, e.Chain, now.UTC()); err != nil {
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
