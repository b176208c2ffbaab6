package credit

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
)

// The streaming encoding and digest equal Report.AppendCanonical and
// Report.Digest whatever the pieces, across the writer's flushes.
func TestReportWriterAndDigestEqualReport(t *testing.T) {
	subject := USCC("91440300708461136T")
	var recs []Record
	for i, c := range []Category{Registration, Tax, Tax, Penalty, Judicial, Judicial, Judicial} {
		r := Record{Subject: subject, Source: "dept-" + string(c), SourceID: fmt.Sprintf("r%d", i), Category: c,
			Date: Date(fmt.Sprintf("2024-01-%02d", i+1)), Attrs: []byte(fmt.Sprintf(`{"n":1,"pad":%q}`, bytes.Repeat([]byte("x"), i*2000)))}
		recs = append(recs, r)
	}
	for n := 0; n <= len(recs); n++ {
		for piece := 1; piece <= max(n, 1); piece++ {
			d := NewReportDigest(subject)
			for i := 0; i < n; i += piece {
				d.Add(recs[i:min(i+piece, n)])
			}
			rep := NewReport(subject, recs[:n])
			var out bytes.Buffer
			w := NewReportWriter(&out, subject)
			for i := 0; i < n; i += piece {
				if err := w.Add(recs[i:min(i+piece, n)]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil || !bytes.Equal(out.Bytes(), rep.AppendCanonical(nil)) {
				t.Fatalf("%d records in pieces of %d: written %q, want %q (%v)", n, piece, out.Bytes(), rep.AppendCanonical(nil), err)
			}
			if got, want := d.Sum(), rep.Digest(); got != want {
				t.Fatalf("%d records in pieces of %d: digest differs", n, piece)
			}
			if sum, canon := rep.DigestCanonical([]byte("kept")); sum != rep.Digest() || !bytes.Equal(canon, append([]byte("kept"), rep.AppendCanonical(nil)...)) {
				t.Fatalf("%d records: DigestCanonical differs from Digest and AppendCanonical", n)
			}
			if d.Count() != rep.Count() || !slices.Equal(d.Categories(), rep.Categories()) {
				t.Fatalf("%d records: count %d categories %v, want %d %v", n, d.Count(), d.Categories(), rep.Count(), rep.Categories())
			}
		}
	}
}
