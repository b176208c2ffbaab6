// Package node is the regional node. It owns the one answering pipeline
// (admit: authenticate the bank, check the query's time, decide consent
// with credit.DecideConsent, spend the nonce; serve: read the region's
// records, digest, sign and durably log a receipt, write the answer), the
// home node's query (admit once, serve its own slice, ask the other
// regions over p2p, verify their receipts in one place, acknowledge,
// consolidate), the ledger view fed by ledger events, the anchoring loop,
// the bank-facing HTTP API with its metrics, and its own lifecycle: New
// builds the parts in order and Close stops them in reverse.
//
// It must not hold storage or protocol details that belong below it:
// Badger keys live in store and store/receipts, frames and streams in p2p,
// the ledger's transport in network.
package node

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/pnet"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/httplimit"
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/p2p"
	"github.com/prdcredit/ccnode/store"
	"github.com/prdcredit/ccnode/store/receipts"
)

// Deps are the parts a node runs on that its caller owns: Close closes
// none of them.
type Deps struct {
	// Store is the region's record store; the node keeps its receipt
	// state in the same Badger database under its own key prefixes.
	Store *store.DB
	// Ledger acts as this region's identity.
	Ledger network.Ledger
	// Key is the region's signing key and libp2p identity.
	Key ed25519.PrivateKey
	// Host, when set, is the libp2p host the node serves and asks on
	// (tests pass mocknet hosts; the caller closes it). Nil: New builds
	// one from cfg.P2P, gated by the node's membership, and owns it.
	Host host.Host
	// Operators authenticates the admin API's callers; nil refuses every
	// admin call.
	Operators OperatorAuth
	Logger    *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// ErrNotReady: the node is closed, or cannot answer now.
var ErrNotReady = errors.New("node not ready")

// Node is one running regional node.
type Node struct {
	// retiredSeen: the retirement of this node's region has been logged.
	retiredSeen atomic.Bool

	cfg  Config
	deps Deps
	log  *slog.Logger
	now  func() time.Time
	key  ed25519.PrivateKey

	rlog      *receipts.Log
	dbSync    *receipts.Syncer
	outbox    *receipts.Outbox
	requested *receipts.Requested
	nonces    *receipts.Nonces
	view      *View
	members   *p2p.Membership
	host      host.Host
	client    *p2p.Client
	askers    *askers // run client exchanges (Query)
	server    *p2p.Server
	sigs      sigGate
	metrics   *metrics
	imports   *imports
	verify    verifier // start-up verification, in the background
	disk      diskWatch
	cand      candidacy // a region not yet admitted (candidate.go)

	// logFork, set once at start (startLedgerCheck), is why the receipt
	// log may not grow: it is behind or off the ledger's checkpoint.
	logFork error

	anchorMu         sync.Mutex
	lastAnchoredSize atomic.Uint64
	each             eachReceipt // anchor.mode per_receipt
	kick             chan struct{}

	httpLn  net.Listener
	adminLn net.Listener

	mu     sync.Mutex
	closed bool
	stops  []func() error // in start order; Close runs them in reverse
}

// New checks cfg and deps and starts a node, part by part — receipt log,
// ledger view (which feeds the p2p membership), libp2p host, p2p server
// and client, anchoring, bank API, admin API — stopping what started if one fails.
// ctx bounds the start only.
func New(ctx context.Context, cfg Config, deps Deps) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Store == nil:
		return nil, errors.New("node: Deps.Store is required")
	case deps.Ledger == nil:
		return nil, errors.New("node: Deps.Ledger is required")
	case len(deps.Key) != ed25519.PrivateKeySize:
		return nil, errors.New("node: Deps.Key must be an ed25519 private key")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	db := deps.Store.Badger()
	// One Syncer for the database: the receipt log, the kept receipts and
	// the outbox share its sync rounds.
	dbSync := receipts.NewSyncer(db)
	n := &Node{
		cfg: cfg, deps: deps, key: deps.Key, dbSync: dbSync,
		log: deps.Logger.With("region", string(cfg.Region)), now: deps.Now,
		outbox:    receipts.NewOutbox(db, dbSync),
		requested: receipts.NewRequested(db, dbSync),
		nonces:    receipts.NewNonces(db),
		kick:      make(chan struct{}, 1),
		imports:   newImports(),
		askers:    newAskers(),
	}
	n.members = p2p.NewMembership(n.log.With("part", "p2p"), nil)
	n.view = NewView(deps.Ledger, n.outbox, cfg.Ledger.GracePeriod, deps.Now, n.log.With("part", "view"))
	n.view.onRegions = func(rs []credit.RegionMember) {
		if err := n.members.SetMembers(rs); err != nil {
			n.log.Warn("p2p members", "err", err)
		}
		// An operator must learn from the log, not only from /readyz, that
		// the consortium retired this region.
		for _, r := range rs {
			if r.ID == cfg.Region && r.Status == credit.StatusRetired && n.retiredSeen.CompareAndSwap(false, true) {
				n.log.Warn("this region was retired from the consortium on the ledger: the node is not ready and answers no queries; "+
					"it anchors only the receipts it gave before, and what it signed stays verifiable", "retired_at", r.UpdatedAt.UTC())
			}
		}
	}
	n.metrics = newMetrics(n)
	defer func() {
		if err != nil {
			err = errors.Join(err, n.stopAll())
		}
	}()
	candidate, err := n.isCandidate(ctx)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.Region, err)
	}
	n.cand.waiting.Store(candidate)
	ledgerCheck, view := n.startLedgerCheck, n.startView
	if candidate {
		// Admission runs both (awaitAdmission).
		ledgerCheck, view = noStep, n.startCandidate
	}
	steps := []struct {
		name  string
		start func(context.Context) (func() error, error)
	}{
		{"store verification", n.startVerify},
		{"receipt log", n.startLog},
		{"receipt log against the ledger", ledgerCheck},
		{"ledger view", view},
		{"p2p host", n.startHost},
		{"p2p server", n.startServer},
		{"p2p client", n.startClient},
		{"anchoring", n.startAnchoring},
		{"http api", n.startHTTP},
		{"admin api", n.startAdmin},
	}
	for _, s := range steps {
		stop, err := s.start(ctx)
		if err != nil {
			return nil, fmt.Errorf("node %s: start %s: %w", cfg.Region, s.name, err)
		}
		n.stops = append(n.stops, stop)
	}
	n.log.Info("node started", "http", n.HTTPAddr(), "admin", n.AdminAddr(), "peer", n.host.ID(), "log_size", n.rlog.Size(), "candidate", candidate)
	if candidate {
		n.awaitAdmission()
	}
	if msg := n.emptyStore(ctx); msg != "" {
		n.log.Warn(msg, "store", deps.Store.Badger().Opts().Dir)
	}
	return n, nil
}

// emptyStore says why the node answers with no records when its store
// holds none (a fresh node, or records imported into another folder than
// the one it opened), and is "" otherwise.
func (n *Node) emptyStore(ctx context.Context) string {
	st, err := n.deps.Store.Stats(ctx)
	if err != nil || st.Records > 0 {
		return ""
	}
	return "the record store is empty: every query is answered with no records of this region; import department feeds with 'ccnode import --config <this node's config> FILE'"
}

// Config returns the node's configuration.
func (n *Node) Config() Config { return n.cfg }

func (n *Node) startLog(context.Context) (func() error, error) {
	l, err := receipts.OpenLog(n.deps.Store.Badger(), receipts.LogOptions{Logger: n.log.With("part", "receipts"), Now: n.now, Syncer: n.dbSync})
	if err != nil {
		return nil, err
	}
	n.rlog = l
	if n.cfg.Anchor.Mode == AnchorPerReceipt {
		// Receipts already in the log ride on the first new receipt's
		// checkpoint.
		n.each.start(l.Size())
	}
	ac, ok, err := n.outbox.LastAnchored()
	if err != nil {
		l.Close()
		return nil, err
	}
	if ok {
		n.lastAnchoredSize.Store(ac.Size)
	}
	// Stopped after every part that writes: the kept receipts' sync that
	// the Syncer still owes runs then.
	return func() error { return errors.Join(l.Close(), n.dbSync.Close()) }, nil
}

func (n *Node) startView(ctx context.Context) (func() error, error) {
	if err := n.view.Start(ctx); err != nil {
		return nil, err
	}
	return n.view.Close, nil
}

// startHost takes the caller's host or builds one, and publishes its
// addresses in this region's ledger record (ports are chosen at start).
func (n *Node) startHost(ctx context.Context) (func() error, error) {
	stop := func() error { return nil }
	if n.host = n.deps.Host; n.host == nil {
		var psk pnet.PSK
		if n.cfg.P2P.PSKFile != "" {
			var err error
			if psk, err = p2p.LoadPSK(n.cfg.P2P.PSKFile); err != nil {
				return nil, &ConfigError{Key: "p2p.psk_file", Err: err}
			}
		}
		h, err := p2p.NewHost(p2p.HostConfig{Key: n.key, Listen: n.cfg.P2P.Listen, Announce: n.cfg.P2P.Announce, PSK: psk,
			Members: n.members, Logger: n.log.With("part", "p2p")})
		if err != nil {
			return nil, err
		}
		n.host, stop = h, h.Close
	}
	addrs := n.hostAddrs()
	if len(n.cfg.P2P.Announce) == 0 && listensUnspecified(n.cfg.P2P.Listen) {
		n.log.Warn("p2p.listen is on an unspecified address, so every local address is published; set p2p.announce to the ones other regions dial",
			"published", addrs)
	}
	if n.cand.waiting.Load() {
		return stop, nil // a candidate has no record to publish in; admission publishes
	}
	if err := publishSelf(ctx, n.deps.Ledger, n.cfg, n.key.Public().(ed25519.PublicKey), addrs, n.log); err != nil {
		return nil, errors.Join(err, stop())
	}
	return stop, nil
}

// hostAddrs are the addresses the node publishes in its ledger record.
func (n *Node) hostAddrs() []string {
	addrs := make([]string, 0, len(n.host.Addrs()))
	for _, a := range n.host.Addrs() {
		addrs = append(addrs, a.String())
	}
	return addrs
}

// noStep is a start step with nothing to start.
func noStep(context.Context) (func() error, error) { return func() error { return nil }, nil }

func (n *Node) startServer(context.Context) (func() error, error) {
	s, err := p2p.NewServer(p2p.ServerConfig{
		NetworkID: n.cfg.P2P.NetworkID, Handler: n, Timeout: 3 * n.cfg.Query.RegionTimeout,
		ChunkBytes: answerChunkBytes, Members: n.members, Logger: n.log.With("part", "p2p"),
	})
	if err != nil {
		return nil, err
	}
	s.Register(n.host)
	n.server = s
	return s.Close, nil
}

// Settle waits for the exchanges this node is answering to end: a
// requester does not wait for its ack to be stored before it answers its
// bank, so an export of the receipt log made once Settle returns carries
// the ack of every answer its requester had before the call. It waits at
// most query.region_timeout, the deadline a requester of this consortium
// keeps for an exchange (a requester that never acks cannot hold exports
// longer), and no longer once the node stops; then it returns an error and
// the export may go on without the acks still missing.
func (n *Node) Settle(ctx context.Context) error {
	if n.server == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Query.RegionTimeout)
	defer cancel()
	return n.server.Settle(ctx)
}

func (n *Node) startClient(context.Context) (func() error, error) {
	c, err := p2p.NewClient(p2p.ClientConfig{
		Host: n.host, NetworkID: n.cfg.P2P.NetworkID, Members: n.members,
		Timeout: n.cfg.Query.RegionTimeout, Logger: n.log.With("part", "p2p"),
	})
	if err != nil {
		return nil, err
	}
	n.client = c
	return func() error {
		err := c.Close()
		n.askers.close()
		return err
	}, nil
}

func (n *Node) startAnchoring(context.Context) (func() error, error) {
	if n.cfg.Anchor.Mode != AnchorCheckpoint {
		// per_receipt anchors on the answer path; off never anchors.
		n.log.Info("periodic anchoring not running", "anchor_mode", n.cfg.Anchor.Mode)
		return func() error { return nil }, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.anchorLoop(ctx)
	}()
	return func() error {
		cancel()
		<-done
		return nil
	}, nil
}

func (n *Node) startHTTP(context.Context) (func() error, error) {
	tc, err := n.cfg.HTTP.ServerTLS()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", n.cfg.HTTP.Addr)
	if err != nil {
		return nil, err
	}
	n.httpLn = ln
	return n.serveHTTP("bank", n.Handler(), func(srv *http.Server) net.Listener {
		served := httplimit.Apply(srv, ln, n.cfg.HTTP.limits(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, credit.CodeUnavailable, "the node is reading too many requests at once; retry")
		}))
		if tc != nil {
			served = tls.NewListener(served, tc)
		}
		return served
	}), nil
}

// serveHTTP serves h (the bank or the admin API) on the listener listen
// returns for the server, until the returned stop. Stop waits 5 s for the
// requests in flight, then closes their connections: a query still waiting
// on a region that is itself shutting down must not turn a clean stop into
// a failed one (every receipt was durable before its answer).
func (n *Node) serveHTTP(name string, h http.Handler, listen func(*http.Server) net.Listener) func() error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: n.cfg.HTTP.ReadTimeout,
		ReadTimeout:       n.cfg.HTTP.ReadTimeout,
		WriteTimeout:      n.cfg.HTTP.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	ln := listen(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error(name+" server stopped", "err", err)
		}
	}()
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			n.log.Warn(name + " API requests still running after 5s; closing their connections")
			err = srv.Close()
		}
		<-done
		return err
	}
}

// ErrKeyNotPublished: the node's key differs from its region's ledger
// record and the record could not be changed; every receipt it signed
// would fail verification, so the node does not start.
var ErrKeyNotPublished = errors.New("node key not published on the ledger")

// publishSelf updates this region's record with its current listen
// addresses and, when the node starts with a new key (a key rotation: the
// operator changed key_file), with the new key and peer ID, before the
// node signs anything with it. The change is a transaction of the region's
// ledger identity, which the old record names, carrying the key change the
// old key signed (RotateKey). An address failure is
// logged (the node still serves its own region); a key failure stops the
// start.
func publishSelf(ctx context.Context, l network.Ledger, cfg Config, pub ed25519.PublicKey, addrs []string, log *slog.Logger) error {
	region := cfg.Region
	m, err := l.Region(ctx, region)
	if err != nil {
		log.Warn("reading own region record", "err", err)
		return nil
	}
	rotate := !pub.Equal(ed25519.PublicKey(m.PubKey))
	if !rotate && slices.Equal(m.Addrs, addrs) {
		return nil
	}
	m.Addrs = addrs
	if rotate {
		pid, err := PeerID(pub)
		if err != nil {
			return err
		}
		// The old key signed the change (ccnode keys rotate): the contract
		// takes no new key on the ledger identity's word alone.
		k, err := loadKeyChange(cfg, region, pub)
		if err != nil {
			return fmt.Errorf("%w: region %s: %w", ErrKeyNotPublished, region, err)
		}
		log.Info("publishing a new node key", "old_peer", m.PeerID, "new_peer", pid)
		m.PubKey, m.PeerID, m.KeyChange = pub, pid, k
	}
	if err := l.UpdateRegion(ctx, m); err != nil {
		if rotate {
			return fmt.Errorf("%w: region %s: %w", ErrKeyNotPublished, region, err)
		}
		log.Warn("publishing p2p addresses", "err", err)
		return nil
	}
	if rotate {
		// Published: the ledger holds the change; the file would only
		// make the next rotation look pending.
		if err := os.Remove(KeyChangeFile(cfg)); err != nil {
			log.Warn("removing the published key change", "err", err)
		}
	}
	return nil
}

// Host is the node's libp2p host.
func (n *Node) Host() host.Host { return n.host }

// HTTPURL is the bank API's base URL once started: https:// when it
// serves TLS.
func (n *Node) HTTPURL() string {
	if n.cfg.HTTP.TLSCertFile != "" {
		return "https://" + n.HTTPAddr()
	}
	return "http://" + n.HTTPAddr()
}

// HTTPAddr is the bank API's listening address once started.
func (n *Node) HTTPAddr() string {
	if n.httpLn == nil {
		return ""
	}
	return n.httpLn.Addr().String()
}

// Ready returns nil when the node can answer, else why it cannot.
func (n *Node) Ready() error {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return fmt.Errorf("%w: closed", ErrNotReady)
	}
	if err := n.candidateRefusal(); err != nil {
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	if err := n.view.Fresh(); err != nil {
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	if n.logFork != nil {
		return fmt.Errorf("%w: %w", ErrNotReady, n.logFork)
	}
	if err := n.checkOwnRecord(); err != nil {
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	if err := n.deps.Store.Corruption(); err != nil {
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	if err := n.verifyProblem(); err != nil {
		return fmt.Errorf("%w: verification: %w", ErrNotReady, err)
	}
	if err := n.diskRefusal(); err != nil {
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	return nil
}

// Close stops the parts in reverse order and collects their errors. Safe
// to call twice.
func (n *Node) Close() error {
	n.mu.Lock()
	closed := n.closed
	n.closed = true
	n.mu.Unlock()
	if closed {
		return nil
	}
	// Not under mu: the HTTP server's shutdown waits for handlers that
	// call Ready.
	return n.stopAll()
}

func (n *Node) stopAll() error {
	var errs []error
	for i := len(n.stops) - 1; i >= 0; i-- {
		if err := n.stops[i](); err != nil {
			errs = append(errs, err)
		}
	}
	n.stops = nil
	return errors.Join(errs...)
}

// Log is the node's receipt log.
func (n *Node) Log() *receipts.Log { return n.rlog }

// Requested holds the receipts this node received as requester.
func (n *Node) Requested() *receipts.Requested { return n.requested }

// View is the node's ledger view.
func (n *Node) View() *View { return n.view }

// RecordConsent countersigns an enterprise-signed grant issued in this
// region and records its commitment on the ledger. It returns the
// countersigned document, which the bank presents with its queries.
//
// The enterprise's signature must verify under a certificate that a
// registered identity authority issued for the grant's subject and that
// holds now (credit.VerifyEnterpriseChain, credit.CheckCertified): no
// region, operator or admin token stands in for the enterprise. Every
// answering region checks the same again against the ledger's recording.
func (n *Node) RecordConsent(ctx context.Context, g credit.ConsentGrant) (credit.ConsentGrant, credit.ConsentCommitment, error) {
	if err := g.Validate(); err != nil {
		return g, credit.ConsentCommitment{}, credit.Refuse(credit.CodeInvalidQuery, "consent: %w", err)
	}
	if g.Region != n.cfg.Region {
		return g, credit.ConsentCommitment{}, credit.Refuse(credit.CodeWrongHomeRegion, "consent issued in %s cannot be recorded by %s", g.Region, n.cfg.Region)
	}
	// A stale view may miss a revocation or a retirement: fail closed.
	if err := n.view.Fresh(); err != nil {
		return g, credit.ConsentCommitment{}, err
	}
	// A countersignature under a key the ledger does not record would
	// make every region refuse the consent.
	if err := n.checkOwnRecord(); err != nil {
		return g, credit.ConsentCommitment{}, err
	}
	trust, now := n.view.Trust(), n.now()
	if r := credit.CheckCertified(credit.VerifyEnterpriseChain(&g, trust), &g, trust, now, now); r != nil {
		return g, credit.ConsentCommitment{}, r
	}
	if err := g.Countersign(n.key); err != nil {
		return g, credit.ConsentCommitment{}, err
	}
	sum, err := g.Commitment()
	if err != nil {
		return g, credit.ConsentCommitment{}, err
	}
	c := credit.ConsentCommitment{
		ID: g.ID, Commitment: sum[:], Region: g.Region,
		ValidFrom: g.ValidFrom.UTC(), ValidUntil: g.ValidUntil.UTC(), Status: credit.ConsentActive,
	}
	if err := n.deps.Ledger.RecordConsent(ctx, c); err != nil {
		return g, c, err
	}
	if got, err := n.deps.Ledger.Consent(ctx, g.ID); err == nil {
		c = got
	}
	return g, c, nil
}

// RevokeConsent revokes a consent on the ledger.
func (n *Node) RevokeConsent(ctx context.Context, id string) (credit.ConsentCommitment, error) {
	return n.deps.Ledger.RevokeConsent(ctx, id)
}

// ConsentStatus reads a consent's commitment and its status now.
func (n *Node) ConsentStatus(ctx context.Context, id string) (credit.ConsentCommitment, credit.ConsentStatus, error) {
	if err := credit.ValidateID("consent id", id); err != nil {
		return credit.ConsentCommitment{}, credit.ConsentNotExists, credit.Refuse(credit.CodeInvalidQuery, "%w", err)
	}
	c, err := n.view.Consent(ctx, id)
	if err != nil {
		return c, credit.ConsentNotExists, err
	}
	return c, c.StatusAt(n.now()), nil
}

// Proof returns a receipt of this node's log with its inclusion proof.
func (n *Node) Proof(ctx context.Context, receiptID string) (ReceiptProof, error) {
	if err := credit.ValidateID("receipt id", receiptID); err != nil {
		return ReceiptProof{}, credit.Refuse(credit.CodeInvalidQuery, "%w", err)
	}
	if n.rlog == nil {
		return ReceiptProof{}, ErrNotReady
	}
	r, e, err := n.rlog.Lookup(receiptID)
	if err != nil {
		return ReceiptProof{}, err
	}
	rp := ReceiptProof{Receipt: r, Leaf: e.Leaf, LeafIndex: e.Index}
	ac, ok, err := n.outbox.LastAnchored()
	if err != nil {
		return rp, err
	}
	if ok && ac.Size > e.Index {
		rp.TreeSize, rp.Root, rp.Checkpoint = ac.Size, ac.Root, &ac
	} else if rp.TreeSize, rp.Root, err = n.rlog.Head(); err != nil {
		return rp, err
	}
	if rp.Proof, err = n.rlog.InclusionProof(e.Index, rp.TreeSize); err != nil {
		return rp, err
	}
	if rp.Acks, err = n.rlog.Acks(receiptID); err != nil {
		return rp, err
	}
	if len(rp.Acks) == 0 && n.Settle(ctx) == nil {
		// Its ack may be on the way: the requester answered its bank
		// once it sent it.
		if rp.Acks, err = n.rlog.Acks(receiptID); err != nil {
			return rp, err
		}
	}
	if rp.Acks == nil {
		rp.Acks = []credit.Ack{}
	}
	return rp, nil
}

// Consistency proves that this region's anchored checkpoint of size from
// is a prefix of its anchored checkpoint of size to. Both sizes must be
// checkpoints this node anchored (or adopted from the ledger): a proof is
// worth something only between roots the region signed.
func (n *Node) Consistency(_ context.Context, from, to uint64) (ConsistencyProof, error) {
	if from == 0 || from > to {
		return ConsistencyProof{}, credit.Refuse(credit.CodeInvalidQuery, "consistency proof from size %d to %d: want 0 < from <= to", from, to)
	}
	if n.rlog == nil {
		return ConsistencyProof{}, ErrNotReady
	}
	var cp ConsistencyProof
	for _, s := range []struct {
		size uint64
		into *credit.AnchoredCheckpoint
	}{{from, &cp.From}, {to, &cp.To}} {
		ac, ok, err := n.outbox.AnchoredAt(s.size)
		if err != nil {
			return cp, err
		}
		if !ok {
			return cp, credit.Refuse(credit.CodeNotFound, "region %s has no anchored checkpoint of size %d on this node", n.cfg.Region, s.size)
		}
		*s.into = ac
	}
	p, err := n.rlog.ConsistencyProof(from, to)
	if err != nil {
		return cp, err
	}
	cp.Proof = p
	if cp.Proof == nil {
		cp.Proof = [][]byte{}
	}
	return cp, nil
}

// LatestCheckpoint is this node's last anchored checkpoint.
func (n *Node) LatestCheckpoint() (credit.AnchoredCheckpoint, bool, error) {
	return n.outbox.LastAnchored()
}

// listensUnspecified reports whether a listen address is 0.0.0.0 or ::.
func listensUnspecified(listen []string) bool {
	for _, s := range listen {
		if strings.HasPrefix(s, "/ip4/0.0.0.0/") || strings.HasPrefix(s, "/ip6/::/") {
			return true
		}
	}
	return false
}
