package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/store"
)

var testNow = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

// jsonl makes n valid lines over n/10+1 subjects.
func jsonl(t testing.TB, n int) []string {
	cats := credit.AllCategories()
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`{"uscc":%q,"source":"dept%d","source_id":"r%d","category":%q,"date":"20%02d-%02d-%02d","attrs":{"amount":%d,"note":"x"}}`,
			testkit.USCC(t, "440300", i/10), i%5, i, cats[i%len(cats)], 10+i%15, 1+i%12, 1+i%28, i)
	}
	return out
}

func openDB(t testing.TB, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), store.Options{Dir: dir, InMemory: dir == "", Logger: testkit.LoggerAt(t, slog.LevelWarn)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func writeFile(t testing.TB, name string, lines []string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t testing.TB, db *store.DB, o Options, names ...string) (Summary, []Rejection, error) {
	t.Helper()
	var errs bytes.Buffer
	o.Errors = &errs
	o.Now = func() time.Time { return testNow }
	o.Logger = testkit.LoggerAt(t, slog.LevelWarn)
	if o.BatchLines == 0 {
		o.BatchLines = 7 // many batches even in small tests
	}
	im, err := New(db, o)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := im.Import(context.Background(), names)
	var rej []Rejection
	sc := bufio.NewScanner(&errs)
	for sc.Scan() {
		var r Rejection
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("error file line %q: %v", sc.Text(), err)
		}
		rej = append(rej, r)
	}
	return sum, rej, err
}

func dump(t testing.TB, db *store.DB) string {
	t.Helper()
	var b strings.Builder
	if err := db.Scan(context.Background(), func(r credit.Record) error {
		b.Write(r.AppendCanonical(nil))
		b.WriteByte('\n')
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	st, err := db.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "stats %d %d %v %v\n", st.Records, st.Subjects, st.Categories, st.Sources)
	return b.String()
}

func TestBadLines(t *testing.T) {
	good := jsonl(t, 3)
	u := string(testkit.USCC(t, "440300", 1))
	badCheck := u[:17] + map[bool]string{true: "1", false: "0"}[u[17] == '0']
	line := func(uscc, src, sid, cat, date, attrs string) string {
		return fmt.Sprintf(`{"uscc":%q,"source":%q,"source_id":%q,"category":%q,"date":%q,"attrs":%s}`, uscc, src, sid, cat, date, attrs)
	}
	tests := []struct {
		name  string
		line  string
		field string
		is    error
	}{
		{"bad check character", line(badCheck, "a", "1", "tax", "2020-01-01", "{}"), "uscc", credit.ErrInvalidUSCC},
		{"unknown category", line(u, "a", "1", "taxes", "2020-01-01", "{}"), "category", nil},
		{"bad date", line(u, "a", "1", "tax", "2020-02-30", "{}"), "date", nil},
		{"future date", line(u, "a", "1", "tax", "2026-12-25", "{}"), "date", nil},
		{"missing field", `{"uscc":"` + u + `","source":"a","category":"tax","date":"2020-01-01","attrs":{}}`, "source_id", credit.ErrMissing},
		{"missing attrs", `{"uscc":"` + u + `","source":"a","source_id":"1","category":"tax","date":"2020-01-01"}`, "attrs", credit.ErrMissing},
		{"oversized line", line(u, "a", "1", "tax", "2020-01-01", `{"x":"`+strings.Repeat("y", 2000)+`"}`), "", ErrOversized},
		{"invalid UTF-8", line(u, "a", "\xff\xfe", "tax", "2020-01-01", "{}"), "", ErrInvalidUTF8},
		{"malformed JSON", `{"uscc":"` + u + `",`, "", ErrMalformed},
		{"attrs not an object", line(u, "a", "1", "tax", "2020-01-01", `[1,2]`), "attrs", nil},
		{"attrs a string", line(u, "a", "1", "tax", "2020-01-01", `"{}"`), "attrs", nil},
		{"bad source", line(u, "A B", "1", "tax", "2020-01-01", "{}"), "source", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t, "")
			lines := []string{good[0], tc.line, good[1], "", good[2]}
			p := writeFile(t, "in.jsonl", lines)
			sum, rej, err := run(t, db, Options{MaxLineBytes: 1000, BatchLines: 2}, p)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Rejected != 1 || sum.Inserted != 3 || len(rej) != 1 {
				t.Fatalf("summary %+v, rejections %+v", sum, rej)
			}
			r := rej[0]
			if r.File != p || r.Line != 2 || r.Field != tc.field || r.Reason == "" {
				t.Fatalf("rejection %+v, want line 2 field %q", r, tc.field)
			}
			if tc.is != nil {
				// The same line through the library gives a matchable error.
				var rec credit.Record
				err := ParseJSONLine([]byte(tc.line), &rec)
				if err == nil {
					err = rec.Normalize(testNow, 0)
				}
				if tc.is == ErrOversized || tc.is == ErrInvalidUTF8 {
					return
				}
				if !errors.Is(err, tc.is) {
					t.Fatalf("error %v is not %v", err, tc.is)
				}
			}
		})
	}
}

func TestCSV(t *testing.T) {
	u := string(testkit.USCC(t, "440300", 3))
	csv := []string{
		"\xef\xbb\xbfdate,uscc,source,source_id,category,attrs,extra",
		`2021-05-06,` + u + `,tax-bureau,T1,tax,"{""rating"":""A"",""year"":2020}",ignored`,
		`2021-05-07,` + u + `,tax-bureau,T2,tax,{},`,
		`2021-05-08,` + u + `,tax-bureau,T3,tax,"{""a"":1}"`, // too few fields
		`2021-05-09,` + u + `,tax-bureau,"T"4",tax,{},`,      // bare quote
		`2021-05-10,` + u + `,tax-bureau,"T,5",tax,"{""b"":[1,2]}",x`,
		`2021-05-11,` + u + `,tax-bureau,T6,tax,"not json",x`,
	}
	db := openDB(t, "")
	p := writeFile(t, "feed.csv", csv)
	sum, rej, err := run(t, db, Options{}, p)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Inserted != 3 || sum.Rejected != 3 {
		t.Fatalf("summary %+v rejections %+v", sum, rej)
	}
	for i, want := range []struct {
		line  int64
		field string
	}{{4, ""}, {5, ""}, {7, "attrs"}} {
		if rej[i].Line != want.line || rej[i].Field != want.field {
			t.Fatalf("rejection %d: %+v, want %+v", i, rej[i], want)
		}
	}
	recs, err := db.Report(context.Background(), credit.USCC(u), store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, r := range recs {
		got = append(got, r.SourceID+" "+string(r.Attrs))
	}
	want := []string{`T1 {"rating":"A","year":2020}`, `T2 {}`, `T,5 {"b":[1,2]}`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}

	// A header without a required column fails that input only.
	bad := writeFile(t, "bad.csv", []string{"uscc,source", u + ",a"})
	_, _, err = run(t, db, Options{}, bad, p)
	if !errors.Is(err, ErrInput) || !errors.Is(err, ErrBadHeader) {
		t.Fatalf("bad header: %v", err)
	}
}

func gzipBytes(t testing.TB, s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestGzipAndStdin(t *testing.T) {
	lines := jsonl(t, 200)
	text := strings.Join(lines, "\n") + "\n"
	ref := openDB(t, "")
	if _, _, err := run(t, ref, Options{}, writeFile(t, "a.jsonl", lines)); err != nil {
		t.Fatal(err)
	}
	want := dump(t, ref)
	dir := t.TempDir()
	tests := []struct {
		name  string
		setup func() (Options, string)
	}{
		{"gzip by extension", func() (Options, string) {
			p := filepath.Join(dir, "a.jsonl.gz")
			os.WriteFile(p, gzipBytes(t, text), 0o644)
			return Options{}, p
		}},
		{"gzip by magic despite the name", func() (Options, string) {
			p := filepath.Join(dir, "b.jsonl")
			os.WriteFile(p, gzipBytes(t, text), 0o644)
			return Options{}, p
		}},
		{"stdin", func() (Options, string) {
			return Options{Format: FormatJSONL, Stdin: strings.NewReader(text)}, "-"
		}},
		{"gzip stdin", func() (Options, string) {
			return Options{Format: FormatJSONL, Stdin: bytes.NewReader(gzipBytes(t, text))}, "-"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t, "")
			o, name := tc.setup()
			sum, _, err := run(t, db, o, name)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Inserted != 200 {
				t.Fatalf("summary %+v", sum)
			}
			if got := dump(t, db); got != want {
				t.Fatalf("store differs from a plain import")
			}
		})
	}
	t.Run("stdin without format is JSON Lines", func(t *testing.T) {
		db := openDB(t, "")
		sum, _, err := run(t, db, Options{Stdin: strings.NewReader(text)}, "-")
		if err != nil || sum.Inserted != 200 {
			t.Fatalf("summary %+v, %v", sum, err)
		}
		if got := dump(t, db); got != want {
			t.Fatalf("store differs from a plain import")
		}
	})
}

// cancelAfter cancels the import after n batches.
type cancelAfter struct {
	n      int
	cancel func()
}

func (c *cancelAfter) Start(string, int64) {}
func (c *cancelAfter) Update(Summary, int64) {
	c.n--
	if c.n == 0 {
		c.cancel()
	}
}
func (c *cancelAfter) Finish(Summary) {}

func TestInterruptedImportResumes(t *testing.T) {
	lines := jsonl(t, 500)
	// Duplicates and corrections later in the input, so that replaying a
	// batch would show in the stats if deltas were not exact.
	lines = append(lines, lines[:50]...)
	lines = append(lines, strings.Replace(lines[60], `"amount":60`, `"amount":61`, 1), "garbage")
	for _, txn := range []bool{true, false} {
		for _, gz := range []bool{false, true} {
			t.Run(fmt.Sprintf("transactional=%v/gzip=%v", txn, gz), func(t *testing.T) {
				p := writeFile(t, "in.jsonl", lines)
				if gz {
					raw, _ := os.ReadFile(p)
					os.WriteFile(p, gzipBytes(t, string(raw)), 0o644)
				}
				ref := openDB(t, "")
				if _, _, err := run(t, ref, Options{}, p); err != nil {
					t.Fatal(err)
				}
				db := openDB(t, t.TempDir())
				for _, stopAfter := range []int{3, 20, 41} {
					ctx, cancel := context.WithCancel(context.Background())
					im, _ := New(db, Options{BatchLines: 7, Transactional: txn, Now: func() time.Time { return testNow }, Progress: &cancelAfter{n: stopAfter, cancel: cancel}})
					_, err := im.Import(ctx, []string{p})
					cancel()
					if !errors.Is(err, context.Canceled) {
						t.Fatalf("interrupted import: %v", err)
					}
				}
				sum, _, err := run(t, db, Options{Transactional: txn}, p)
				if err != nil {
					t.Fatal(err)
				}
				// Batch by batch, what was committed is not read again; a
				// Load writes nothing until it ends, so it reads it all.
				if txn && sum.Lines >= int64(len(lines))-41*7 {
					t.Fatalf("resumed run read %d lines: it did not skip what was stored", sum.Lines)
				}
				if got, want := dump(t, db), dump(t, ref); got != want {
					t.Fatalf("resumed store differs from uninterrupted one")
				}
				sum, _, err = run(t, db, Options{Transactional: txn}, p)
				if err != nil || sum.Skipped != 1 || sum.Lines != 0 {
					t.Fatalf("third run: %+v %v", sum, err)
				}
			})
		}
	}
}

func TestBulkImport(t *testing.T) {
	lines := jsonl(t, 1000)
	lines = append(lines, lines[:100]...)
	lines = append(lines, strings.Replace(lines[7], `"amount":7`, `"amount":8`, 1), "{}")
	p := writeFile(t, "in.jsonl", lines)
	ref := openDB(t, "")
	want, _, err := run(t, ref, Options{}, p)
	if err != nil {
		t.Fatal(err)
	}
	db := openDB(t, t.TempDir())
	got, rej, err := run(t, db, Options{Bulk: true, BulkOptions: store.BulkOptions{TempDir: t.TempDir(), ChunkBytes: 32 << 10}}, p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Inserted != want.Inserted || got.Replaced != want.Replaced || got.Unchanged != want.Unchanged || len(rej) != 1 {
		t.Fatalf("bulk %+v, ordinary %+v", got, want)
	}
	if dump(t, db) != dump(t, ref) {
		t.Fatal("bulk store differs")
	}
	// The bulk load recorded the input as done.
	sum, _, err := run(t, db, Options{}, p)
	if err != nil || sum.Skipped != 1 {
		t.Fatalf("after bulk: %+v %v", sum, err)
	}
	// And refuses a second bulk load.
	if _, _, err := run(t, db, Options{Bulk: true}, p); !errors.Is(err, store.ErrNotEmpty) {
		t.Fatalf("second bulk: %v", err)
	}
}
