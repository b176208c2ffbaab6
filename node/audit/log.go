package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// logState follows one region's export through its anchored checkpoints.
// Findings of the receipts between two anchored sizes are held until the
// root at the second size is compared: when it does not match, the first
// suspicious line of that stretch (an unreadable line, a wrong leaf index, a
// receipt whose signature fails) is where the export first differs from the
// anchored log, and its own findings are folded into the one completeness
// finding that says so.
type logState struct {
	a       *auditor
	region  credit.RegionID
	src     string
	cps     []credit.AnchoredCheckpoint // by size, deduplicated
	rng     *compact.Range
	count   uint64
	next    int // next checkpoint to compare
	cover   int // first checkpoint whose size exceeds the current leaf
	matched int // checkpoints compared equal
	lastCmp int // index of the last compared checkpoint
	lastOK  bool

	firstBad     int // first checkpoint whose root the export fails, -1 if none
	badFrom      uint64
	badSuspect   *suspect
	badPending   []Finding
	pending      []Finding
	tail         []Finding // inclusion findings, past the latest anchored size
	suspect      *suspect
	rangeStart   uint64
	verifiedUpTo uint64
	sum          RegionSummary
	shape        *structure
}

type suspect struct {
	leaf    uint64
	receipt string
	source  string
	why     string
}

var rfcHasher = rfc6962.DefaultHasher

func (a *auditor) auditLog(ctx context.Context, s sourceHeader) (RegionSummary, error) {
	region := s.h.Region
	st := &logState{a: a, region: region, src: s.src.Name, firstBad: -1, lastCmp: -1,
		sum: RegionSummary{Region: region, Source: s.src.Name}, shape: a.newStructure(s.src, s.h)}
	hist, err := a.view.CheckpointHistory(ctx, region)
	if err != nil && !errors.Is(err, network.ErrNotFound) {
		return st.sum, fmt.Errorf("ledger: checkpoints of %s: %w", region, err)
	}
	st.prepareCheckpoints(hist)
	st.sum.Checkpoints = len(st.cps)
	if n := len(st.cps); n > 0 {
		st.sum.AnchoredSize = st.cps[n-1].Size
	}
	rf := &compact.RangeFactory{Hash: rfcHasher.HashChildren}
	st.rng = rf.NewEmptyRange(0)
	if s.h.From != 0 {
		return st.sum, fmt.Errorf("%w: %s: export starts at leaf %d; an audit needs the whole log from leaf 0", ErrInput, s.src.Name, s.h.From)
	}
	err = a.stream(ctx, s.src,
		func(lines [][]byte, nos []int, res []result) {
			a.checkAnsweredBatch(ctx, s.src.Name, s.h, lines, nos, res)
		},
		st.consume)
	if err != nil {
		return st.sum, err
	}
	st.finish()
	if err := st.shape.finish(ctx); err != nil {
		return st.sum, err
	}
	return st.sum, nil
}

// prepareCheckpoints verifies the anchored checkpoints' signed notes (each
// a C2SP checkpoint under the region's key at the time, all naming one
// origin), sorts them by size and reports two different roots anchored for
// one size.
func (st *logState) prepareCheckpoints(hist []credit.AnchoredCheckpoint) {
	a := st.a
	origin := ""
	for _, c := range hist {
		if c.Region != st.region {
			continue
		}
		key, err := a.keys.logKey(st.region, c.AnchoredAt)
		if err == nil {
			err = c.Verify(key)
		}
		if err != nil {
			a.out.add(Finding{Rule: RuleCheckpointSig, Region: st.region, Detail: fmt.Sprintf("anchored checkpoint at size %d (tx %s): %v", c.Size, c.TxID, err)})
		} else if origin == "" {
			origin = c.Origin()
		} else if c.Origin() != origin {
			a.out.add(Finding{Rule: RuleCheckpointSig, Region: st.region, Detail: fmt.Sprintf(
				"anchored checkpoint at size %d (tx %s) names log %s, earlier checkpoints %s", c.Size, c.TxID, credit.Quote(c.Origin()), credit.Quote(origin))})
		}
		if c.Size == 0 {
			continue
		}
		st.cps = append(st.cps, c)
	}
	slices.SortStableFunc(st.cps, func(x, y credit.AnchoredCheckpoint) int {
		switch {
		case x.Size < y.Size:
			return -1
		case x.Size > y.Size:
			return 1
		}
		return x.AnchoredAt.Compare(y.AnchoredAt)
	})
	out := st.cps[:0]
	for _, c := range st.cps {
		if n := len(out); n > 0 && out[n-1].Size == c.Size {
			if !bytes.Equal(out[n-1].Root, c.Root) {
				a.out.add(Finding{Rule: RuleConsistency, Region: st.region, Detail: fmt.Sprintf(
					"two roots anchored for size %d: %x (tx %s) and %x (tx %s)", c.Size, out[n-1].Root, out[n-1].TxID, c.Root, c.TxID)})
			}
			continue
		}
		out = append(out, c)
	}
	st.cps = out
}

func (st *logState) note(s suspect) {
	if st.suspect == nil {
		st.suspect = &s
	}
}

func (st *logState) consume(r *result) error {
	a := st.a
	st.sum.Receipts++
	st.shape.line(r)
	if r.bad != nil {
		// Not a leaf: the tree is rebuilt without it, so if the line is
		// within the anchored log the completeness finding says so.
		st.note(suspect{leaf: st.count, receipt: r.bad.Receipt, source: r.bad.Source, why: r.bad.Detail})
		st.pending = append(st.pending, *r.bad)
		return nil
	}
	leaf := st.count
	if r.index != leaf {
		st.note(suspect{leaf: leaf, receipt: r.id, source: fmt.Sprintf("%s:%d", st.src, r.line),
			why: fmt.Sprintf("line claims leaf %d where leaf %d is due", r.index, leaf)})
	}
	if r.leafBad {
		st.note(suspect{leaf: leaf, receipt: r.id, source: fmt.Sprintf("%s:%d", st.src, r.line),
			why: "its receipt's bytes are not the canonical encoding the region logged"})
	}
	if r.receiptBad {
		st.note(suspect{leaf: leaf, receipt: r.id, source: fmt.Sprintf("%s:%d", st.src, r.line),
			why: "its receipt signature fails, as an altered receipt's would"})
	}
	if err := st.rng.Append(r.leafHash[:], nil); err != nil {
		return fmt.Errorf("compact range: %w", err)
	}
	st.count++
	st.pending = append(st.pending, r.findings...)

	if r.inFilter {
		st.sum.Checked++
		st.timely(r, leaf)
		st.crossCheck(r)
	}
	if r.digest != ([32]byte{}) {
		if e, ok := a.xindex[xkey{st.region, r.id}]; ok {
			e.seen = true
			e.conflict = e.digest != r.digest
		}
	}
	if st.next < len(st.cps) && st.count == st.cps[st.next].Size {
		st.compare()
	}
	return nil
}

// timely applies (3) and (7) to the receipt at leaf.
func (st *logState) timely(r *result, leaf uint64) {
	for st.cover < len(st.cps) && st.cps[st.cover].Size <= leaf {
		st.cover++
	}
	t := r.time
	base := Finding{Region: st.region, Receipt: r.id, Leaf: leafPtr(leaf), Source: fmt.Sprintf("%s:%d", st.src, r.line), Time: &t}
	if st.cover < len(st.cps) {
		cp := st.cps[st.cover]
		if late := cp.AnchoredAt.Sub(r.time); late > st.a.opts.AnchorDelay {
			f := base
			f.Rule = RuleTimeliness
			f.Detail = fmt.Sprintf("first anchored in the checkpoint of size %d at %s, %s after the receipt (limit %s)",
				cp.Size, cp.AnchoredAt.UTC().Format(time.RFC3339), late.Round(time.Second), st.a.opts.AnchorDelay)
			st.pending = append(st.pending, f)
		}
		return
	}
	if age := st.a.opts.Now.Sub(r.time); age > st.a.opts.AnchorDelay {
		f := base
		f.Rule = RuleInclusion
		f.Detail = fmt.Sprintf("no anchored checkpoint covers it %s after the receipt (limit %s); latest anchored size %d",
			age.Round(time.Second), st.a.opts.AnchorDelay, st.sum.AnchoredSize)
		// Held apart: past the anchored size of an export that does not
		// rebuild the anchored log, leaf positions mean nothing.
		st.tail = append(st.tail, f)
		return
	}
	st.sum.Pending++
	if st.a.opts.RequireAnchored {
		f := base
		f.Rule = RuleInclusion
		f.Detail = fmt.Sprintf("no anchored checkpoint covers it yet (latest anchored size %d), and anchoring is required", st.sum.AnchoredSize)
		st.tail = append(st.tail, f)
	}
}

// crossCheck applies the answerer's half of (6): an answer with data needs
// the requester's acknowledgement.
func (st *logState) crossCheck(r *result) {
	if r.records == 0 || r.requester == r.answerer || r.hasAck {
		return
	}
	t := r.time
	detail := fmt.Sprintf("answer by %s with %d records has no valid acknowledgement by %s", r.answerer, r.records, r.requester)
	if !st.a.received[r.requester] {
		// Acks are kept by the answerer: only the requester's own export
		// tells an ack never sent from one the answerer did not keep.
		detail += fmt.Sprintf(" (without %s's received export, this cannot tell whether %s did not acknowledge it or %s did not keep the acknowledgement)",
			r.requester, r.requester, r.answerer)
	}
	st.pending = append(st.pending, Finding{Rule: RuleUnacked, Region: r.requester, Receipt: r.id, Leaf: leafPtr(st.count - 1),
		Source: fmt.Sprintf("%s:%d", st.src, r.line), Time: &t, Detail: detail})
}

// compare checks the rebuilt root against the checkpoint anchored for the
// current size.
func (st *logState) compare() {
	cp := st.cps[st.next]
	root, err := st.rng.GetRootHash(nil)
	ok := err == nil && bytes.Equal(root, cp.Root)
	st.lastCmp, st.lastOK = st.next, ok
	st.next++
	if ok {
		st.matched++
		if st.firstBad < 0 {
			st.verifiedUpTo = cp.Size
		}
		st.flush()
		return
	}
	if st.firstBad < 0 {
		st.firstBad = st.lastCmp
		st.badFrom = st.rangeStart
		st.badSuspect = st.suspect
		st.badPending = st.pending
		st.pending = nil
		st.suspect = nil
		st.rangeStart = st.count
		return
	}
	st.flush()
}

func (st *logState) flush() {
	for _, f := range st.pending {
		st.a.out.add(f)
	}
	st.pending, st.suspect = nil, nil
	st.rangeStart = st.count
}

func (st *logState) finish() {
	a := st.a
	st.sum.Verified = st.verifiedUpTo
	n := len(st.cps)
	if st.firstBad < 0 && (n == 0 || st.count >= st.cps[n-1].Size) {
		for _, f := range st.tail {
			a.out.add(f)
		}
	} else if len(st.tail) > 0 {
		a.log.Info("inclusion not reported past an export that does not match the anchored log", "region", st.region, "receipts", len(st.tail))
	}
	latest := func() credit.AnchoredCheckpoint { return st.cps[n-1] }
	switch {
	case st.firstBad >= 0 && st.lastCmp == n-1 && st.lastOK:
		// The export rebuilds the latest anchored root, so it is the
		// anchored log; an earlier anchored root that it does not
		// rebuild was not a prefix of it: the log was rewritten.
		bad := st.cps[st.firstBad]
		a.out.add(Finding{Rule: RuleConsistency, Region: st.region, Leaf: leafPtr(bad.Size), Detail: fmt.Sprintf(
			"anchored checkpoint at size %d (root %s, tx %s) is not a prefix of the log anchored at size %d: the log was rewritten after it was anchored",
			bad.Size, short(bad.Root), bad.TxID, latest().Size)})
		for _, f := range st.badPending {
			a.out.add(f)
		}
		st.sum.Verified = latest().Size
	case st.firstBad >= 0:
		bad := st.cps[st.firstBad]
		f := Finding{Rule: RuleCompleteness, Region: st.region}
		d := fmt.Sprintf("the export does not rebuild the root anchored at size %d (root %s, tx %s)", bad.Size, short(bad.Root), bad.TxID)
		if st.badFrom > 0 {
			d += fmt.Sprintf("; it matches the anchored log up to leaf %d, so the first difference is in leaves %d..%d", st.badFrom, st.badFrom, bad.Size-1)
		} else {
			d += fmt.Sprintf("; the first difference is in leaves 0..%d", bad.Size-1)
		}
		if s := st.badSuspect; s != nil {
			f.Leaf, f.Receipt, f.Source = leafPtr(s.leaf), s.receipt, s.source
			d += fmt.Sprintf("; first suspicious line: leaf %d: %s", s.leaf, s.why)
		}
		f.Detail = d
		a.out.add(f)
		st.addFolded(st.badPending, st.badSuspect)
	case n > 0 && st.count < latest().Size:
		f := Finding{Rule: RuleCompleteness, Region: st.region, Leaf: leafPtr(st.count)}
		f.Detail = fmt.Sprintf("the export holds %d leaves where the anchored log has %d (checkpoint tx %s): receipts are missing",
			st.count, latest().Size, latest().TxID)
		if s := st.suspect; s != nil {
			f.Leaf, f.Receipt, f.Source = leafPtr(s.leaf), s.receipt, s.source
			f.Detail += fmt.Sprintf("; first suspicious line: leaf %d: %s", s.leaf, s.why)
		}
		a.out.add(f)
		st.addFolded(st.pending, st.suspect)
		st.pending = nil
	}
	st.flush()
}

// addFolded reports fs except the findings on the suspect line that its
// alteration explains (a changed receipt no longer matches its signature
// nor its acknowledgement, and may have moved in time).
func (st *logState) addFolded(fs []Finding, s *suspect) {
	for _, p := range fs {
		if s != nil && p.Source == s.source && (p.Rule == RuleReceiptSig || p.Rule == RuleAckSig || p.Rule == RuleExport || p.Rule == RuleTimeliness || p.Rule == RuleUnacked) {
			continue
		}
		st.a.out.add(p)
	}
}

func short(b []byte) string {
	s := hex.EncodeToString(b)
	if len(s) > 16 {
		return s[:16]
	}
	return s
}
