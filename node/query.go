package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/store/receipts"
)

// Router fans a query out to the regions that may hold records on its
// subject, this node's own region included, and carries acks back. The
// p2p package provides the libp2p one; LocalRouter serves one process.
type Router interface {
	Query(ctx context.Context, requester credit.RegionID, q *credit.Query) []RegionResult
	Acknowledge(ctx context.Context, region credit.RegionID, ack credit.Ack) error
}

// RegionResult is one region's outcome: an answer or an error (a *Denial
// when the region refused).
type RegionResult struct {
	Region credit.RegionID
	Answer *Answer
	Err    error
}

// ErrRegionUnknown: the router has no route to the region.
var ErrRegionUnknown = errors.New("no route to region")

// LocalRouter routes to Answerers in this process: the embedded demo and
// tests use it where a consortium would use libp2p.
type LocalRouter struct {
	timeout time.Duration
	mu      sync.RWMutex
	regions map[credit.RegionID]*Answerer
}

// NewLocalRouter makes an empty router; Add the regions' answerers.
func NewLocalRouter(perRegionTimeout time.Duration) *LocalRouter {
	return &LocalRouter{timeout: perRegionTimeout, regions: map[credit.RegionID]*Answerer{}}
}

// Add routes region to a.
func (r *LocalRouter) Add(region credit.RegionID, a *Answerer) {
	r.mu.Lock()
	r.regions[region] = a
	r.mu.Unlock()
}

// Query asks every routed region concurrently, each within the timeout.
func (r *LocalRouter) Query(ctx context.Context, requester credit.RegionID, q *credit.Query) []RegionResult {
	r.mu.RLock()
	ids := make([]credit.RegionID, 0, len(r.regions))
	for id := range r.regions {
		ids = append(ids, id)
	}
	r.mu.RUnlock()
	slices.Sort(ids)
	out := make([]RegionResult, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, r.timeout)
			defer cancel()
			r.mu.RLock()
			a := r.regions[id]
			r.mu.RUnlock()
			// Each region gets its own copy, as it would off the wire.
			qc := *q
			ans, err := a.Answer(rctx, requester, &qc)
			out[i] = RegionResult{Region: id, Err: err}
			if err == nil {
				out[i].Answer = &ans
			}
		}()
	}
	wg.Wait()
	return out
}

// Acknowledge hands an ack to the answering region.
func (r *LocalRouter) Acknowledge(ctx context.Context, region credit.RegionID, ack credit.Ack) error {
	r.mu.RLock()
	a, ok := r.regions[region]
	r.mu.RUnlock()
	if !ok {
		return fmt.Errorf("%w %s", ErrRegionUnknown, region)
	}
	return a.Acknowledge(ctx, ack)
}

// Region statuses in a consolidated report.
const (
	StatusOK             = "ok"
	StatusDenied         = "denied"
	StatusUnavailable    = "unavailable"
	StatusInvalidReceipt = "invalid_receipt"
)

// RegionStatus is one region's part of a consolidated report.
type RegionStatus struct {
	Region      credit.RegionID `json:"region"`
	Status      string          `json:"status"`
	Reason      Reason          `json:"reason,omitempty"`
	Message     string          `json:"message,omitempty"`
	RecordCount int             `json:"record_count"`
	Report      *credit.Report  `json:"report,omitempty"`
	Receipt     *credit.Receipt `json:"receipt,omitempty"`
	LeafIndex   *uint64         `json:"leaf_index,omitempty"`
	Ack         *credit.Ack     `json:"ack,omitempty"`
}

// Consolidated is the bank's answer: every region's slice with its receipt
// and this node's ack, and a status per region.
type Consolidated struct {
	QueryDigest string          `json:"query_digest"`
	Subject     credit.USCC     `json:"uscc"`
	Bank        credit.BankID   `json:"bank"`
	Home        credit.RegionID `json:"home_region"`
	RecordCount int             `json:"record_count"`
	Regions     []RegionStatus  `json:"regions"`
	Elapsed     float64         `json:"elapsed_ms"`
}

// Query runs the home-node pipeline for a bank's signed query:
// authenticate the bank (registered here, active, signed, fresh time and
// unused nonce), check its consent, fan out to the regions, verify each
// receipt, keep it with a signed ack, and consolidate.
func (n *Node) Query(ctx context.Context, q *credit.Query) (*Consolidated, error) {
	start := n.now()
	c, err := n.query(ctx, q, start)
	outcome := "ok"
	if err != nil {
		outcome = "error"
		if r := ReasonOf(err); r != "" {
			outcome = "denied"
			n.metrics.denied("home", r)
		}
	}
	n.metrics.queries.WithLabelValues(outcome).Inc()
	n.metrics.latency.WithLabelValues("home").Observe(n.now().Sub(start).Seconds())
	return c, err
}

func (n *Node) query(ctx context.Context, q *credit.Query, now time.Time) (*Consolidated, error) {
	if err := n.view.Fresh(); err != nil {
		return nil, err
	}
	if err := q.Validate(); err != nil {
		return nil, deny(ReasonInvalidQuery, "%v", err)
	}
	bank, err := n.view.AuthenticateBank(q)
	if err != nil {
		return nil, err
	}
	if bank.Region != n.cfg.Region {
		return nil, deny(ReasonWrongHomeRegion, "bank %s's home region is %s, not %s", bank.ID, bank.Region, n.cfg.Region)
	}
	if skew := now.Sub(q.Time); skew > n.cfg.Query.Window || skew < -n.cfg.Query.Window {
		return nil, deny(ReasonStaleQuery, "query time %s is %s from the node's clock (window %s)", q.Time.UTC().Format(time.RFC3339), skew.Round(time.Second), n.cfg.Query.Window)
	}
	// The nonce is spent only by a query that passed every check, so a
	// refused query does not fill the nonce store.
	if err := n.view.CheckQuery(ctx, q, now); err != nil {
		return nil, err
	}
	if err := n.nonces.Use(q.Bank, q.Nonce, 2*n.cfg.Query.Window); err != nil {
		if errors.Is(err, receipts.ErrReplay) {
			return nil, deny(ReasonReplay, "nonce %s was already used", q.Nonce)
		}
		return nil, err
	}
	qd, err := q.Digest()
	if err != nil {
		return nil, err
	}
	// From here the exchange with the regions runs to its end even if the
	// bank hangs up: an answering region logs its receipt before it
	// answers, and a receipt this node drops or never acknowledges is an
	// audit finding (crosscheck.unacked) that a bank could otherwise cause
	// at will by disconnecting. The router bounds each region's exchange
	// and each ack by the region timeout.
	xctx := context.WithoutCancel(ctx)
	results := n.router.Query(xctx, n.cfg.Region, q)
	c := &Consolidated{QueryDigest: hex.EncodeToString(qd[:]), Subject: q.Subject, Bank: q.Bank, Home: n.cfg.Region}
	sts := make([]RegionStatus, len(results))
	var held []receipts.Held
	var heldAt []int
	for i, res := range results {
		sts[i] = n.settle(q, qd, res)
		if sts[i].Ack != nil {
			held = append(held, receipts.Held{Receipt: *sts[i].Receipt, Ack: *sts[i].Ack, ReceivedAt: n.now()})
			heldAt = append(heldAt, i)
		}
	}
	// Every verified receipt is kept, with our ack, in one durable write
	// before the bank sees the answer.
	if err := n.requested.Put(held...); err != nil {
		for _, i := range heldAt {
			sts[i] = RegionStatus{Region: sts[i].Region, Status: StatusUnavailable, Message: fmt.Sprintf("keeping receipt: %v", err)}
		}
		held = nil
	}
	// The answering regions logged their receipts durably already; acks
	// are evidence for audits and a lost one is logged, not fatal.
	var wg sync.WaitGroup
	for _, h := range held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.router.Acknowledge(xctx, h.Receipt.Answerer, h.Ack); err != nil {
				n.log.Warn("ack not delivered", "region", h.Receipt.Answerer, "receipt", h.Receipt.ID, "err", err)
			}
		}()
	}
	wg.Wait()
	for _, st := range sts {
		c.RecordCount += st.RecordCount
		c.Regions = append(c.Regions, st)
	}
	c.Elapsed = float64(n.now().Sub(now).Microseconds()) / 1000
	return c, nil
}

// settle turns one region's result into its status, verifying the receipt
// and signing this node's ack.
func (n *Node) settle(q *credit.Query, qd [32]byte, res RegionResult) RegionStatus {
	st := RegionStatus{Region: res.Region}
	if res.Err != nil {
		var d *Denial
		if errors.As(res.Err, &d) {
			st.Status, st.Reason, st.Message = StatusDenied, d.Reason, d.Detail
		} else {
			st.Status, st.Message = StatusUnavailable, res.Err.Error()
		}
		return st
	}
	a := res.Answer
	if err := n.verifyReceipt(q, qd, res.Region, a); err != nil {
		n.log.Warn("invalid receipt", "region", res.Region, "err", err)
		st.Status, st.Message = StatusInvalidReceipt, err.Error()
		return st
	}
	ack, err := credit.NewAck(&a.Receipt, n.cfg.Region, n.now(), n.key)
	if err != nil {
		st.Status, st.Message = StatusUnavailable, err.Error()
		return st
	}
	idx := a.LeafIndex
	st.Status, st.RecordCount = StatusOK, a.Report.Count()
	st.Report, st.Receipt, st.LeafIndex, st.Ack = &a.Report, &a.Receipt, &idx, &ack
	return st
}

// ErrBadReceipt: a region's receipt does not match its answer or query.
var ErrBadReceipt = errors.New("receipt does not match the answer")

func (n *Node) verifyReceipt(q *credit.Query, qd [32]byte, region credit.RegionID, a *Answer) error {
	r := &a.Receipt
	m, ok := n.view.Region(region)
	if !ok {
		return fmt.Errorf("%w: region %s is not a member", ErrBadReceipt, region)
	}
	if err := r.Verify(m.PubKey); err != nil {
		return err
	}
	rd, err := r.Query.Digest()
	if err != nil || rd != qd {
		return fmt.Errorf("%w: receipt %s names another query", ErrBadReceipt, r.ID)
	}
	if r.Answerer != region || r.Requester != n.cfg.Region {
		return fmt.Errorf("%w: receipt %s names %s→%s", ErrBadReceipt, r.ID, r.Answerer, r.Requester)
	}
	d := a.Report.Digest()
	if !bytes.Equal(d[:], r.ReportDigest) || r.RecordCount != a.Report.Count() || a.Report.Subject != q.Subject {
		return fmt.Errorf("%w: receipt %s digest or count differs from the report", ErrBadReceipt, r.ID)
	}
	if !credit.CategoriesSubset(a.Report.Categories(), q.Categories) {
		return fmt.Errorf("%w: region %s returned categories outside the query", ErrBadReceipt, region)
	}
	return nil
}
