package store

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
)

// A snapshot read in pieces gives the records Report gives, in the same
// order, every time it is read, even after the store changed meanwhile.
func TestReportSnapshotPiecesAndRereads(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, Options{InMemory: true, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cats := credit.AllCategories()
	var recs []credit.Record
	for i := range 300 {
		recs = append(recs, rec(t, 1, "dept", fmt.Sprintf("r%d", i), cats[i%len(cats)],
			fmt.Sprintf("20%02d-%02d-%02d", 10+i%13, 1+i%12, 1+i%28), fmt.Sprintf(`{"n":%d}`, i)))
	}
	put(t, db, recs...)
	want, err := db.Report(ctx, testkit.USCC(t, "440300", 1), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := db.OpenReport(testkit.USCC(t, "440300", 1), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A record written after the snapshot opened is not in it.
	put(t, db, rec(t, 1, "dept", "late", cats[0], "2001-01-01", `{}`))
	for pass := range 2 {
		var got []credit.Record
		pieces := 0
		if err := s.Each(ctx, 1000, func(rs []credit.Record) error {
			pieces++
			got = append(got, rs...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if pieces < 5 || !slices.Equal(reportKeys(got), reportKeys(want)) {
			t.Fatalf("pass %d: %d records in %d pieces, want the report's %d in several", pass, len(got), pieces, len(want))
		}
	}
	empty, err := db.OpenReport(testkit.USCC(t, "440300", 2), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	calls := 0
	if err := empty.Each(ctx, 1000, func(rs []credit.Record) error { calls++; return nil }); err != nil || calls != 1 {
		t.Fatalf("empty subject: %d calls, %v", calls, err)
	}
}
