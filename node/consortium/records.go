package consortium

import (
	"context"
	"slices"
	"sync"

	"github.com/prdcredit/ccnode/credit"
)

// MemRecords is an in-memory record source for tests and the demo's
// fallback when no store is wired.
type MemRecords struct {
	mu   sync.RWMutex
	recs map[credit.USCC][]credit.Record
	n    int
}

// NewMemRecords makes an empty source.
func NewMemRecords() *MemRecords { return &MemRecords{recs: map[credit.USCC][]credit.Record{}} }

// Add stores normalised records.
func (m *MemRecords) Add(recs ...credit.Record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range recs {
		m.recs[r.Subject] = append(m.recs[r.Subject], r)
		m.n++
	}
	for u := range m.recs {
		slices.SortStableFunc(m.recs[u], func(a, b credit.Record) int {
			if d := a.Category.Ordinal() - b.Category.Ordinal(); d != 0 {
				return d
			}
			switch {
			case a.Date < b.Date:
				return -1
			case a.Date > b.Date:
				return 1
			}
			return 0
		})
	}
}

// Len is the number of records held.
func (m *MemRecords) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.n
}

// Report returns the subject's records in the categories, in report order.
func (m *MemRecords) Report(_ context.Context, subject credit.USCC, cats []credit.Category) (credit.Report, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []credit.Record
	for _, r := range m.recs[subject] {
		if slices.Contains(cats, r.Category) {
			out = append(out, r)
		}
	}
	return credit.NewReport(subject, out), nil
}
