// Package node is the regional node: it wires a region's record store,
// its receipt store, the shared ledger and the consortium router into one
// running service, and owns the query pipeline (authenticate the bank,
// check consent, fan out, verify receipts, acknowledge, consolidate), the
// answering side (check, read, sign and durably log a receipt), the
// consent view fed by ledger events, the anchoring loop, and the
// bank-facing HTTP API with its metrics.
//
// It must not hold storage or protocol details that belong below it:
// Badger keys live in store/receipts, libp2p in p2p, the ledger's
// transport in network. Its dependencies are handed to New.
package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/store/receipts"
)

// Deps are the parts a node runs on. The caller owns them: Close does not
// close DB, Ledger or the router's host.
type Deps struct {
	// DB is the region's Badger database (the record store's); the node
	// keeps its receipt state under its own key prefixes.
	DB *badger.DB
	// Records reads this region's records.
	Records ReportSource
	// Ledger acts as this region's identity.
	Ledger network.Ledger
	// Router reaches every region, this one included.
	Router Router
	// Key is the region's signing key (its libp2p identity key).
	Key ed25519.PrivateKey
	// Peers counts connected consortium peers, for metrics; optional.
	Peers  func() int
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// OnRegions, if set, is told the ledger's region records whenever the
	// node refreshes them (to keep the p2p gater's members current).
	OnRegions func([]credit.RegionMember)
	// AdminToken authorises admin calls of the HTTP API; empty refuses
	// every admin call.
	AdminToken string
}

// ErrNotReady: the node is not started, is closed, or cannot answer.
var ErrNotReady = errors.New("node not ready")

// Node is one running regional node.
type Node struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	now  func() time.Time
	key  ed25519.PrivateKey

	rlog      *receipts.Log
	outbox    *receipts.Outbox
	requested *receipts.Requested
	nonces    *receipts.Nonces
	view      *View
	answerer  *Answerer
	router    Router
	metrics   *metrics

	anchorMu         sync.Mutex
	lastAnchoredSize atomic.Uint64
	each             eachReceipt // anchor.mode per_receipt
	kick             chan struct{}
	anchorCancel     context.CancelFunc
	anchorDone       chan struct{}

	httpSrv  *http.Server
	httpLn   net.Listener
	httpDone chan struct{}

	mu      sync.Mutex
	started bool
	closed  bool
	stops   []func() error // in start order; Close runs them in reverse
}

// New checks cfg and deps and builds a node; Start runs it.
func New(cfg Config, deps Deps) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.DB == nil:
		return nil, errors.New("node: Deps.DB is required")
	case deps.Records == nil:
		return nil, errors.New("node: Deps.Records is required")
	case deps.Ledger == nil:
		return nil, errors.New("node: Deps.Ledger is required")
	case deps.Router == nil:
		return nil, errors.New("node: Deps.Router is required")
	case len(deps.Key) != ed25519.PrivateKeySize:
		return nil, errors.New("node: Deps.Key must be an ed25519 private key")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	n := &Node{
		cfg: cfg, deps: deps, key: deps.Key, router: deps.Router,
		log: deps.Logger.With("region", string(cfg.Region)), now: deps.Now,
		outbox:    receipts.NewOutbox(deps.DB),
		requested: receipts.NewRequested(deps.DB),
		nonces:    receipts.NewNonces(deps.DB),
		kick:      make(chan struct{}, 1),
	}
	n.view = NewView(deps.Ledger, n.outbox, cfg.Ledger.GracePeriod, deps.Now, n.log.With("part", "view"))
	n.view.onRegions = deps.OnRegions
	n.metrics = newMetrics(n)
	n.answerer = &Answerer{
		region: cfg.Region, key: deps.Key, view: n.view, source: deps.Records,
		now: deps.Now, metrics: n.metrics, appended: n.receiptAppended,
	}
	return n, nil
}

// Config returns the node's configuration.
func (n *Node) Config() Config { return n.cfg }

// Answerer is the answering side, for the router of this node's region.
// Its receipt log is attached by Start; answers before Start fail closed.
func (n *Node) Answerer() *Answerer { return n.answerer }

// Start runs the parts in order — receipt log, ledger view, anchoring,
// HTTP API — rolling back what started if one fails.
func (n *Node) Start(ctx context.Context) (err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started || n.closed {
		return fmt.Errorf("%w: start called twice", ErrNotReady)
	}
	n.started = true
	defer func() {
		if err != nil {
			n.stopAll()
		}
	}()
	steps := []struct {
		name  string
		start func(context.Context) (func() error, error)
	}{
		{"receipt log", n.startLog},
		{"ledger view", n.startView},
		{"anchoring", n.startAnchoring},
		{"http api", n.startHTTP},
	}
	for _, s := range steps {
		stop, err := s.start(ctx)
		if err != nil {
			return fmt.Errorf("node %s: start %s: %w", n.cfg.Region, s.name, err)
		}
		n.stops = append(n.stops, stop)
	}
	n.log.Info("node started", "http", n.HTTPAddr(), "log_size", n.rlog.Size())
	return nil
}

func (n *Node) startLog(context.Context) (func() error, error) {
	l, err := receipts.OpenLog(n.deps.DB, receipts.LogOptions{Logger: n.log.With("part", "receipts"), Now: n.now})
	if err != nil {
		return nil, err
	}
	n.rlog = l
	n.answerer.log = l
	if n.cfg.Anchor.Mode == AnchorPerReceipt {
		// Receipts already in the log ride on the first new receipt's
		// checkpoint.
		n.each.start(l.Size())
		n.answerer.log = anchoredEach{Log: l, n: n}
	}
	ac, ok, err := n.outbox.LastAnchored()
	if err != nil {
		l.Close()
		return nil, err
	}
	if ok {
		n.lastAnchoredSize.Store(ac.Size)
	}
	return l.Close, nil
}

func (n *Node) startView(ctx context.Context) (func() error, error) {
	if err := n.view.Start(ctx); err != nil {
		return nil, err
	}
	return n.view.Close, nil
}

func (n *Node) startAnchoring(context.Context) (func() error, error) {
	if n.cfg.Anchor.Mode != AnchorCheckpoint {
		// per_receipt anchors on the answer path; off never anchors.
		n.log.Info("periodic anchoring not running", "anchor_mode", n.cfg.Anchor.Mode)
		return func() error { return nil }, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.anchorCancel, n.anchorDone = cancel, make(chan struct{})
	go n.anchorLoop(ctx)
	return func() error {
		cancel()
		<-n.anchorDone
		return nil
	}, nil
}

func (n *Node) startHTTP(context.Context) (func() error, error) {
	ln, err := net.Listen("tcp", n.cfg.HTTP.Addr)
	if err != nil {
		return nil, err
	}
	n.httpLn = ln
	n.httpSrv = &http.Server{
		Handler:           n.Handler(),
		ReadHeaderTimeout: n.cfg.HTTP.ReadTimeout,
		ReadTimeout:       n.cfg.HTTP.ReadTimeout,
		WriteTimeout:      n.cfg.HTTP.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	n.httpDone = make(chan struct{})
	go func() {
		defer close(n.httpDone)
		if err := n.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("http server stopped", "err", err)
		}
	}()
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := n.httpSrv.Shutdown(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			// A query still waiting on a region that is itself shutting
			// down must not turn a clean stop into a failed one: every
			// receipt was durable before its answer, so the stragglers'
			// connections are closed.
			n.log.Warn("bank API requests still running after 5s; closing their connections")
			err = n.httpSrv.Close()
		}
		<-n.httpDone
		return err
	}, nil
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
	started, closed := n.started, n.closed
	n.mu.Unlock()
	if !started || closed {
		return fmt.Errorf("%w: not running", ErrNotReady)
	}
	if err := n.view.Fresh(); err != nil {
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	return nil
}

// Close stops the parts in reverse order and collects their errors. Safe
// to call twice.
func (n *Node) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
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

// Log is the node's receipt log (nil before Start).
func (n *Node) Log() *receipts.Log { return n.rlog }

// Requested holds the receipts this node received as requester.
func (n *Node) Requested() *receipts.Requested { return n.requested }

// View is the node's ledger view.
func (n *Node) View() *View { return n.view }

// RecordConsent countersigns an enterprise-signed grant issued in this
// region and records its commitment on the ledger. It returns the
// countersigned document, which the bank presents with its queries.
func (n *Node) RecordConsent(ctx context.Context, g credit.ConsentGrant) (credit.ConsentGrant, credit.ConsentCommitment, error) {
	if err := g.Validate(); err != nil {
		return g, credit.ConsentCommitment{}, deny(ReasonInvalidQuery, "consent: %v", err)
	}
	if g.Region != n.cfg.Region {
		return g, credit.ConsentCommitment{}, deny(ReasonWrongHomeRegion, "consent issued in %s cannot be recorded by %s", g.Region, n.cfg.Region)
	}
	if err := g.VerifyEnterprise(); err != nil {
		return g, credit.ConsentCommitment{}, deny(ReasonConsentSignature, "%v", err)
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
	c, err := n.view.Consent(ctx, id)
	if err != nil {
		return c, credit.ConsentNotExists, err
	}
	return c, c.StatusAt(n.now()), nil
}

// ReceiptProof is a logged receipt with its inclusion proof: against the
// anchored checkpoint that covers it when there is one, else against the
// log's current head (Checkpoint nil: not yet anchored).
type ReceiptProof struct {
	Receipt    credit.Receipt             `json:"receipt"`
	LeafIndex  uint64                     `json:"leaf_index"`
	TreeSize   uint64                     `json:"tree_size"`
	Root       []byte                     `json:"root"`
	Proof      [][]byte                   `json:"proof"`
	Acks       []credit.Ack               `json:"acks"`
	Checkpoint *credit.AnchoredCheckpoint `json:"checkpoint"`
}

// Proof returns a receipt of this node's log with its inclusion proof.
func (n *Node) Proof(_ context.Context, receiptID string) (ReceiptProof, error) {
	if n.rlog == nil {
		return ReceiptProof{}, ErrNotReady
	}
	r, e, err := n.rlog.Lookup(receiptID)
	if err != nil {
		return ReceiptProof{}, err
	}
	rp := ReceiptProof{Receipt: r, LeafIndex: e.Index}
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
	if rp.Acks == nil {
		rp.Acks = []credit.Ack{}
	}
	return rp, nil
}

// LatestCheckpoint is this node's last anchored checkpoint.
func (n *Node) LatestCheckpoint() (credit.AnchoredCheckpoint, bool, error) {
	return n.outbox.LastAnchored()
}
