package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/credit/sigbatch"
	"github.com/prdcredit/ccnode/network"
)

// sigQueue collects a batch's signatures for one sigbatch verification,
// the messages they cover (in one buffer, reused from batch to batch, so
// that no message is allocated on its own) and what to do with each
// outcome.
type sigQueue struct {
	sigs *sigbatch.Batch
	msgs []byte
	then []func(ok bool)
}

// getQueue returns an empty queue; putQueue returns it after verify.
func (a *auditor) getQueue() *sigQueue {
	if q, ok := a.queues.Get().(*sigQueue); ok {
		return q
	}
	return &sigQueue{sigs: a.sigs.NewBatch(3 * batchLines), then: make([]func(bool), 0, 3*batchLines)}
}

func (a *auditor) putQueue(q *sigQueue) {
	q.sigs.Reset()
	clear(q.then)
	q.then, q.msgs = q.then[:0], q.msgs[:0]
	a.queues.Put(q)
}

// add queues a signature by pub over msg (which may be in q.msgs).
func (q *sigQueue) add(pub, msg, sig []byte, then func(ok bool)) {
	q.sigs.Add(pub, msg, sig)
	q.then = append(q.then, then)
}

// appendMsg runs an Append form of credit's signed messages on q.msgs and
// returns the message it appended.
func (q *sigQueue) appendMsg(f func([]byte) ([]byte, error)) ([]byte, error) {
	n := len(q.msgs)
	var err error
	q.msgs, err = f(q.msgs)
	return q.msgs[n:len(q.msgs):len(q.msgs)], err
}

// appendQueryMsg is appendMsg of the query's signed message, with the
// commitment of its consent document from the same encoding.
func (q *sigQueue) appendQueryMsg(query *credit.Query) (msg []byte, comm [32]byte, hasConsent bool, err error) {
	n := len(q.msgs)
	q.msgs, comm, hasConsent, err = query.AppendSignedMessageAndCommitment(q.msgs)
	return q.msgs[n:len(q.msgs):len(q.msgs)], comm, hasConsent, err
}

// verify verifies the queued signatures together and applies each outcome.
func (q *sigQueue) verify() {
	ok, _ := q.sigs.Verify()
	for i := range ok {
		q.then[i](ok[i])
	}
}

// checkAnsweredBatch checks a batch of lines of a region's own log. The
// signatures of the whole batch are verified together (sigbatch); each
// one's outcome is then applied to its line.
func (a *auditor) checkAnsweredBatch(ctx context.Context, src string, h credit.ExportHeader, lines [][]byte, nos []int, res []result) {
	q := a.getQueue()
	defer a.putQueue(q)
	for i := range lines {
		a.checkAnswered(ctx, src, h, lines[i], nos[i], &res[i], q)
	}
	q.verify()
}

// checkAnswered is the per-receipt work on a line of a region's own log:
// everything that needs no other line. Signatures are handed to queue
// with what to do with the outcome.
func (a *auditor) checkAnswered(ctx context.Context, src string, h credit.ExportHeader, line []byte, no int, r *result, sq *sigQueue) {
	l, rc, rcMsg, ok := decodeLine(src, h, line, no, r, sq)
	if !ok {
		return
	}
	where := func() string { return fmt.Sprintf("%s:%d", src, no) } // only for findings
	// The callbacks that outlive this call (run after the batch's
	// signatures are verified) capture these copies, not rc, so that rc
	// stays on the stack.
	id, answerer, at, leaf := rc.ID, rc.Answerer, rc.Time, l.Index
	add := func(rule Rule, region credit.RegionID, format string, args ...any) {
		t := at
		r.findings = append(r.findings, Finding{Rule: rule, Region: region, Receipt: id, Leaf: leafPtr(leaf),
			Source: where(), Time: &t, Detail: fmt.Sprintf(format, args...)})
	}
	if rc.Answerer != h.Region {
		r.bad = &Finding{Rule: RuleExport, Region: h.Region, Receipt: rc.ID, Leaf: leafPtr(l.Index), Source: where(),
			Detail: fmt.Sprintf("receipt answered by %s in the log of %s", rc.Answerer, h.Region)}
		return
	}
	r.inFilter = a.inWindow(rc.Time)
	if !r.inFilter {
		return
	}
	// A receipt the requester acknowledged, with the same digest, is the
	// same bytes: what was verified in the requester's export holds here.
	var xe *xentry
	if e, ok := a.xindex[xkey{rc.Answerer, rc.ID}]; ok && e.digest == r.digest && e.ackOK {
		xe = e
		r.hasAck = true
	}
	// (1) the answering region's signature.
	if xe != nil && xe.receiptOK {
		// verified in the requester's export
	} else if key, err := a.keys.receiptKey(&rc); err != nil {
		r.receiptBad = true
		add(RuleReceiptSig, rc.Answerer, "%v", err)
	} else {
		sq.add(key, rcMsg, rc.Sig, func(ok bool) {
			if !ok {
				r.receiptBad = true
				add(RuleReceiptSig, answerer, "receipt %s of region %s: %v", id, answerer, credit.ErrBadSignature)
			}
		})
	}
	// (1) the bank's signature on the query.
	q := &rc.Query
	var comm *[32]byte // the consent's commitment, when it came with the query's message
	if xe != nil && xe.queryOK {
		// verified in the requester's export
	} else if key, err := a.keys.bank(q.Bank, q.Time); err != nil {
		add(RuleQuerySig, rc.Answerer, "%v", err)
	} else if msg, c, has, err := sq.appendQueryMsg(q); err != nil {
		add(RuleQuerySig, rc.Answerer, "query of bank %s: %v", q.Bank, err)
	} else {
		if has {
			comm = &c
		}
		bank := q.Bank
		sq.add(key, msg, q.Sig, func(ok bool) {
			if !ok {
				add(RuleQuerySig, answerer, "query of bank %s: %v", bank, credit.ErrBadSignature)
			}
		})
	}
	// A bank queries through its home node only: an answer to another
	// region is one to a relayed query.
	if b, ok := a.keys.bankAt(q.Bank, q.Time); ok && b.Region != rc.Requester {
		add(RuleRequester, rc.Answerer, "receipt %s answers %s a query of bank %s, whose home region is %s", rc.ID, rc.Requester, q.Bank, b.Region)
	}
	// (2) the consent at the time of the answer, and the answer inside
	// the query (so inside the consent when the query is).
	consent := func(rule Rule, code credit.Code, detail string) {
		t := at
		r.findings = append(r.findings, Finding{Rule: rule, Code: code, Region: answerer, Receipt: id, Leaf: leafPtr(leaf),
			Source: where(), Time: &t, Detail: detail})
	}
	if err := a.checkConsent(ctx, &rc, comm, consent); err != nil {
		r.opErr = err
		return
	}
	if !credit.CategoriesSubset(rc.Categories, q.Categories) {
		add(RuleReceiptScope, rc.Answerer, "receipt %s answers %v, the query asks %v", rc.ID, rc.Categories, q.Categories)
	}
	// (1) the requesting region's acknowledgements; (6) is finished by
	// the consumer, which knows the requesters' exports.
	for i := range l.Acks {
		ack := &l.Acks[i]
		if xe != nil && ackEqual(ack, &xe.ack) {
			continue // verified in the requester's export
		}
		if ack.Requester != rc.Requester {
			add(RuleAckSig, ack.Requester, "acknowledgement by %s of a receipt requested by %s", ack.Requester, rc.Requester)
			continue
		}
		key, err := a.keys.region(ack.Requester, ack.Time)
		if err != nil {
			add(RuleAckSig, ack.Requester, "%v", err)
			continue
		}
		if ack.ReceiptID != rc.ID || !bytes.Equal(ack.ReceiptDigest, r.digest[:]) {
			add(RuleAckSig, ack.Requester, "ack by %s does not name receipt %s: %v", ack.Requester, rc.ID, credit.ErrBadSignature)
			continue
		}
		msg, err := sq.appendMsg(ack.AppendSignedMessage)
		if err != nil {
			add(RuleAckSig, ack.Requester, "ack of receipt %s: %v", rc.ID, err)
			continue
		}
		requester := ack.Requester
		sq.add(key, msg, ack.Sig, func(ok bool) {
			if ok {
				r.hasAck = true
				return
			}
			add(RuleAckSig, requester, "ack of receipt %s by %s: %v", id, requester, credit.ErrBadSignature)
		})
	}
}

// checkConsent applies rule (2) to a receipt: credit.DecideConsent, the
// rule a node applies, with the facts the ledger's history gives at the
// receipt's time, enterprise identity authorities and revocations
// included. It returns an error only when the ledger view fails.
func (a *auditor) checkConsent(ctx context.Context, rc *credit.Receipt, known *[32]byte, report func(Rule, credit.Code, string)) error {
	q := &rc.Query
	f := credit.ConsentFacts{Query: q, At: rc.Time, Commitment: known, Trust: a.trust}
	bounded := false // revoked, answered within Options.RevocationBound
	if doc := q.Consent; doc != nil {
		if f.Commitment == nil {
			// On an error DecideConsent computes it again and says why.
			if c, err := doc.Commitment(); err == nil {
				f.Commitment = &c
			}
		}
		if want, ok := a.given[doc.ID]; ok && (f.Commitment == nil || want != *f.Commitment) {
			report(RuleConsentDocument, "", fmt.Sprintf("consent %s differs from the document the auditor holds", doc.ID))
			return nil
		}
		cc, st, err := a.view.ConsentAt(ctx, q.ConsentID, rc.Time)
		switch {
		case errors.Is(err, network.ErrNotFound):
			// f.Ledger stays nil: not on the ledger at that time.
		case err != nil:
			return fmt.Errorf("ledger: consent %s: %w", q.ConsentID, err)
		default:
			if st == credit.ConsentRevoked && cc.RevokedAt != nil && rc.Time.Sub(*cc.RevokedAt) <= a.opts.RevocationBound {
				// Answered before the revocation could reach every
				// region: the consortium's promise allows it, so the
				// consent is judged as it stood before; the auditor is
				// told how many.
				bounded = true
				before := cc
				before.RevokedAt = nil
				st = before.StatusAt(rc.Time)
			}
			f.Ledger, f.Status = &cc, st
			// The issuing region countersigned when it recorded the
			// commitment: its key at that time.
			if key, err := a.keys.region(doc.Region, cc.RecordedAt); err == nil {
				f.IssuerKey = key
			}
			f.SignaturesVerified = f.Commitment != nil && a.docVerified(*f.Commitment)
			if f.Commitment != nil && f.Ledger.Region == doc.Region && bytes.Equal(f.Commitment[:], f.Ledger.Commitment) {
				f.Certified = a.certified(doc, *f.Commitment)
			}
		}
	}
	refusals := credit.DecideConsent(f)
	for _, r := range refusals {
		report(RuleConsent, r.Code, r.Msg)
	}
	if bounded && !slices.ContainsFunc(refusals, func(r *credit.Refusal) bool { return r.Code == credit.CodeConsentMismatch }) {
		a.withinBound.Add(1) // counted only when the document is the one recorded
	}
	if !f.SignaturesVerified && f.Ledger != nil && f.IssuerKey != nil && f.Commitment != nil && signaturesHeld(refusals) {
		a.docMu.Lock()
		a.docOK[*f.Commitment] = true
		a.docMu.Unlock()
	}
	return nil
}

// certified returns the verified chain of the document with this
// commitment, verifying it the first time.
func (a *auditor) certified(doc *credit.ConsentGrant, comm [32]byte) *credit.CertifiedKey {
	a.docMu.RLock()
	ck, ok := a.chains[comm]
	a.docMu.RUnlock()
	if ok {
		return ck
	}
	// Two workers may verify the same document at once: the result is the
	// same, and the cost is paid once more at most per worker.
	c := credit.VerifyEnterpriseChain(doc, a.trust)
	a.docMu.Lock()
	a.chains[comm] = &c
	a.docMu.Unlock()
	return &c
}

// docVerified reports whether the document with this commitment was
// found, earlier in the audit, to carry the enterprise's signature and its
// issuing region's countersignature.
func (a *auditor) docVerified(comm [32]byte) bool {
	a.docMu.RLock()
	defer a.docMu.RUnlock()
	return a.docOK[comm]
}

// signaturesHeld reports whether a decision that had the ledger's record
// and the issuer's key got past the document checks (which stop it before
// the signatures) and found both signatures good.
func signaturesHeld(refusals []*credit.Refusal) bool {
	for _, r := range refusals {
		if r.Code == credit.CodeConsentMismatch || r.Code == credit.CodeConsentSignature {
			return false
		}
	}
	return true
}
