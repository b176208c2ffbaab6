package node

import (
	"context"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/store"
)

// StoreRecords reads reports from the region's record store.
type StoreRecords struct{ Reader store.ReportReader }

// Report reads the subject's records in the categories.
func (s StoreRecords) Report(ctx context.Context, subject credit.USCC, cats []credit.Category) (credit.Report, error) {
	recs, err := s.Reader.Report(ctx, subject, store.Filter{Categories: cats})
	if err != nil {
		return credit.Report{}, err
	}
	return credit.NewReport(subject, recs), nil
}
