package credit_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"io"
	"slices"
	"testing"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/credit/synth"
)

// benchReport is one generated enterprise's report, records in report
// order, with about n records.
func benchReport(tb testing.TB, n int) credit.Report {
	tb.Helper()
	g, err := synth.New(synth.Config{Region: "440300", Enterprises: 400, Seed: 1})
	if err != nil {
		tb.Fatal(err)
	}
	best, bestN := 0, -1
	for i := range 400 {
		if c := g.RecordCount(i); bestN < 0 || absDiff(c, n) < absDiff(bestN, n) {
			best, bestN = i, c
		}
	}
	recs := g.EnterpriseRecords(best)
	slices.SortStableFunc(recs, func(a, b credit.Record) int {
		return cmp.Or(cmp.Compare(a.Category, b.Category), cmp.Compare(a.Date, b.Date))
	})
	return credit.NewReport(recs[0].Subject, recs)
}

func absDiff(a, b int) int { return max(a-b, b-a) }

// consolidated has the shape of the home node's answer to a bank: one
// report per region behind a pointer, encoded by encoding/json as the
// node's HTTP handler encodes it (json.NewEncoder, HTML escaping on).
type consolidated struct {
	Regions []regionSlice `json:"regions"`
}

type regionSlice struct {
	Region string         `json:"region"`
	Report *credit.Report `json:"report,omitempty"`
}

func consolidatedOf(reps ...credit.Report) consolidated {
	var c consolidated
	for i := range reps {
		c.Regions = append(c.Regions, regionSlice{Region: "4403", Report: &reps[i]})
	}
	return c
}

// TestReportMarshalJSONMatchesAppendCanonical: MarshalJSON, which sizes its
// buffer up front, still emits exactly the canonical encoding, and
// encoding/json keeps it (after its own validation) inside larger values.
func TestReportMarshalJSONMatchesAppendCanonical(t *testing.T) {
	for _, n := range []int{0, 1, 183, 600} {
		rep := benchReport(t, n)
		got, err := rep.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if want := rep.AppendCanonical(nil); !bytes.Equal(got, want) {
			t.Fatalf("%d records: MarshalJSON differs from AppendCanonical", rep.Count())
		}
		var back credit.Report
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%d records: %v", rep.Count(), err)
		}
		if back.Digest() != rep.Digest() {
			t.Fatalf("%d records: decoded report has another digest", rep.Count())
		}
	}
	empty := credit.Report{Subject: "91440300708461136T"}
	if got, _ := empty.MarshalJSON(); string(got) != `{"uscc":"91440300708461136T","sections":[]}` {
		t.Fatalf("empty report: %s", got)
	}
}

// TestReportMarshalJSONOneAllocation: the buffer is sized once, not grown
// record by record.
func TestReportMarshalJSONOneAllocation(t *testing.T) {
	rep := benchReport(t, 183)
	if a := testing.AllocsPerRun(20, func() { _, _ = rep.MarshalJSON() }); a != 1 {
		t.Fatalf("MarshalJSON of %d records: %.0f allocations, want 1", rep.Count(), a)
	}
	rec := rep.Sections[0].Records[0]
	if a := testing.AllocsPerRun(20, func() { _, _ = rec.MarshalJSON() }); a != 1 {
		t.Fatalf("Record.MarshalJSON: %.0f allocations, want 1", a)
	}
}

// BenchmarkReportJSON measures a three-region answer of ~183 records per
// region as the bank's HTTP response is encoded today (encoding/json over
// Report.MarshalJSON), MarshalJSON alone, and the floor: the canonical
// bytes appended to a reused buffer, which a hand-written encoder of the
// consolidated answer would pay.
func BenchmarkReportJSON(b *testing.B) {
	rep := benchReport(b, 183)
	c := consolidatedOf(rep, rep, rep)
	size := 0
	b.Run("encoding_json_encoder", func(b *testing.B) {
		for b.Loop() {
			cw := countWriter{}
			if err := json.NewEncoder(&cw).Encode(c); err != nil {
				b.Fatal(err)
			}
			size = cw.n
		}
		b.SetBytes(int64(size))
	})
	b.Run("marshal_json_x3", func(b *testing.B) {
		for b.Loop() {
			for i := range c.Regions {
				if _, err := c.Regions[i].Report.MarshalJSON(); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.SetBytes(int64(size))
	})
	b.Run("append_canonical_x3", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = buf[:0]
			for i := range c.Regions {
				buf = c.Regions[i].Report.AppendCanonical(buf)
			}
			_, _ = io.Discard.Write(buf)
		}
		b.SetBytes(int64(size))
	})
}

type countWriter struct{ n int }

func (w *countWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
