package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
)

func encodeAll(t testing.TB, recs []credit.Record) []Entry {
	t.Helper()
	es := make([]Entry, len(recs))
	for i := range recs {
		e, err := Encode(&recs[i])
		if err != nil {
			t.Fatal(err)
		}
		es[i] = e
	}
	return es
}

// load runs one Load of recs, added in pieces.
func load(t testing.TB, db *DB, recs []credit.Record, opts BulkOptions, prog []Progress) (WriteResult, error) {
	t.Helper()
	l, err := db.NewLoad(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < len(recs); i += 333 {
		if err := l.Add(encodeAll(t, recs[i:min(i+333, len(recs))])); err != nil {
			t.Fatal(err)
		}
	}
	return l.Finish(context.Background(), prog)
}

// A Load gives the store, statistics and results that ordinary writes of
// the same records give, on an empty store and on one holding data, with
// duplicates, corrections in place and corrections that move a record to
// another category or date, one Load after another (each writes one level
// higher in Badger's tree), and ordinary writes after it.
func TestLoadMatchesOrdinaryWrites(t *testing.T) {
	ctx := context.Background()
	parts := [][]credit.Record{randomRecords(t, 11, 1500), randomRecords(t, 12, 3000), randomRecords(t, 13, 2000), randomRecords(t, 14, 700)}
	for _, chunk := range []int{0, 20 << 10} { // in memory; spilled to many runs
		t.Run(fmt.Sprintf("chunk=%d", chunk), func(t *testing.T) {
			eachMode(t, func(t *testing.T, open func() *DB) {
				ref, err := Open(ctx, Options{InMemory: true})
				if err != nil {
					t.Fatal(err)
				}
				defer ref.Close()
				db := open()
				for i, part := range parts {
					want := put(t, ref, part...)
					var got WriteResult
					if i == 2 {
						got = put(t, db, part...) // ordinary writes between loads
					} else {
						prog := []Progress{{Input: fmt.Sprint("in", i), Offset: int64(i), Done: true}}
						if got, err = load(t, db, part, BulkOptions{TempDir: t.TempDir(), ChunkBytes: chunk}, prog); err != nil {
							t.Fatalf("load %d: %v", i, err)
						}
						if p, ok, err := db.LoadProgress(ctx, prog[0].Input); err != nil || !ok || p != prog[0] {
							t.Fatalf("progress after load %d: %+v %v %v", i, p, ok, err)
						}
					}
					if got != want {
						t.Fatalf("part %d: result %+v, ordinary writes %+v", i, got, want)
					}
					if d1, d2 := dump(t, db), dump(t, ref); d1 != d2 {
						t.Fatalf("part %d: store differs from ordinary writes:\n%s\n----\n%s", i, tail(d1), tail(d2))
					}
					st, err := db.Stats(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if want := modelStats(t, db); fmt.Sprint(st) != fmt.Sprint(want) {
						t.Fatalf("part %d: stats %+v, recomputed %+v", i, st, want)
					}
				}
			})
		})
	}
}

var errSimulatedCrash = errors.New("simulated crash")

// A process killed while a Load's plan is being applied leaves any part of
// the plan written; the next Open applies the whole plan again, and the
// store ends as if nothing had happened.
func TestLoadKilledWhileApplying(t *testing.T) {
	ctx := context.Background()
	first, second := randomRecords(t, 21, 2000), randomRecords(t, 22, 3000)
	ref, err := Open(ctx, Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	put(t, ref, first...)
	put(t, ref, second...)
	want := dump(t, ref)

	for _, frac := range []float64{0, 0.3, 0.7, 1} {
		t.Run(fmt.Sprintf("applied=%.1f", frac), func(t *testing.T) {
			dir := t.TempDir()
			db, err := Open(ctx, Options{Dir: dir, Logger: testkit.LoggerAt(t, slog.LevelWarn)})
			if err != nil {
				t.Fatal(err)
			}
			put(t, db, first...)
			l, err := db.NewLoad(BulkOptions{TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Add(encodeAll(t, second)); err != nil {
				t.Fatal(err)
			}
			l.beforeApply = func(plan string) error {
				// Write a prefix of the plan, as a process killed part way
				// through applying it leaves.
				var n, total int
				readPlan(plan, func(_, _ byte, _, _ []byte) error { total++; return nil })
				wb := db.bdb.NewWriteBatch()
				err := readPlan(plan, func(_, flags byte, k, v []byte) error {
					if n++; float64(n) > frac*float64(total) {
						return errSimulatedCrash
					}
					if flags&planDelete != 0 {
						return wb.Delete(bytes.Clone(k))
					}
					return wb.Set(bytes.Clone(k), bytes.Clone(v))
				})
				if err != nil && !errors.Is(err, errSimulatedCrash) {
					return err
				}
				if err := wb.Flush(); err != nil {
					return err
				}
				return errSimulatedCrash
			}
			if _, err := l.Finish(ctx, nil); !errors.Is(err, errSimulatedCrash) {
				t.Fatalf("finish: %v", err)
			}
			l.Close()
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db, err = Open(ctx, Options{Dir: dir, Logger: testkit.LoggerAt(t, slog.LevelWarn)})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if got := dump(t, db); got != want {
				t.Fatalf("store after the interrupted load:\n%s\n----\nwant:\n%s", tail(got), tail(want))
			}
			st, err := db.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := modelStats(t, db); fmt.Sprint(st) != fmt.Sprint(want) {
				t.Fatalf("stats %+v, recomputed %+v", st, want)
			}
		})
	}
}

// A Load with nothing to write (every input already imported) leaves
// Badger's tree as it was: each written Load takes a level of it.
func TestEmptyLoadWritesNothing(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, Options{Dir: t.TempDir(), Logger: testkit.LoggerAt(t, slog.LevelWarn)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := load(t, db, randomRecords(t, 31, 500), BulkOptions{TempDir: t.TempDir()}, nil); err != nil {
		t.Fatal(err)
	}
	before := fmt.Sprint(db.bdb.Levels())
	res, err := load(t, db, nil, BulkOptions{TempDir: t.TempDir()}, nil)
	if err != nil || res != (WriteResult{}) {
		t.Fatalf("empty load: %+v %v", res, err)
	}
	if after := fmt.Sprint(db.bdb.Levels()); after != before {
		t.Fatalf("levels changed:\n%s\n%s", before, after)
	}
}

// Loads into a store opened without compactions, one process (Open) each,
// more Loads than Badger has levels, after a bulk load and with ordinary
// writes in between (which leave level 0 tables at Close): Open keeps the
// compactors whenever the tree needs them, and the store and statistics
// stay those of ordinary writes.
func TestLoadsWithoutCompactions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ref, err := Open(ctx, Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	var without, with int // opens without and with compactors
	open := func() *DB {
		t.Helper()
		db, err := Open(ctx, Options{Dir: dir, NoCompactions: true, Logger: testkit.LoggerAt(t, slog.LevelWarn)})
		if err != nil {
			t.Fatal(err)
		}
		if db.noCompactors {
			without++
		} else {
			with++
		}
		return db
	}
	db := open()
	first := randomRecords(t, 20, 800)
	put(t, ref, first...)
	b, err := db.NewBulk(BulkOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Add(encodeAll(t, first)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Finish(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		db.Close()
		db = open()
		part := randomRecords(t, uint64(21+i), 400)
		want := put(t, ref, part...)
		var got WriteResult
		if i == 4 {
			got = put(t, db, part...)
		} else if got, err = load(t, db, part, BulkOptions{TempDir: t.TempDir()}, nil); err != nil {
			t.Fatalf("load %d: %v", i, err)
		}
		if got != want {
			t.Fatalf("part %d: result %+v, ordinary writes %+v", i, got, want)
		}
	}
	db.Close()
	db = open()
	defer db.Close()
	if d1, d2 := dump(t, db), dump(t, ref); d1 != d2 {
		t.Fatalf("store differs from ordinary writes:\n%s\n----\n%s", tail(d1), tail(d2))
	}
	st, err := db.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := modelStats(t, db); fmt.Sprint(st) != fmt.Sprint(want) {
		t.Fatalf("stats %+v, recomputed %+v", st, want)
	}
	// The ordinary writes left level 0 tables, and the Loads climb a
	// level each: both make Open keep the compactors at least once.
	if without == 0 || with == 0 {
		t.Fatalf("opened %d times without compactors and %d with; want both", without, with)
	}
	t.Logf("opened %d times without compactors and %d with", without, with)
}
