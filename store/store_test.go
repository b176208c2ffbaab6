package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
)

// eachMode runs body once on an in-memory store and once on disk.
func eachMode(t *testing.T, body func(t *testing.T, open func() *DB)) {
	for _, mode := range []string{"memory", "disk"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			open := func() *DB {
				db, err := Open(context.Background(), Options{Dir: dir, InMemory: mode == "memory", Logger: testkit.LoggerAt(t, slog.LevelWarn)})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				return db
			}
			body(t, open)
		})
	}
}

func rec(t testing.TB, subj int, src, sid string, cat credit.Category, date string, attrs string) credit.Record {
	t.Helper()
	r := credit.Record{Subject: testkit.USCC(t, "440300", subj), Source: src, SourceID: sid, Category: cat, Date: credit.Date(date), Attrs: []byte(attrs)}
	if err := r.Normalize(credit.Date("2026-01-01").Time(), 0); err != nil {
		t.Fatal(err)
	}
	return r
}

func put(t testing.TB, db *DB, recs ...credit.Record) WriteResult {
	t.Helper()
	res, err := db.Put(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func keyOf(r credit.Record) string {
	return fmt.Sprintf("%s|%02d|%s|%s|%s|%s", r.Subject, r.Category.Ordinal(), r.Date, r.Source, r.SourceID, r.Attrs)
}

func TestReportOrderAndFilters(t *testing.T) {
	eachMode(t, func(t *testing.T, open func() *DB) {
		db := open()
		ctx := context.Background()
		var recs []credit.Record
		cats := credit.AllCategories()
		for i := 0; i < 60; i++ {
			c := cats[(i*7)%len(cats)]
			d := fmt.Sprintf("20%02d-%02d-%02d", 10+i%13, 1+i%12, 1+i%28)
			recs = append(recs, rec(t, 1, "dept"+fmt.Sprint(i%3), fmt.Sprintf("id-%d", i), c, d, fmt.Sprintf(`{"n":%d}`, i)))
		}
		other := rec(t, 2, "tax", "x", credit.Tax, "2020-01-01", `{}`)
		rand.New(rand.NewPCG(1, 2)).Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
		put(t, db, append(slices.Clone(recs), other)...)

		sorted := slices.Clone(recs)
		slices.SortFunc(sorted, func(a, b credit.Record) int {
			if a.Category != b.Category {
				return a.Category.Ordinal() - b.Category.Ordinal()
			}
			return strings.Compare(string(a.Date), string(b.Date))
		})
		tests := []struct {
			name string
			f    Filter
			keep func(credit.Record) bool
		}{
			{"all", Filter{}, func(credit.Record) bool { return true }},
			{"categories", Filter{Categories: []credit.Category{credit.Tax, credit.Registration, credit.Tax}},
				func(r credit.Record) bool { return r.Category == credit.Tax || r.Category == credit.Registration }},
			{"from", Filter{From: "2015-06-01"}, func(r credit.Record) bool { return r.Date >= "2015-06-01" }},
			{"to", Filter{To: "2014-12-31"}, func(r credit.Record) bool { return r.Date <= "2014-12-31" }},
			{"range and category", Filter{Categories: []credit.Category{credit.Judicial, credit.Financial}, From: "2012-01-01", To: "2018-12-31"},
				func(r credit.Record) bool {
					return (r.Category == credit.Judicial || r.Category == credit.Financial) && r.Date >= "2012-01-01" && r.Date <= "2018-12-31"
				}},
			{"empty range", Filter{From: "2030-01-01"}, func(credit.Record) bool { return false }},
			// Most categories are read in one scan that skips the others.
			{"all categories named", Filter{Categories: cats}, func(credit.Record) bool { return true }},
			{"all but two categories", Filter{Categories: slices.DeleteFunc(slices.Clone(cats), func(c credit.Category) bool { return c == credit.Tax || c == credit.Customs })},
				func(r credit.Record) bool { return r.Category != credit.Tax && r.Category != credit.Customs }},
			{"most categories in a range", Filter{Categories: cats[1:], From: "2013-01-01", To: "2019-06-30"},
				func(r credit.Record) bool {
					return r.Category != cats[0] && r.Date >= "2013-01-01" && r.Date <= "2019-06-30"
				}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := db.Report(ctx, testkit.USCC(t, "440300", 1), tc.f)
				if err != nil {
					t.Fatal(err)
				}
				var want []credit.Record
				for _, r := range sorted {
					if tc.keep(r) {
						want = append(want, r)
					}
				}
				if len(got) != len(want) {
					t.Fatalf("got %d records, want %d", len(got), len(want))
				}
				for i := range got {
					if got[i].Category != want[i].Category || got[i].Date != want[i].Date {
						t.Fatalf("record %d: got %s %s, want %s %s", i, got[i].Category, got[i].Date, want[i].Category, want[i].Date)
					}
				}
				// Same multiset of full records (order among equal (category,
				// date) is by identity).
				gk, wk := mapKeys(got), mapKeys(want)
				if !slices.Equal(gk, wk) {
					t.Fatalf("records differ:\n got %v\nwant %v", gk, wk)
				}
			})
		}
		got, err := db.Report(ctx, testkit.USCC(t, "440300", 3), Filter{})
		if err != nil || len(got) != 0 {
			t.Fatalf("unknown subject: %v, %d records", err, len(got))
		}
	})
}

func mapKeys(rs []credit.Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, keyOf(r))
	}
	slices.Sort(out)
	return out
}

func TestDuplicatesAndCorrections(t *testing.T) {
	base := func(t *testing.T) credit.Record {
		return rec(t, 5, "mr", "r1", credit.Penalty, "2021-03-04", `{"amount":100}`)
	}
	tests := []struct {
		name   string
		second func(t *testing.T) credit.Record
		want   WriteResult
		stats  map[credit.Category]int64
	}{
		{"identical", base, WriteResult{Unchanged: 1}, map[credit.Category]int64{credit.Penalty: 1}},
		{"attrs corrected", func(t *testing.T) credit.Record {
			return rec(t, 5, "mr", "r1", credit.Penalty, "2021-03-04", `{"amount":90}`)
		}, WriteResult{Replaced: 1}, map[credit.Category]int64{credit.Penalty: 1}},
		{"date corrected", func(t *testing.T) credit.Record {
			return rec(t, 5, "mr", "r1", credit.Penalty, "2021-03-05", `{"amount":100}`)
		}, WriteResult{Replaced: 1}, map[credit.Category]int64{credit.Penalty: 1}},
		{"category corrected", func(t *testing.T) credit.Record {
			return rec(t, 5, "mr", "r1", credit.Judicial, "2021-03-04", `{"amount":100}`)
		}, WriteResult{Replaced: 1}, map[credit.Category]int64{credit.Judicial: 1}},
		{"other source id", func(t *testing.T) credit.Record {
			return rec(t, 5, "mr", "r2", credit.Penalty, "2021-03-04", `{"amount":100}`)
		}, WriteResult{Inserted: 1}, map[credit.Category]int64{credit.Penalty: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, open func() *DB) {
				db := open()
				ctx := context.Background()
				if got := put(t, db, base(t)); got != (WriteResult{Inserted: 1}) {
					t.Fatalf("first put: %+v", got)
				}
				second := tc.second(t)
				if got := put(t, db, second); got != tc.want {
					t.Fatalf("second put: got %+v, want %+v", got, tc.want)
				}
				got, err := db.Report(ctx, testkit.USCC(t, "440300", 5), Filter{})
				if err != nil {
					t.Fatal(err)
				}
				if int64(len(got)) != tc.want.Inserted+1 {
					t.Fatalf("report has %d records", len(got))
				}
				if !slices.ContainsFunc(got, func(r credit.Record) bool { return keyOf(r) == keyOf(second) }) {
					t.Fatalf("report %v lacks %v", got, second)
				}
				st, err := db.Stats(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if st.Records != int64(len(got)) || st.Subjects != 1 || st.Sources["mr"] != int64(len(got)) {
					t.Fatalf("stats %+v", st)
				}
				if fmt.Sprint(st.Categories) != fmt.Sprint(tc.stats) {
					t.Fatalf("category stats %v, want %v", st.Categories, tc.stats)
				}
			})
		})
	}
}

// dump is everything observable: all records in key order and the stats.
func dump(t testing.TB, db *DB) string {
	t.Helper()
	var b strings.Builder
	err := db.Scan(context.Background(), func(r credit.Record) error {
		b.WriteString(keyOf(r))
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := db.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "stats %d %d %v %v\n", st.Records, st.Subjects, st.Categories, st.Sources)
	return b.String()
}

// modelStats recomputes the stats from a full scan.
func modelStats(t testing.TB, db *DB) Stats {
	t.Helper()
	s := Stats{Categories: map[credit.Category]int64{}, Sources: map[string]int64{}}
	subj := map[credit.USCC]bool{}
	if err := db.Scan(context.Background(), func(r credit.Record) error {
		s.Records++
		s.Categories[r.Category]++
		s.Sources[r.Source]++
		subj[r.Subject] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.Subjects = int64(len(subj))
	return s
}

// randomRecords makes n records over few identities, so that many are
// duplicates or corrections of each other.
func randomRecords(t testing.TB, seed uint64, n int) []credit.Record {
	rng := rand.New(rand.NewPCG(seed, 7))
	cats := credit.AllCategories()
	out := make([]credit.Record, n)
	for i := range out {
		out[i] = rec(t, rng.IntN(20), fmt.Sprintf("src%d", rng.IntN(4)), fmt.Sprintf("id%d", rng.IntN(30)),
			cats[rng.IntN(3)], fmt.Sprintf("2020-01-%02d", 1+rng.IntN(3)), fmt.Sprintf(`{"v":%d}`, rng.IntN(2)))
	}
	return out
}

func TestStatsExact(t *testing.T) {
	eachMode(t, func(t *testing.T, open func() *DB) {
		db := open()
		recs := randomRecords(t, 1, 3000)
		var total WriteResult
		for len(recs) > 0 {
			n := min(len(recs), 1+len(recs)%97)
			total.Add(put(t, db, recs[:n]...))
			recs = recs[n:]
		}
		st, err := db.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := modelStats(t, db)
		if fmt.Sprint(st) != fmt.Sprint(want) {
			t.Fatalf("stats %+v, recomputed %+v", st, want)
		}
		if total.Inserted != st.Records || total.Inserted+total.Replaced+total.Unchanged != 3000 {
			t.Fatalf("results %+v vs stats %+v", total, st)
		}
	})
}

func TestBulkMatchesOrdinaryWrites(t *testing.T) {
	recs := randomRecords(t, 2, 5000)
	for _, chunk := range []int{0, 20 << 10} { // in memory; spilled to many runs
		t.Run(fmt.Sprintf("chunk=%d", chunk), func(t *testing.T) {
			ctx := context.Background()
			eachMode(t, func(t *testing.T, open func() *DB) {
				ref, err := Open(ctx, Options{InMemory: true})
				if err != nil {
					t.Fatal(err)
				}
				defer ref.Close()
				want := put(t, ref, recs...)
				db := open()
				b, err := db.NewBulk(BulkOptions{TempDir: t.TempDir(), ChunkBytes: chunk})
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				if _, err := db.Stats(ctx); !errors.Is(err, ErrIncompleteBulk) {
					t.Fatalf("stats during bulk: %v", err)
				}
				for i := 0; i < len(recs); i += 333 {
					var es []Entry
					for _, r := range recs[i:min(i+333, len(recs))] {
						e, err := Encode(&r)
						if err != nil {
							t.Fatal(err)
						}
						es = append(es, e)
					}
					if err := b.Add(es); err != nil {
						t.Fatal(err)
					}
				}
				got, err := b.Finish(ctx, []Progress{{Input: "x", Offset: 9, Done: true}})
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Fatalf("bulk result %+v, ordinary %+v", got, want)
				}
				if d1, d2 := dump(t, db), dump(t, ref); d1 != d2 {
					t.Fatalf("bulk store differs from ordinary store:\n%s\n----\n%s", tail(d1), tail(d2))
				}
				p, ok, err := db.LoadProgress(ctx, "x")
				if err != nil || !ok || p.Offset != 9 {
					t.Fatalf("progress %+v %v %v", p, ok, err)
				}
				// Ordinary writes continue exactly after a bulk load.
				more := randomRecords(t, 3, 500)
				put(t, db, more...)
				put(t, ref, more...)
				if d1, d2 := dump(t, db), dump(t, ref); d1 != d2 {
					t.Fatalf("stores differ after writes on top of bulk")
				}
			})
		})
	}
}

func TestBulkRefusesNonEmpty(t *testing.T) {
	eachMode(t, func(t *testing.T, open func() *DB) {
		db := open()
		put(t, db, rec(t, 1, "a", "b", credit.Tax, "2020-01-01", `{}`))
		if _, err := db.NewBulk(BulkOptions{}); !errors.Is(err, ErrNotEmpty) {
			t.Fatalf("got %v, want ErrNotEmpty", err)
		}
	})
}

func TestInterruptedBulkIsDetected(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// What a killed bulk load leaves: records and no totals.
	e, err := Encode(&[]credit.Record{rec(t, 1, "a", "b", credit.Tax, "2020-01-01", `{}`)}[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Badger().Update(func(txn *badger.Txn) error { return txn.Set(e.RecKey, e.Value) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Report(ctx, testkit.USCC(t, "440300", 1), Filter{}); !errors.Is(err, ErrIncompleteBulk) {
		t.Fatalf("report: %v, want ErrIncompleteBulk", err)
	}
	b, err := db.NewBulk(BulkOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatalf("bulk over an interrupted bulk: %v", err)
	}
	if _, err := b.Finish(ctx, nil); err != nil {
		t.Fatal(err)
	}
	st, err := db.Stats(ctx)
	if err != nil || st.Records != 0 {
		t.Fatalf("stats after empty bulk: %+v %v", st, err)
	}
}

// A bulk load that stopped after it began writing (here: cancelled) is
// reported as interrupted after a restart even though statistics may be
// among what it wrote; one closed before writing leaves a usable store.
// A finished one leaves nothing in Badger's level 0 (statistics and
// progress go through the stream writer too), so a Load after it writes
// its tables with the stream writer rather than with write batches.
func TestBulkMarker(t *testing.T) {
	ctx := context.Background()
	es := []Entry{}
	for i := range 50 {
		e, err := Encode(&[]credit.Record{rec(t, i%5, "a", fmt.Sprint(i), credit.Tax, "2020-01-01", `{}`)}[0])
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	dir := t.TempDir()
	reopen := func(db *DB) *DB {
		t.Helper()
		if db != nil {
			db.Close()
		}
		db, err := Open(ctx, Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := reopen(nil)
	b, err := db.NewBulk(BulkOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	db = reopen(db)
	if st, err := db.Stats(ctx); err != nil || st.Records != 0 {
		t.Fatalf("after an abandoned bulk load: %+v %v", st, err)
	}

	b, err = db.NewBulk(BulkOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Add(es); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Finish(cancelled, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled bulk load: %v", err)
	}
	db = reopen(db)
	if _, err := db.Stats(ctx); !errors.Is(err, ErrIncompleteBulk) {
		t.Fatalf("stats after an interrupted bulk load: %v, want ErrIncompleteBulk", err)
	}
	b, err = db.NewBulk(BulkOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Add(es); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Finish(ctx, []Progress{{Input: "x", Offset: 1, Done: true}}); err != nil {
		t.Fatal(err)
	}
	db = reopen(db)
	defer db.Close()
	if st, err := db.Stats(ctx); err != nil || st.Records != 50 || st.Subjects != 5 {
		t.Fatalf("stats after the bulk load: %+v %v", st, err)
	}
	if p, ok, err := db.LoadProgress(ctx, "x"); err != nil || !ok || p.Offset != 1 {
		t.Fatalf("progress %+v %v %v", p, ok, err)
	}
	for _, l := range db.Badger().Levels() {
		if l.Level == 0 && l.NumTables > 0 {
			t.Fatalf("level 0 holds %d tables after a bulk load", l.NumTables)
		}
	}
}

func TestCloseTwice(t *testing.T) {
	eachMode(t, func(t *testing.T, open func() *DB) {
		db := open()
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Stats(context.Background()); !errors.Is(err, ErrClosed) {
			t.Fatalf("stats after close: %v", err)
		}
	})
}

func TestDateKeyRoundTrip(t *testing.T) {
	for _, d := range []credit.Date{"1949-01-01", "2026-11-27", "9999-12-31"} {
		v, err := packDate(d)
		if err != nil {
			t.Fatal(err)
		}
		var b [4]byte
		b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		if got := unpackDate(b[:]); got != d {
			t.Fatalf("%s -> %s", d, got)
		}
	}
}

func tail(s string) string { return s[max(0, len(s)-600):] }

func TestPipelineMatchesWrite(t *testing.T) {
	recs := randomRecords(t, 4, 4000)
	for _, memtable := range []int64{0, 1 << 20} { // the small memtable forces ErrTxnTooBig fallbacks
		t.Run(fmt.Sprintf("memtable=%d", memtable), func(t *testing.T) {
			eachMode(t, func(t *testing.T, open func() *DB) {
				ctx := context.Background()
				ref, err := Open(ctx, Options{InMemory: true})
				if err != nil {
					t.Fatal(err)
				}
				defer ref.Close()
				db := open()
				if memtable > 0 {
					db.Close()
					db, err = Open(ctx, Options{InMemory: true, MemTableSize: memtable})
					if err != nil {
						t.Fatal(err)
					}
					defer db.Close()
				}
				put(t, db, recs[:100]...) // stats that exist before the pipeline
				put(t, ref, recs[:100]...)
				pl, err := db.NewPipeline(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var got, want WriteResult
				rest := recs[100:]
				for i, n := 0, 1; i < len(rest); i, n = i+n, n*2%997+1 {
					batch := rest[i:min(i+n, len(rest))]
					es := make([]Entry, len(batch))
					for j := range batch {
						if es[j], err = Encode(&batch[j]); err != nil {
							t.Fatal(err)
						}
					}
					r, err := pl.Write(ctx, es, &Progress{Input: "in", Offset: int64(i + n)})
					if err != nil {
						t.Fatal(err)
					}
					got.Add(r)
					want.Add(put(t, ref, batch...))
				}
				if err := pl.Close(); err != nil {
					t.Fatal(err)
				}
				if err := pl.Close(); err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Fatalf("pipeline %+v, Put %+v", got, want)
				}
				if d1, d2 := dump(t, db), dump(t, ref); d1 != d2 {
					t.Fatalf("pipeline store differs:\n%s\n----\n%s", tail(d1), tail(d2))
				}
				if st, want := dump(t, db), modelStats(t, db); !strings.Contains(st, fmt.Sprintf("stats %d %d", want.Records, want.Subjects)) {
					t.Fatalf("stats disagree with a scan: %+v", want)
				}
				p, ok, err := db.LoadProgress(ctx, "in")
				if err != nil || !ok || p.Offset < int64(len(rest)) {
					t.Fatalf("progress %+v %v %v", p, ok, err)
				}
				// Ordinary writes see the pipeline's stats.
				put(t, db, recs[:10]...)
				put(t, ref, recs[:10]...)
				if dump(t, db) != dump(t, ref) {
					t.Fatal("differs after a write following the pipeline")
				}
			})
		})
	}
}

// countingStringer counts how often it is formatted.
type countingStringer struct{ n *int }

func (c countingStringer) String() string { *c.n++; return "formatted" }

// Badger's debug messages reach slog only when debug is on, and are not
// even formatted otherwise: Badger sends one on every write batch.
func TestBadgerLoggerFormatsOnlyAtDebug(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		var buf bytes.Buffer
		n := 0
		l := badgerLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}))}
		l.Debugf("write batch %v", countingStringer{&n})
		l.Infof("memtable %v", countingStringer{&n})
		wantN, logged := 0, strings.Contains(buf.String(), "write batch formatted") && strings.Contains(buf.String(), "memtable formatted")
		if level == slog.LevelDebug {
			wantN = 2
		}
		if n != wantN || logged != (level == slog.LevelDebug) {
			t.Errorf("logger at %s: formatted %d times (want %d), messages logged %v:\n%s", level, n, wantN, logged, buf.String())
		}
	}
}
