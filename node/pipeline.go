package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/p2p"
	"github.com/prdcredit/ccnode/store"
	"github.com/prdcredit/ccnode/store/receipts"
)

// The answering pipeline, the one way this node answers a query: admit
// (every check, the nonce spent last), then serve (read, digest, sign, log
// durably, write). A query from another region's node comes through Answer
// (the p2p server's Handler); the home node's bank query runs admit in
// Query and serves its own region's slice directly.

// answerChunkBytes bounds the records a slice is read and sent in: a slice
// that fits is read once and held; a larger one is read twice from one
// snapshot (digest, then send) and never held whole.
const answerChunkBytes = 1 << 20

// msgBufs holds the buffers a query's signed message is encoded into.
var msgBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// admit decides whether q may be answered at now for region home and
// spends its nonce: the ledger view is fresh, q is valid, its bank is
// registered, active, of region home, and signed it, its time is within
// the window, and its consent holds (credit.DecideConsent). It returns nil
// or a *credit.Refusal. home is this node's region for a bank's query and
// the requesting region for another region's request: a bank queries
// through its home node only, so a member relaying a query of another
// region's bank (every region the home asks holds one) is refused.
func (n *Node) admit(ctx context.Context, q *credit.Query, now time.Time, home credit.RegionID) error {
	if err := n.logRefusal(); err != nil {
		return err
	}
	if err := n.view.Fresh(); err != nil {
		return err
	}
	if err := n.checkOwnRecord(); err != nil {
		return err
	}
	if err := q.Validate(); err != nil {
		return credit.Refuse(credit.CodeInvalidQuery, "%w", err)
	}
	bank, ok := n.view.Bank(q.Bank)
	if !ok {
		return credit.Refuse(credit.CodeBankUnknown, "bank %s is not registered", q.Bank)
	}
	if bank.Status != credit.StatusActive {
		return credit.Refuse(credit.CodeBankInactive, "bank %s is %s", q.Bank, bank.Status)
	}
	if bank.Region != home {
		return credit.Refuse(credit.CodeWrongHomeRegion, "bank %s's home region is %s, not %s", bank.ID, bank.Region, home)
	}
	// One encoding of the query gives the message the bank signed and the
	// commitment of the consent document inside it.
	bp := msgBufs.Get().(*[]byte)
	msg, commitment, _, err := q.AppendSignedMessageAndCommitment((*bp)[:0])
	if err != nil {
		msgBufs.Put(bp)
		return credit.Refuse(credit.CodeInvalidQuery, "%w", err)
	}
	good := len(bank.PubKey) == ed25519.PublicKeySize && n.sigs.verify(bank.PubKey, msg, q.Sig)
	*bp = msg[:0]
	msgBufs.Put(bp)
	if !good {
		return credit.Refuse(credit.CodeBadSignature, "query of bank %s: %w", q.Bank, credit.ErrBadSignature)
	}
	if skew := now.Sub(q.Time); skew > n.cfg.Query.Window || skew < -n.cfg.Query.Window {
		return credit.Refuse(credit.CodeStaleQuery, "query time %s is %s from the node's clock (window %s)",
			q.Time.UTC().Format(time.RFC3339), skew.Round(time.Millisecond), n.cfg.Query.Window)
	}
	if err := n.view.DecideConsent(ctx, q, now, &commitment); err != nil {
		return err
	}
	// Last: a refused or forged query never fills the nonce store or burns
	// a real query's nonce. This node accepts q until its clock reads
	// q.Time+Window, so the nonce is kept until then: counted from the
	// query's time, not from now, and rounded up to a whole second by the
	// store.
	if err := n.nonces.Use(q.Bank, q.Nonce, q.Time.Add(n.cfg.Query.Window).Sub(now)); err != nil {
		if errors.Is(err, receipts.ErrReplay) {
			return credit.Refuse(credit.CodeReplayedNonce, "nonce %s of bank %s was already used", q.Nonce, q.Bank)
		}
		return credit.Refuse(credit.CodeUnavailable, "nonce store: %w", err)
	}
	return nil
}

// serve answers an admitted query for requester: it reads the slice from
// one store snapshot, digests it, signs a receipt and logs it durably, and
// only then writes the receipt and the records to w.
func (n *Node) serve(ctx context.Context, requester credit.RegionID, q *credit.Query, now time.Time, w p2p.AnswerWriter) (*credit.Receipt, error) {
	start := n.now()
	if err := n.diskRefusal(); err != nil {
		return nil, err
	}
	snap, err := n.deps.Store.OpenReport(q.Subject, store.Filter{Categories: q.Categories})
	if err != nil {
		return nil, credit.Refuse(credit.CodeUnavailable, "reading records: %w", err)
	}
	defer snap.Close()
	d := credit.NewReportDigest(q.Subject)
	if k, ok := w.(canonicalKeeper); ok {
		d = credit.NewReportDigestTee(q.Subject, k.canonicalSink())
	}
	var held []credit.Record // the slice, while it is one piece
	pieces := 0
	err = snap.Each(ctx, answerChunkBytes, func(recs []credit.Record) error {
		d.Add(recs)
		held = recs
		if pieces++; pieces > 1 {
			held = nil
		}
		return nil
	})
	if err != nil {
		return nil, credit.Refuse(credit.CodeUnavailable, "reading records: %w", err)
	}
	id, err := credit.ReceiptID(n.cfg.Region, q)
	if err != nil {
		return nil, credit.Refuse(credit.CodeInvalidQuery, "receipt id: %w", err)
	}
	sum := d.Sum()
	r := credit.Receipt{
		Version: 1, ID: id, Query: *q, Requester: requester, Answerer: n.cfg.Region,
		Categories: d.Categories(), ReportDigest: sum[:], RecordCount: d.Count(), Time: now,
	}
	leaf, err := r.SignLeaf(n.key)
	if err != nil {
		return nil, credit.Refuse(credit.CodeInternal, "signing receipt: %w", err)
	}
	idx, err := n.logReceipt(ctx, r.ID, leaf)
	if errors.Is(err, receipts.ErrDuplicateReceipt) {
		// The id derives from the query: this query was answered before.
		return nil, credit.Refuse(credit.CodeReplayedNonce, "query with nonce %s of bank %s was already answered: %w", q.Nonce, q.Bank, err)
	}
	if err != nil {
		return nil, credit.Refuse(credit.CodeUnavailable, "logging receipt: %w", err)
	}
	n.metrics.latency.WithLabelValues("answer").Observe(n.now().Sub(start).Seconds())
	if err := w.Begin(leaf, idx); err != nil {
		return nil, err
	}
	switch {
	case pieces > 1:
		err = snap.Each(ctx, answerChunkBytes, w.Records)
	case len(held) > 0:
		err = w.Records(held)
	}
	return &r, err
}

// logReceipt appends a signed receipt (its id and LeafBytes) durably
// (and, in anchor.mode per_receipt, anchors it) before any answer
// carrying it may leave.
func (n *Node) logReceipt(ctx context.Context, id string, leaf []byte) (uint64, error) {
	if err := n.logRefusal(); err != nil {
		return 0, err
	}
	idx, err := n.rlog.AppendLeaf(ctx, id, leaf)
	if err != nil {
		return idx, err
	}
	n.metrics.receipts.Inc()
	n.receiptAppended()
	return idx, n.anchorIfPerReceipt(ctx, idx)
}

// Answer is the p2p server's Handler: it answers a query that the active
// member region whose peer is from sends for one of its banks. The server
// turns a panic here into an internal refusal (or a reset stream).
func (n *Node) Answer(ctx context.Context, from peer.ID, req *p2p.Request, w p2p.AnswerWriter) (err error) {
	defer n.imports.answering()()
	now := n.now()
	q := &req.Query
	if err := n.requesterIs(from, req.Requester); err != nil {
		n.metrics.denied("answer", err)
		return err
	}
	if err := n.admit(ctx, q, now, req.Requester); err != nil {
		n.metrics.denied("answer", err)
		return err
	}
	_, err = n.serve(ctx, req.Requester, q, now, w)
	return err
}

// Acknowledge is the p2p server's Handler for acks: the requesting region
// (the active member whose peer is from) acknowledges the receipt this
// node sent it on the same stream (receiptLeaf, just logged); the ack is
// kept beside the receipt.
func (n *Node) Acknowledge(ctx context.Context, from peer.ID, receiptLeaf []byte, a *credit.Ack) (err error) {
	if err := n.requesterIs(from, a.Requester); err != nil {
		return err
	}
	r, ok := credit.DecodeCanonicalReceipt(receiptLeaf)
	if !ok {
		if r, err = credit.DecodeReceipt(receiptLeaf); err != nil {
			return credit.Refuse(credit.CodeInternal, "the receipt sent: %w", err)
		}
	}
	if a.ReceiptID != r.ID {
		return credit.Refuse(credit.CodeInvalidQuery, "the ack names receipt %s, not the answer's %s", a.ReceiptID, r.ID)
	}
	if r.Requester != a.Requester {
		return credit.Refuse(credit.CodeInvalidQuery, "receipt %s was issued to %s", r.ID, r.Requester)
	}
	m, _ := n.view.Region(a.Requester)
	// The leaf is this node's own, as SignLeaf made it: canonical, so its
	// bytes are what the receipt's digest hashes.
	var verr error
	if ok {
		verr = a.VerifyLeafWith(&r, receiptLeaf, m.PubKey, n.sigs.verify)
	} else {
		verr = a.VerifyWith(&r, m.PubKey, n.sigs.verify)
	}
	if err := verr; err != nil {
		return credit.Refuse(credit.CodeBadSignature, "%w", err)
	}
	if err := n.rlog.PutAck(*a); err != nil {
		return credit.Refuse(credit.CodeUnavailable, "keeping ack: %w", err)
	}
	return nil
}

// requesterIs checks that region is an active member whose peer is from.
func (n *Node) requesterIs(from peer.ID, region credit.RegionID) error {
	m, ok := n.view.Region(region)
	if !ok || m.Status != credit.StatusActive {
		return credit.Refuse(credit.CodeNotMember, "region %s is not an active member", region)
	}
	if p, err := peer.Decode(m.PeerID); err != nil || p != from {
		return credit.Refuse(credit.CodeNotMember, "peer %s is not region %s", from, region)
	}
	return nil
}

// canonicalKeeper is an AnswerWriter that keeps the canonical encoding
// serve makes of the slice for its digest, so that it is not made again.
type canonicalKeeper interface{ canonicalSink() io.Writer }

// memWriter holds one answer in memory: the home node's own slice, with
// its canonical encoding while that is at most heldCanonicalMax.
type memWriter struct {
	leaf    []byte
	idx     uint64
	records []credit.Record
	canon   []byte
	over    bool // the encoding passed heldCanonicalMax: canon is dropped
}

func (m *memWriter) canonicalSink() io.Writer { return (*canonSink)(m) }

// canonSink is memWriter as the io.Writer of its canonical encoding; it
// never fails, as credit.NewReportDigestTee requires.
type canonSink memWriter

func (c *canonSink) Write(p []byte) (int, error) {
	switch {
	case c.over:
	case len(c.canon)+len(p) > heldCanonicalMax:
		putCanon(c.canon)
		c.canon, c.over = nil, true
	default:
		if c.canon == nil {
			c.canon = (*canonBufs.Get().(*[]byte))[:0]
		}
		c.canon = append(c.canon, p...)
	}
	return len(p), nil
}

func (m *memWriter) Begin(leaf []byte, idx uint64) error {
	m.leaf, m.idx = leaf, idx
	return nil
}

func (m *memWriter) Records(recs []credit.Record) error {
	if m.records == nil {
		m.records = recs
	} else {
		m.records = append(m.records, recs...)
	}
	return nil
}

var _ p2p.Handler = (*Node)(nil)
