package synth

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

func newGen(t testing.TB, region credit.RegionID, n int, seed uint64) *Generator {
	t.Helper()
	g, err := New(Config{Region: region, Enterprises: n, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func write(t testing.TB, g *Generator, f Format, workers int) []byte {
	t.Helper()
	var buf bytes.Buffer
	st, err := g.Write(context.Background(), &buf, f, workers)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes != int64(buf.Len()) || st.Enterprises != g.Config().Enterprises {
		t.Fatalf("stats %+v, wrote %d bytes", st, buf.Len())
	}
	return buf.Bytes()
}

func TestDeterministic(t *testing.T) {
	for _, f := range []Format{JSONL, CSV} {
		t.Run(f.String(), func(t *testing.T) {
			// 130 enterprises span three chunks, so worker counts change the
			// interleaving of the work but must not change the bytes.
			a := write(t, newGen(t, "440300", 130, 7), f, 1)
			b := write(t, newGen(t, "440300", 130, 7), f, 4)
			if !bytes.Equal(a, b) {
				t.Fatal("same seed, different workers: different bytes")
			}
			c := write(t, newGen(t, "440300", 130, 8), f, 4)
			if bytes.Equal(a, c) {
				t.Fatal("different seeds gave the same bytes")
			}
		})
	}
}

func TestRecordsValid(t *testing.T) {
	regions, err := credit.NewRegionMap(credit.PearlRiverDelta())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		region credit.RegionID
		mapped bool // in the Pearl River Delta region map
	}{
		{"440300", true}, {"440100", true}, {"440400", true}, {"441900", true},
		{"441500", false}, // Shanwei: not listed, falls back to its own code
	} {
		t.Run(string(tc.region), func(t *testing.T) {
			g := newGen(t, tc.region, 60, 1)
			asOf := g.Config().AsOf
			oldest := asOf.AddDate(-10, 0, -1)
			seen := map[credit.USCC]bool{}
			var records, attrBytes int
			for i, u := range g.Enterprises() {
				if seen[u] {
					t.Fatalf("USCC %s twice", u)
				}
				seen[u] = true
				if tc.mapped {
					if got, ok := regions.RegionOf(u); !ok || got != tc.region {
						t.Fatalf("%s maps to %q %v, want %s", u, got, ok, tc.region)
					}
				} else if u.Division() != string(tc.region) {
					t.Fatalf("%s: division %s, want %s", u, u.Division(), tc.region)
				}
				ids := map[string]bool{}
				for _, r := range g.EnterpriseRecords(i) {
					raw := slices.Clone(r.Attrs)
					if err := r.Normalize(asOf, 0); err != nil {
						t.Fatalf("record %+v: %v", r, err)
					}
					if !bytes.Equal(raw, r.Attrs) {
						t.Fatalf("attrs not canonical:\n%s\n%s", raw, r.Attrs)
					}
					if records%7 == 0 { // the JSON tokenizer is slow under -race
						assertSortedKeys(t, raw)
					}
					if r.Subject != u {
						t.Fatalf("record of %s under enterprise %s", r.Subject, u)
					}
					if d := r.Date.Time(); d.After(asOf) || d.Before(oldest) {
						t.Fatalf("date %s outside (%s, %s]", r.Date, oldest, asOf)
					}
					id := r.Source + "/" + r.SourceID
					if ids[id] {
						t.Fatalf("identity %s twice for %s", id, u)
					}
					ids[id] = true
					records++
					attrBytes += len(raw)
				}
			}
			if avg := attrBytes / records; avg < 150 || avg > 300 {
				t.Errorf("average attrs %d bytes, want 150-300", avg)
			}
			t.Logf("%d records, %d bytes of attrs on average", records, attrBytes/records)
		})
	}
}

// assertSortedKeys checks that attrs is a flat object with strictly
// increasing keys: the form credit.CanonicalAttrs accepts without re-encoding.
func assertSortedKeys(t *testing.T, raw []byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("attrs %s: not an object", raw)
	}
	prev := ""
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		k := tok.(string)
		if k <= prev {
			t.Fatalf("attrs %s: key %q after %q", raw, k, prev)
		}
		prev = k
		v, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := v.(json.Delim); ok {
			t.Fatalf("attrs %s: nested value", raw)
		}
	}
}

func TestMeanRecordsPerEnterprise(t *testing.T) {
	const n = 20000
	g := newGen(t, "440300", n, 3)
	total, most := 0, 0
	for i := range n {
		c := g.RecordCount(i)
		total += c
		most = max(most, c)
	}
	mean := float64(total) / n
	// Standard error of the mean is about 1.8 at this size.
	if mean < 175 || mean > 191 {
		t.Fatalf("mean %.1f records per enterprise, want about 183", mean)
	}
	if most < 1000 || most > MaxRecordsPerEnterprise {
		t.Fatalf("largest enterprise %d records: want a long tail, capped at %d", most, MaxRecordsPerEnterprise)
	}
	t.Logf("mean %.1f, max %d", mean, most)
}

// TestOutputParses reads both formats back and compares them with the
// records the iterator gives.
func TestOutputParses(t *testing.T) {
	g := newGen(t, "440400", 40, 11)
	var want []credit.Record
	for r := range g.Records() {
		want = append(want, r)
	}
	t.Run("jsonl", func(t *testing.T) {
		sc := bufio.NewScanner(bytes.NewReader(write(t, g, JSONL, 3)))
		var got []credit.Record
		for sc.Scan() {
			var r credit.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("line %d: %v", len(got)+1, err)
			}
			got = append(got, r)
		}
		compare(t, got, want)
	})
	t.Run("csv", func(t *testing.T) {
		rows, err := csv.NewReader(bytes.NewReader(write(t, g, CSV, 3))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if h := rows[0]; !slices.Equal(h, []string{"uscc", "source", "source_id", "category", "date", "attrs"}) {
			t.Fatalf("header %v", h)
		}
		var got []credit.Record
		for _, f := range rows[1:] {
			got = append(got, credit.Record{Subject: credit.USCC(f[0]), Source: f[1], SourceID: f[2],
				Category: credit.Category(f[3]), Date: credit.Date(f[4]), Attrs: json.RawMessage(f[5])})
		}
		compare(t, got, want)
	})
}

func compare(t *testing.T, got, want []credit.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Subject != w.Subject || g.Source != w.Source || g.SourceID != w.SourceID ||
			g.Category != w.Category || g.Date != w.Date || !bytes.Equal(g.Attrs, w.Attrs) {
			t.Fatalf("record %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func TestWriteRange(t *testing.T) {
	g := newGen(t, "440300", 150, 4)
	all := write(t, g, JSONL, 2)
	var parts bytes.Buffer
	for _, r := range [][2]int{{0, 15}, {15, 100}, {100, 150}} {
		if _, err := g.WriteRange(context.Background(), &parts, JSONL, 2, r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(parts.Bytes(), all) {
		t.Fatal("ranges joined differ from the whole")
	}
	if _, err := g.WriteRange(context.Background(), io.Discard, JSONL, 2, 100, 151); err == nil {
		t.Fatal("range past the end accepted")
	}
}

func TestConvenience(t *testing.T) {
	us := Enterprises("440300", 5, 9)
	g := newGen(t, "440300", 5, 9)
	for i, u := range us {
		if g.Enterprise(i) != u {
			t.Fatalf("Enterprise(%d) = %s, Enterprises()[%d] = %s", i, g.Enterprise(i), i, u)
		}
	}
	n := 0
	for r := range Records("440300", 5, 9) {
		if !slices.Contains(us, r.Subject) {
			t.Fatalf("record of unknown enterprise %s", r.Subject)
		}
		n++
		if n == 10 {
			break // the iterator must stop when asked
		}
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"short region", Config{Region: "4403", Enterprises: 1}},
		{"no such province", Config{Region: "990300", Enterprises: 1}},
		{"negative", Config{Region: "440300", Enterprises: -1}},
		{"mean too large", Config{Region: "440300", Enterprises: 1, MeanRecords: 1e6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := New(Config{Region: "99"}); !errors.Is(err, ErrRegion) {
		t.Fatalf("got %v, want ErrRegion", err)
	}
}

type failWriter struct{ after int }

var errDisk = errors.New("disk full")

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after <= 0 {
		return 0, errDisk
	}
	w.after--
	return len(p), nil
}

func TestWriteStops(t *testing.T) {
	g := newGen(t, "440300", 400, 1)
	t.Run("writer fails", func(t *testing.T) {
		_, err := g.Write(context.Background(), &failWriter{after: 2}, JSONL, 2)
		if !errors.Is(err, errDisk) {
			t.Fatalf("got %v, want %v", err, errDisk)
		}
	})
	t.Run("context cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		w := writerFunc(func(p []byte) (int, error) { cancel(); return len(p), nil })
		st, err := g.Write(ctx, w, JSONL, 2)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		if st.Enterprises != 0 {
			t.Fatalf("stats claim %d enterprises after cancellation", st.Enterprises)
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestDatesNeverPassAsOf(t *testing.T) {
	asOf := time.Date(2025, 3, 1, 15, 0, 0, 0, time.UTC)
	g, err := New(Config{Region: "440300", Enterprises: 50, Seed: 2, AsOf: asOf})
	if err != nil {
		t.Fatal(err)
	}
	for r := range g.Records() {
		if r.Date > "2025-03-01" {
			t.Fatalf("date %s after as-of %s", r.Date, asOf)
		}
	}
}

func BenchmarkWrite(b *testing.B) {
	for _, f := range []Format{JSONL, CSV} {
		b.Run(f.String(), func(b *testing.B) {
			g := newGen(b, "440300", 2000, 1)
			var records, bytes int64
			for b.Loop() {
				st, err := g.Write(context.Background(), io.Discard, f, 0)
				if err != nil {
					b.Fatal(err)
				}
				records += st.Records
				bytes += st.Bytes
			}
			b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
			b.SetBytes(bytes / int64(b.N))
		})
	}
}
