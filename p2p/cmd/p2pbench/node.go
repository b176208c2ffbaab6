package main

// The work a node does around the transport, as the benchmark stands it
// in: synthetic regions, bank, consent and records, the answering side's
// Handler and the requesting side's checks.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/p2p"
)

type regionKey struct {
	Member credit.RegionMember
	Key    ed25519.PrivateKey
}

func newRegion(id credit.RegionID, division string) (regionKey, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return regionKey{}, err
	}
	pid, err := p2p.PeerID(pub)
	if err != nil {
		return regionKey{}, err
	}
	return regionKey{Key: key, Member: credit.RegionMember{
		ID: id, Name: "region " + string(id), Divisions: []string{division},
		PeerID: pid.String(), PubKey: pub, Status: credit.StatusActive,
	}}, nil
}

type bankKey struct {
	Member credit.BankMember
	Key    ed25519.PrivateKey
}

func newBank(id credit.BankID, region credit.RegionID) (bankKey, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return bankKey{}, err
	}
	return bankKey{Key: key, Member: credit.BankMember{ID: id, Name: string(id), Region: region, PubKey: pub, Status: credit.StatusActive}}, nil
}

// newConsent is a consent signed by a fresh enterprise key, certified by
// a fresh development authority (the transport checks no consent, but the
// document's size is a real one's), and countersigned by the issuing region.
func newConsent(id string, u credit.USCC, bank credit.BankID, cats []credit.Category, issuer regionKey, from, until time.Time) (*credit.ConsentGrant, error) {
	_, caKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	ca, err := credit.NewAuthorityCert("p2pbench identity authority", caKey, from, until)
	if err != nil {
		return nil, err
	}
	_, ek, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	leaf, err := credit.IssueEnterpriseCert(ca, caKey, u, "p2pbench enterprise", ek.Public(), from, until)
	if err != nil {
		return nil, err
	}
	g := &credit.ConsentGrant{
		Version: credit.ConsentVersion, ID: id, Subject: u, Grantee: bank, Categories: cats, Purpose: credit.PurposeLoanApplication,
		ValidFrom: from, ValidUntil: until, Region: issuer.Member.ID,
	}
	if err := g.SignEnterprise(ek, [][]byte{leaf}, from); err != nil {
		return nil, err
	}
	if err := g.Countersign(issuer.Key); err != nil {
		return nil, err
	}
	return g, nil
}

var nonceCounter atomic.Uint64

// newQuery is a query the bank signed under g at t with a fresh nonce.
func newQuery(b bankKey, g *credit.ConsentGrant, cats []credit.Category, t time.Time) (*credit.Query, error) {
	q := &credit.Query{
		Version: 1, Bank: b.Member.ID, Subject: g.Subject, Categories: cats, Purpose: g.Purpose,
		ConsentID: g.ID, Consent: g, Nonce: fmt.Sprintf("n%015d-%d", nonceCounter.Add(1), time.Now().UnixNano()%1e6), Time: t,
	}
	if err := q.Sign(b.Key); err != nil {
		return nil, err
	}
	return q, nil
}

// records makes n synthetic records on u, about 220 bytes each (183 make
// the ~40 KB slice of an average enterprise), in report order.
func records(u credit.USCC, n int) []credit.Record {
	cats := credit.AllCategories()
	out := make([]credit.Record, 0, n)
	for i := 0; i < n; i++ {
		c := cats[i*len(cats)/n]
		attrs, _ := json.Marshal(map[string]any{
			"amount": 1000 + i*37, "authority": "Shenzhen Market Supervision Administration",
			"decision": "DOC-" + strconv.Itoa(100000+i), "note": "synthetic record for protocol tests and benchmarks",
			"status": "closed",
		})
		a, _ := credit.CanonicalAttrs(attrs)
		out = append(out, credit.Record{
			Subject: u, Source: "dept-" + string(c), SourceID: "src-" + strconv.Itoa(i), Category: c,
			Date: credit.Date(fmt.Sprintf("20%02d-%02d-%02d", 10+i%15, 1+i%12, 1+i%28)), Attrs: a,
		})
	}
	slices.SortStableFunc(out, func(a, b credit.Record) int {
		if d := a.Category.Ordinal() - b.Category.Ordinal(); d != 0 {
			return d
		}
		return strings.Compare(string(a.Date), string(b.Date))
	})
	return out
}

// answerer is the answering region's Handler: the bank's signature, the
// slice's digest, the receipt signed and kept (in memory, standing in for
// the durable log), then the records.
type answerer struct {
	region    credit.RegionID
	key       ed25519.PrivateKey
	bank      []byte // the bank's public key
	requester []byte // the requesting region's public key
	records   []credit.Record

	mu       sync.Mutex
	receipts map[string]credit.Receipt
	leaves   uint64
}

func (a *answerer) Answer(_ context.Context, _ peer.ID, req *p2p.Request, w p2p.AnswerWriter) error {
	leaf, err := a.receipt(req)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.leaves++
	idx := a.leaves
	a.mu.Unlock()
	if err := w.Begin(leaf, idx); err != nil {
		return err
	}
	return w.Records(a.records)
}

// receipt checks the bank's signature and signs and keeps the receipt
// over the slice.
func (a *answerer) receipt(req *p2p.Request) ([]byte, error) {
	q := &req.Query
	if err := q.Verify(a.bank); err != nil {
		return nil, credit.Refuse(credit.CodeBadSignature, "%w", err)
	}
	rep := credit.NewReport(q.Subject, a.records)
	id, err := credit.ReceiptID(a.region, q)
	if err != nil {
		return nil, err
	}
	d := rep.Digest()
	r := credit.Receipt{
		Version: 1, ID: id, Query: *q, Requester: req.Requester, Answerer: a.region,
		Categories: rep.Categories(), ReportDigest: d[:], RecordCount: rep.Count(), Time: time.Now(),
	}
	leaf, err := r.SignLeaf(a.key)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	if a.receipts == nil {
		a.receipts = map[string]credit.Receipt{}
	}
	a.receipts[id] = r
	a.mu.Unlock()
	return leaf, nil
}

func (a *answerer) Acknowledge(_ context.Context, _ peer.ID, _ []byte, ack *credit.Ack) error {
	a.mu.Lock()
	r, ok := a.receipts[ack.ReceiptID]
	delete(a.receipts, ack.ReceiptID)
	a.mu.Unlock()
	if !ok {
		return credit.Refuse(credit.CodeInvalidQuery, "no receipt %s", ack.ReceiptID)
	}
	if err := ack.Verify(&r, a.requester); err != nil {
		return credit.Refuse(credit.CodeBadSignature, "%w", err)
	}
	return nil
}

// requester asks through the Client and checks each answer as the home
// node does: the receipt is the answering region's, names the query, and
// its digest and count are the records'.
type requester struct {
	client   *p2p.Client
	region   regionKey
	answerer credit.RegionMember
	ack      bool
}

var errBadReceipt = errors.New("receipt does not match the answer")

func (r *requester) ask(ctx context.Context, q *credit.Query) error {
	qj, _, err := q.CanonicalAndDigest()
	if err != nil {
		return err
	}
	var bad error
	reply, err := r.client.Ask(ctx, r.answerer.ID, p2p.EncodeRequest(r.region.Member.ID, qj), func(reply *p2p.Reply) *credit.Ack {
		rc := &reply.Receipt
		names, leaf, err := rc.VerifyNamesQuery(r.answerer.PubKey, qj, verify)
		if err != nil {
			bad = err
			return nil
		}
		rep := credit.NewReport(q.Subject, reply.Records)
		d := rep.Digest()
		if !names || !bytes.Equal(d[:], rc.ReportDigest) || rc.RecordCount != rep.Count() {
			bad = errBadReceipt
			return nil
		}
		if !r.ack {
			return nil
		}
		a, err := credit.NewAckOfLeaf(rc, leaf, r.region.Member.ID, time.Now(), r.region.Key)
		if err != nil {
			bad = err
			return nil
		}
		return &a
	})
	switch {
	case err != nil:
		return err
	case bad != nil:
		return bad
	case reply.Acked:
		// An exchange counts as done once its ack is stored.
		return reply.AckOutcome()
	}
	return nil
}

func verify(pub, msg, sig []byte) bool { return ed25519.Verify(pub, msg, sig) }
