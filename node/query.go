package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/p2p"
	"github.com/prdcredit/ccnode/store/receipts"
)

// canonBufs holds the buffers of statuses' canonical encodings, back once
// the bank's answer is written (Consolidated.release).
var canonBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func putCanon(b []byte) {
	if b != nil && cap(b) <= heldCanonicalMax {
		b = b[:0]
		canonBufs.Put(&b)
	}
}

// release gives the statuses' encodings back once the answer is written;
// c is not written again.
func release(c *Consolidated) {
	for i := range c.Regions {
		putCanon(c.Regions[i].Canon)
		c.Regions[i].Canon = nil
	}
}

// heldCanonicalMax bounds the canonical encoding a status keeps for the
// bank's answer; a larger report is encoded again as it is written, so
// that its bytes are never held twice.
const heldCanonicalMax = 1 << 20

// Query runs a bank's signed query at its home node: admit it once (this
// node must be the bank's home), then ask every region that may hold
// records on the subject — this node's own slice served in-process, the
// others over p2p — verify each remote receipt, keep every receipt with a
// signed ack, and consolidate.
func (n *Node) Query(ctx context.Context, q *credit.Query) (*Consolidated, error) {
	defer n.imports.answering()()
	start := n.now()
	c, err := n.query(ctx, q, start)
	outcome := "ok"
	if err != nil {
		outcome = "error"
		if credit.RefusalOf(err) != nil {
			outcome = "denied"
			n.metrics.denied("home", err)
		}
	}
	n.metrics.queries.WithLabelValues(outcome).Inc()
	n.metrics.latency.WithLabelValues("home").Observe(n.now().Sub(start).Seconds())
	return c, err
}

func (n *Node) query(ctx context.Context, q *credit.Query, now time.Time) (*Consolidated, error) {
	if err := n.admit(ctx, q, now, n.cfg.Region); err != nil {
		return nil, err
	}
	qj, qd, err := q.CanonicalAndDigest()
	if err != nil {
		return nil, credit.Refuse(credit.CodeInvalidQuery, "%w", err)
	}
	// From here the exchange with the regions runs to its end even if the
	// bank hangs up: an answering region logs its receipt before it
	// answers, and a receipt this node drops or never acknowledges is an
	// audit finding (crosscheck.unacked) that a bank could otherwise cause
	// at will by disconnecting. The p2p client bounds each exchange.
	xctx := context.WithoutCancel(ctx)
	regions := n.regionsFor(q.Subject)
	sts := make([]RegionStatus, len(regions))
	request := p2p.EncodeRequest(n.cfg.Region, qj)
	k := n.newKeeper(len(regions))
	// The other regions are asked first, each on an asker, and this
	// node's own slice is served on this goroutine, which would otherwise
	// only wait: a remote answer is the longer path (a round trip and the
	// region's durable log write), so its request goes out before the own
	// slice takes this core (Gosched lets the new goroutines send).
	var wg sync.WaitGroup
	own := slices.Index(regions, n.cfg.Region)
	for i, id := range regions {
		if i == own {
			continue
		}
		wg.Add(1)
		n.askers.Go(func() { defer wg.Done(); sts[i] = n.askRemote(xctx, q, qj, qd, id, request, k) })
	}
	if own >= 0 {
		runtime.Gosched()
		sts[own] = n.askOwn(xctx, q, now, k)
	}
	wg.Wait()
	if err := <-k.done; err != nil {
		n.log.Warn("keeping received receipts", "err", err)
		unkept(sts, err)
	}
	for _, st := range sts {
		n.metrics.answered(st)
	}
	// Retired regions are named, not silently absent; one retired while
	// this query ran (its connection cut mid-answer, or its node, which
	// learnt it first, refusing not_member) is reported retired rather
	// than unavailable or denied. A region that refuses as no member while
	// this node's view still has it active is looked up on the ledger.
	retired := n.view.Retired()
	for _, st := range sts {
		if st.Status == StatusDenied && st.Reason == credit.CodeNotMember && !slices.ContainsFunc(retired, func(r credit.RegionMember) bool { return r.ID == st.Region }) {
			if r, err := n.deps.Ledger.Region(xctx, st.Region); err == nil && r.Status == credit.StatusRetired {
				retired = append(retired, r)
			}
		}
	}
	for _, r := range retired {
		st := RegionStatus{Region: r.ID, Status: StatusRetired,
			Message: fmt.Sprintf("region %s retired from the consortium at %s: it is not asked", r.ID, r.UpdatedAt.Format(time.RFC3339))}
		if i := slices.IndexFunc(sts, func(s RegionStatus) bool { return s.Region == r.ID }); i < 0 {
			sts = append(sts, st)
		} else if sts[i].Status == StatusUnavailable || (sts[i].Status == StatusDenied && sts[i].Reason == credit.CodeNotMember) {
			sts[i] = st
		}
	}
	c := &Consolidated{QueryDigest: hex.EncodeToString(qd[:]), Subject: q.Subject, Bank: q.Bank, Home: n.cfg.Region, Regions: sts}
	for _, st := range sts {
		c.RecordCount += st.RecordCount
	}
	c.Elapsed = float64(n.now().Sub(now).Microseconds()) / 1000
	return c, nil
}

// regionsFor lists the regions asked about subject: its registration
// region first, then every other active member region by id.
func (n *Node) regionsFor(subject credit.USCC) []credit.RegionID {
	reg, _ := n.members.RegistrationRegion(subject)
	ids := make([]credit.RegionID, 0, 8)
	if reg != "" {
		ids = append(ids, reg)
	}
	for _, m := range n.members.Active() {
		if m.ID != reg {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// askOwn serves this node's own slice of an admitted query: nothing is
// checked again, and the ack goes into this node's own log directly.
func (n *Node) askOwn(ctx context.Context, q *credit.Query, now time.Time, k *keeper) RegionStatus {
	st := RegionStatus{Region: n.cfg.Region}
	var w memWriter
	r, err := n.serve(ctx, n.cfg.Region, q, now, &w)
	if err != nil {
		putCanon(w.canon)
		k.settled(nil)
		return failed(st, err)
	}
	rep := credit.NewReport(q.Subject, w.records)
	st = n.settle(st, r, w.leaf, &rep, w.idx)
	if st.Report != nil {
		// serve encoded it for the digest, while the remote regions answer.
		st.Canon = w.canon
	} else {
		putCanon(w.canon)
	}
	k.settled(&st)
	if st.Ack != nil {
		if err := n.rlog.PutAck(*st.Ack); err != nil {
			n.log.Warn("ack not kept", "receipt", st.Ack.ReceiptID, "err", err)
		}
	}
	return st
}

// askRemote asks another region, verifies its receipt and acknowledges
// it on the answer's stream.
func (n *Node) askRemote(ctx context.Context, q *credit.Query, qj []byte, qd [32]byte, region credit.RegionID, request []byte, k *keeper) RegionStatus {
	st := RegionStatus{Region: region}
	acked := false
	_, err := n.client.Ask(ctx, region, request, func(reply *p2p.Reply) *credit.Ack {
		acked = true
		rep := credit.NewReport(q.Subject, reply.Records)
		canon, leaf, err := n.verifyReceipt(q, qj, qd, region, &reply.Receipt, &rep)
		if err != nil {
			n.log.Warn("invalid receipt", "region", region, "err", err)
			st.Status, st.Message = StatusInvalidReceipt, err.Error()
			k.settled(nil)
			return nil
		}
		st = n.settle(st, &reply.Receipt, leaf, &rep, reply.LeafIndex)
		if len(canon) <= heldCanonicalMax {
			st.Canon = canon
		} else {
			putCanon(canon)
		}
		k.settled(&st)
		return st.Ack
	})
	if !acked {
		k.settled(nil)
	}
	if err != nil {
		return failed(st, err)
	}
	// The region's AckResponse is not waited for (the client logs an ack
	// it did not store): the bank's answer needs nothing from it.
	return st
}

// failed is a region's status when it gave no answer: the code and
// message of its refusal, exactly as it gave them, with the status denied,
// or unavailable when the refusal says it cannot answer now (a 5xx code)
// or it could not be reached.
func failed(st RegionStatus, err error) RegionStatus {
	r := credit.RefusalOf(err)
	if r == nil {
		st.Status, st.Message = StatusUnavailable, err.Error()
		return st
	}
	st.Status, st.Reason, st.Message = StatusDenied, r.Code, r.Msg
	if r.Code.HTTPStatus() >= 500 {
		st.Status = StatusUnavailable
	}
	return st
}

// settle signs this node's ack of a receipt whose LeafBytes are leaf and
// fills the region's status.
func (n *Node) settle(st RegionStatus, r *credit.Receipt, leaf []byte, rep *credit.Report, idx uint64) RegionStatus {
	ack, err := credit.NewAckOfLeaf(r, leaf, n.cfg.Region, n.now(), n.key)
	if err != nil {
		st.Status, st.Message = StatusUnavailable, err.Error()
		return st
	}
	st.Status, st.RecordCount = StatusOK, r.RecordCount
	st.Report, st.Receipt, st.Leaf, st.LeafIndex, st.Ack = rep, r, leaf, &idx, &ack
	return st
}

// keeper keeps a query's received receipts with this node's acks in one
// Requested.Put (one transaction, synced with the next round), started as the
// last region settles: it runs while that region's ack is sent, and the
// bank sees the answer only once it is kept (this node's own copy; the
// ack sent is evidence for the answerer's log, which the bank does not
// wait for).
type keeper struct {
	n    *Node
	mu   sync.Mutex
	left int // regions not settled yet
	held []receipts.Held
	done chan error // Put's outcome
}

func (n *Node) newKeeper(regions int) *keeper {
	k := &keeper{n: n, left: regions, held: make([]receipts.Held, 0, regions), done: make(chan error, 1)}
	if regions == 0 {
		k.done <- nil
	}
	return k
}

// settled is called once per region: with its status once it holds a
// signed ack, nil when the region gives nothing to keep.
func (k *keeper) settled(st *RegionStatus) {
	k.mu.Lock()
	if st != nil && st.Ack != nil {
		k.held = append(k.held, receipts.Held{Receipt: *st.Receipt, Ack: *st.Ack, ReceivedAt: k.n.now(), Leaf: st.Leaf})
	}
	k.left--
	last, held := k.left == 0, k.held
	k.mu.Unlock()
	if !last {
		return
	}
	if len(held) == 0 {
		k.done <- nil
		return
	}
	k.n.askers.Go(func() { k.done <- k.n.requested.Put(held...) })
}

// unkept reports the regions whose receipts could not be kept as
// unavailable: the bank gets no slice this node holds no evidence of.
func unkept(sts []RegionStatus, err error) {
	for i, st := range sts {
		if st.Ack != nil {
			sts[i] = RegionStatus{Region: st.Region, Status: StatusUnavailable, Message: fmt.Sprintf("keeping receipt: %v", err)}
		}
	}
}

// ErrBadReceipt: a region's receipt does not match its answer or query.
var ErrBadReceipt = errors.New("receipt does not match the answer")

// verifyReceipt is the one check of a receipt another region sent: signed
// by the region's key on the ledger, naming this query (whose canonical
// encoding is qj and digest qd) and both regions, with the id the region
// issues for this query, and matching the slice received in digest,
// count and categories. It returns the report's canonical encoding that
// it digested, and the receipt's LeafBytes.
func (n *Node) verifyReceipt(q *credit.Query, qj []byte, qd [32]byte, region credit.RegionID, r *credit.Receipt, rep *credit.Report) (canon, leaf []byte, err error) {
	m, ok := n.view.Region(region)
	if !ok {
		return nil, nil, fmt.Errorf("%w: region %s is not a member", ErrBadReceipt, region)
	}
	if r.Answerer != region || r.Requester != n.cfg.Region {
		return nil, nil, fmt.Errorf("%w: receipt %s names %s→%s", ErrBadReceipt, r.ID, r.Answerer, r.Requester)
	}
	// The id derives from the region and the query: a region's log holds
	// each query once, and this node keeps a query's receipts under one.
	if id, err := credit.ReceiptIDOfDigest(region, qd); err != nil || r.ID != id {
		return nil, nil, fmt.Errorf("%w: receipt id %s is not the one region %s issues for this query (%s)", ErrBadReceipt, r.ID, region, id)
	}
	key := m.PubKey
	if m.Status == credit.StatusRetired {
		// This node asks active members only: region was one when q was
		// sent, and the vote retiring it committed since. A region answers
		// the queries asked while it was a member, within the window.
		if !credit.AnsweredInWindow(q.Time, r.Time) {
			return nil, nil, fmt.Errorf("%w: region %s retired at %s; receipt %s signed at %s, later than %s after the query",
				ErrBadReceipt, region, m.UpdatedAt.UTC().Format(time.RFC3339Nano), r.ID, r.Time.UTC().Format(time.RFC3339Nano), credit.QueryWindow)
		}
		key = m.KeyAt(q.Time)
	}
	names, leaf, err := r.VerifyNamesQuery(key, qj, n.sigs.verify)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadReceipt, err)
	}
	if !names {
		return nil, nil, fmt.Errorf("%w: receipt %s names another query", ErrBadReceipt, r.ID)
	}
	d, canon := rep.DigestCanonical((*canonBufs.Get().(*[]byte))[:0])
	if !bytes.Equal(d[:], r.ReportDigest) || r.RecordCount != rep.Count() {
		putCanon(canon)
		return nil, nil, fmt.Errorf("%w: receipt %s: digest or count differs from the slice", ErrBadReceipt, r.ID)
	}
	if !credit.CategoriesSubset(rep.Categories(), q.Categories) {
		putCanon(canon)
		return nil, nil, fmt.Errorf("%w: region %s returned categories outside the query", ErrBadReceipt, region)
	}
	return canon, leaf, nil
}
