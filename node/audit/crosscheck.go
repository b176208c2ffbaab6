package audit

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// receivedPass1 reads a requesting region's export of the receipts it
// received: it verifies the region's own acknowledgements and remembers,
// per receipt, its digest and acknowledgement for the answerers' logs.
func (a *auditor) receivedPass1(ctx context.Context, s sourceHeader) (uint64, error) {
	var n uint64
	requester := s.h.Region
	a.received[requester] = true
	shape := a.newStructure(s.src, s.h)
	line := func(line []byte, no int, r *result, sq *sigQueue) {
		l, rc, rcMsg, ok := decodeLine(s.src.Name, s.h, line, no, r, sq)
		if !ok {
			return
		}
		r.inFilter = a.inWindow(rc.Time) && a.wantRegion(rc.Answerer)
		if !r.inFilter {
			return
		}
		t := rc.Time
		add := func(format string, args ...any) {
			r.findings = append(r.findings, Finding{Rule: RuleAckSig, Region: requester, Receipt: rc.ID,
				Source: fmt.Sprintf("%s:%d", s.src.Name, no), Time: &t, Detail: fmt.Sprintf(format, args...)})
		}
		if rc.Requester != requester {
			r.bad = &Finding{Rule: RuleExport, Region: requester, Receipt: rc.ID, Source: fmt.Sprintf("%s:%d", s.src.Name, no),
				Detail: fmt.Sprintf("receipt requested by %s in the received export of %s", rc.Requester, requester)}
			return
		}
		for i := range l.Acks {
			ack := l.Acks[i]
			key, err := a.keys.region(requester, ack.Time)
			if err == nil && ack.Requester != requester {
				err = fmt.Errorf("acknowledgement signed as %s: %w", ack.Requester, credit.ErrBadSignature)
			}
			if err == nil && (ack.ReceiptID != rc.ID || !bytes.Equal(ack.ReceiptDigest, r.digest[:])) {
				err = fmt.Errorf("ack by %s does not name receipt %s: %w", ack.Requester, rc.ID, credit.ErrBadSignature)
			}
			var msg []byte
			if err == nil {
				msg, err = sq.appendMsg(ack.AppendSignedMessage)
			}
			if err != nil {
				add("%v", err)
				continue
			}
			sq.add(key, msg, ack.Sig, func(ok bool) {
				if !ok {
					add("ack of receipt %s by %s: %v", rc.ID, requester, credit.ErrBadSignature)
					return
				}
				if !r.hasAck {
					r.hasAck, r.ack = true, ack
				}
			})
		}
		// The answering region's and the bank's signatures are verified
		// here too, on the same bytes the answerer's log holds (the digests
		// are compared there), so that the log's pass need not verify them
		// again. Verified here, a consolidated query's bank signature, which
		// the receipts of every answering region carry, is verified once per
		// batch of this export (sigbatch drops repeats); a failure here is
		// only not remembered: the log's pass verifies and reports.
		if key, err := a.keys.receiptKey(&rc); err == nil {
			sq.add(key, rcMsg, rc.Sig, func(ok bool) { r.receiptOK = ok })
		}
		q := &rc.Query
		if key, err := a.keys.bank(q.Bank, q.Time); err == nil {
			if msg, err := sq.appendMsg(q.AppendSignedMessage); err == nil {
				sq.add(key, msg, q.Sig, func(ok bool) { r.queryOK = ok })
			}
		}
	}
	work := func(lines [][]byte, nos []int, res []result) {
		sq := a.getQueue()
		defer a.putQueue(sq)
		for i := range lines {
			line(lines[i], nos[i], &res[i], sq)
		}
		sq.verify()
	}
	consume := func(r *result) error {
		n++
		shape.line(r)
		if r.bad != nil {
			a.out.add(*r.bad)
			return nil
		}
		for _, f := range r.findings {
			a.out.add(f)
		}
		if !r.inFilter || !r.hasAck {
			// Only what the requester acknowledged is held against the
			// answerer's log.
			return nil
		}
		// The index outlives the line: its strings and byte slices are
		// copied, since the decoder's may share the line's memory and
		// would keep every line of the export alive.
		k := xkey{credit.RegionID(strings.Clone(string(r.answerer))), strings.Clone(r.id)}
		if _, dup := a.xindex[k]; dup {
			return nil
		}
		ack := r.ack
		ack.ReceiptID = strings.Clone(ack.ReceiptID)
		ack.Requester = credit.RegionID(strings.Clone(string(ack.Requester)))
		ack.ReceiptDigest, ack.Sig = bytes.Clone(ack.ReceiptDigest), bytes.Clone(ack.Sig)
		a.xindex[k] = &xentry{digest: r.digest, src: s.src.Name, line: r.line, ack: ack, ackOK: true,
			receiptOK: r.receiptOK, queryOK: r.queryOK}
		return nil
	}
	if err := a.stream(ctx, s.src, work, consume); err != nil {
		return n, err
	}
	return n, shape.finish(ctx)
}

// receivedPass2 reports what the requester acknowledged and the answerer's
// log does not hold. Only those lines are verified again: a receipt the
// answering region never signed is a forgery, not an omission.
func (a *auditor) receivedPass2(ctx context.Context, s sourceHeader) error {
	missing := 0
	for k, e := range a.xindex {
		if e.src == s.src.Name && a.audited[k.answerer] && (!e.seen || e.conflict) {
			missing++
		}
	}
	if missing == 0 {
		return nil
	}
	work := func(line []byte, no int, r *result) {
		l, err := credit.DecodeExportLine(line)
		_ = l
		if err != nil {
			return
		}
		rc, err := credit.DecodeReceipt(l.Receipt)
		if err != nil {
			return
		}
		e, ok := a.xindex[xkey{rc.Answerer, rc.ID}]
		if !ok || e.src != s.src.Name || e.line != no || !a.audited[rc.Answerer] || (e.seen && !e.conflict) {
			return
		}
		t := rc.Time
		f := Finding{Region: rc.Answerer, Receipt: rc.ID, Source: fmt.Sprintf("%s:%d", s.src.Name, no), Time: &t}
		key, err := a.keys.receiptKey(&rc)
		if err == nil {
			err = rc.Verify(key)
		}
		switch {
		case err != nil:
			f.Rule, f.Detail = RuleReceiptSig, fmt.Sprintf("receipt held by %s: %v", s.h.Region, err)
		case e.conflict:
			f.Rule, f.Detail = RuleUnlogged, fmt.Sprintf("%s acknowledged this receipt; the log of %s holds a different receipt under its id", s.h.Region, rc.Answerer)
		default:
			f.Rule, f.Detail = RuleUnlogged, fmt.Sprintf("%s acknowledged this receipt at %s; it is not in the log of %s",
				s.h.Region, e.ack.Time.UTC().Format(time.RFC3339), rc.Answerer)
		}
		r.findings = append(r.findings, f)
	}
	consume := func(r *result) error {
		for _, f := range r.findings {
			a.out.add(f)
		}
		return nil
	}
	return a.stream(ctx, s.src, perLine(work), consume)
}
