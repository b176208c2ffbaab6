package credit

import (
	"fmt"
	"slices"
	"testing"
)

// The streaming digest equals Report.Digest whatever the pieces.
func TestReportDigestEqualsReportDigest(t *testing.T) {
	subject := USCC("91440300708461136T")
	var recs []Record
	for i, c := range []Category{Registration, Tax, Tax, Penalty, Judicial, Judicial, Judicial} {
		r := Record{Subject: subject, Source: "dept-" + string(c), SourceID: fmt.Sprintf("r%d", i), Category: c,
			Date: Date(fmt.Sprintf("2024-01-%02d", i+1)), Attrs: []byte(`{"n":1}`)}
		recs = append(recs, r)
	}
	for n := 0; n <= len(recs); n++ {
		for piece := 1; piece <= max(n, 1); piece++ {
			d := NewReportDigest(subject)
			for i := 0; i < n; i += piece {
				d.Add(recs[i:min(i+piece, n)])
			}
			rep := NewReport(subject, recs[:n])
			if got, want := d.Sum(), rep.Digest(); got != want {
				t.Fatalf("%d records in pieces of %d: digest differs", n, piece)
			}
			if d.Count() != rep.Count() || !slices.Equal(d.Categories(), rep.Categories()) {
				t.Fatalf("%d records: count %d categories %v, want %d %v", n, d.Count(), d.Categories(), rep.Count(), rep.Categories())
			}
		}
	}
}
