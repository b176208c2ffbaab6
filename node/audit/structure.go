package audit

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"

	"github.com/prdcredit/ccnode/credit"
)

// structure checks an export's own shape, line by line in file order,
// whether or not an anchored checkpoint covers the line yet: each line's
// index is its position (leaves contiguous from 0; a received export's
// line counter likewise), no receipt id is on two lines, and the header's
// size is the number of lines. Anchored roots catch all of this only up to
// the latest anchored size; the structure is what an exporter cannot
// rearrange past it.
//
// Duplicates are found from one 8-byte fingerprint per receipt, sorted at
// the end; only when two are equal is the export read again to name the
// lines.
type structure struct {
	a      *auditor
	src    Source
	h      credit.ExportHeader
	pos    uint64 // lines seen: the index the next line must claim
	run    *orderRun
	prints []uint64
}

// orderRun is a stretch of consecutive lines whose index is not their
// position: one finding for the stretch (a deleted line shifts every line
// after it).
type orderRun struct {
	pos, claim uint64
	line       int
	receipt    string
	n          uint64
}

func (a *auditor) newStructure(src Source, h credit.ExportHeader) *structure {
	return &structure{a: a, src: src, h: h}
}

func (s *structure) leaf(pos uint64) *uint64 {
	if s.h.Kind != credit.ExportAnswered {
		return nil // a received export's index is a line counter, no leaf
	}
	return leafPtr(pos)
}

// line takes the next line's result.
func (s *structure) line(r *result) {
	pos := s.pos + s.h.From
	s.pos++
	if r.hasIndex {
		if r.index != pos {
			if s.run == nil {
				s.run = &orderRun{pos: pos, claim: r.index, line: r.line, receipt: r.id}
			}
			s.run.n++
		} else {
			s.endRun()
		}
	}
	if r.id != "" && r.bad == nil {
		s.prints = append(s.prints, maphash.String(s.a.seed, r.id))
	}
}

func (s *structure) endRun() {
	run := s.run
	if run == nil {
		return
	}
	s.run = nil
	what := "leaf"
	if s.h.Kind != credit.ExportAnswered {
		what = "line number"
	}
	d := fmt.Sprintf("the line claims %s %d where %s %d is due", what, run.claim, what, run.pos)
	if run.n > 1 {
		d += fmt.Sprintf("; %d consecutive lines from here are out of place (a line was moved, deleted, duplicated or renumbered)", run.n)
	}
	s.a.out.add(Finding{Rule: RuleOrder, Region: s.h.Region, Receipt: run.receipt, Leaf: s.leaf(run.pos),
		Source: fmt.Sprintf("%s:%d", s.src.Name, run.line), Detail: d})
}

// finish checks the header's size and looks for receipts on two lines.
func (s *structure) finish(ctx context.Context) error {
	s.endRun()
	want := s.h.Size
	if s.h.Kind == credit.ExportAnswered && s.h.Size >= s.h.From {
		want = s.h.Size - s.h.From
	}
	if s.pos != want {
		s.a.out.add(Finding{Rule: RuleSize, Region: s.h.Region, Source: s.src.Name, Detail: fmt.Sprintf(
			"the header says size %d (from %d) and the export holds %d lines: lines were added or removed after it was written", s.h.Size, s.h.From, s.pos)})
	}
	prints := s.prints
	s.prints = nil
	slices.Sort(prints)
	dup := map[uint64]bool{}
	for i := 1; i < len(prints); i++ {
		if prints[i] == prints[i-1] {
			dup[prints[i]] = true
		}
	}
	if len(dup) == 0 {
		return nil
	}
	return s.nameDuplicates(ctx, dup)
}

// nameDuplicates reads the export again and reports each line whose
// receipt id an earlier line holds.
func (s *structure) nameDuplicates(ctx context.Context, dup map[uint64]bool) error {
	first := map[string]int{}
	var pos uint64
	work := func(line []byte, no int, r *result) {
		r.line = no
		l, rc, lineErr, rcErr := credit.DecodeExportEntry(line)
		if lineErr != nil || rcErr != nil {
			return
		}
		r.index, r.id = l.Index, rc.ID
	}
	consume := func(r *result) error {
		p := pos
		pos++
		if r.id == "" || !dup[maphash.String(s.a.seed, r.id)] {
			return nil
		}
		at, ok := first[r.id]
		if !ok {
			first[r.id] = r.line
			return nil
		}
		s.a.out.add(Finding{Rule: RuleDuplicate, Region: s.h.Region, Receipt: r.id, Leaf: s.leaf(p + s.h.From),
			Source: fmt.Sprintf("%s:%d", s.src.Name, r.line), Detail: fmt.Sprintf("receipt %s is also on line %d", r.id, at)})
		return nil
	}
	return s.a.stream(ctx, s.src, perLine(work), consume)
}
