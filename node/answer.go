package node

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// ReportSource reads this region's records about a subject, in the
// categories asked (package store implements it).
type ReportSource interface {
	Report(ctx context.Context, subject credit.USCC, categories []credit.Category) (credit.Report, error)
}

// ReceiptLog is where this node's issued receipts and the acks it
// receives for them go (receipts.Log implements it).
type ReceiptLog interface {
	// Append returns once the receipt is durable.
	Append(ctx context.Context, r *credit.Receipt) (uint64, error)
	PutAck(a credit.Ack) error
	Receipt(id string) (credit.Receipt, error)
}

// Answer is one region's signed answer to a query.
type Answer struct {
	Report    credit.Report  `json:"report"`
	Receipt   credit.Receipt `json:"receipt"`
	LeafIndex uint64         `json:"leaf_index"`
}

// Answerer is the answering side of the query protocol: it checks the
// query and its consent against this node's ledger view, reads the records,
// signs a receipt and logs it durably before returning. The p2p report
// protocol server calls it for queries from other regions; the home node
// calls it for its own region through the same router.
type Answerer struct {
	region  credit.RegionID
	key     ed25519.PrivateKey
	view    *View
	source  ReportSource
	log     ReceiptLog
	now     func() time.Time
	metrics *metrics
	// appended is told after each durable append (the anchorer's size
	// trigger).
	appended func()
}

// Answer answers q for the requesting region.
func (a *Answerer) Answer(ctx context.Context, requester credit.RegionID, q *credit.Query) (Answer, error) {
	if a.log == nil {
		return Answer{}, ErrNotReady
	}
	start := a.now()
	now := start
	if err := a.view.CheckQuery(ctx, q, now); err != nil {
		a.metrics.denied("answer", ReasonOf(err))
		return Answer{}, err
	}
	rep, err := a.source.Report(ctx, q.Subject, q.Categories)
	if err != nil {
		return Answer{}, fmt.Errorf("region %s: read records: %w", a.region, err)
	}
	id, err := credit.ReceiptID(a.region, q)
	if err != nil {
		return Answer{}, err
	}
	d := rep.Digest()
	r := credit.Receipt{
		Version: 1, ID: id, Query: *q, Requester: requester, Answerer: a.region,
		Categories: rep.Categories(), ReportDigest: d[:], RecordCount: rep.Count(), Time: now,
	}
	if err := r.Sign(a.key); err != nil {
		return Answer{}, err
	}
	// Durable before the answer leaves: a receipt the requester can hold
	// is always in this log.
	idx, err := a.log.Append(ctx, &r)
	if err != nil {
		return Answer{}, fmt.Errorf("region %s: log receipt: %w", a.region, err)
	}
	a.metrics.receipts.Inc()
	a.metrics.latency.WithLabelValues("answer").Observe(a.now().Sub(start).Seconds())
	if a.appended != nil {
		a.appended()
	}
	return Answer{Report: rep, Receipt: r, LeafIndex: idx}, nil
}

// Acknowledge stores a requester's ack beside the receipt it names after
// checking the requester's signature.
func (a *Answerer) Acknowledge(ctx context.Context, ack credit.Ack) error {
	r, err := a.log.Receipt(ack.ReceiptID)
	if err != nil {
		return fmt.Errorf("ack of %s: %w", ack.ReceiptID, err)
	}
	req, ok := a.view.Region(ack.Requester)
	if !ok {
		return deny(ReasonBadSignature, "ack from unknown region %s", ack.Requester)
	}
	if err := ack.Verify(&r, req.PubKey); err != nil {
		return deny(ReasonBadSignature, "%v", err)
	}
	return a.log.PutAck(ack)
}
