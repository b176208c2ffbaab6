package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4/options"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
)

// TestReportsDoNotShareMemory: reports reuse pooled buffers and copy
// attributes into chunks; a report returned earlier must stay intact
// while other reports, large and small, run concurrently after it, at any
// read concurrency.
func TestReportsDoNotShareMemory(t *testing.T) {
	for _, conc := range []int{-1, 1, 3} {
		t.Run(fmt.Sprintf("ReadConcurrency=%d", conc), func(t *testing.T) {
			ctx := context.Background()
			db, err := Open(ctx, Options{InMemory: true, ReadConcurrency: conc, Logger: testkit.LoggerAt(t, slog.LevelWarn)})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			const subjects = 6
			cats := credit.AllCategories()
			for s := range subjects {
				var recs []credit.Record
				// Subject s has 20*s+1 records; its attributes grow with s so
				// that later subjects grow the pooled buffers, and one record's
				// attributes are 16 KiB on their own.
				for i := range 20*s + 1 {
					pad := strings.Repeat(string(rune('a'+s)), 50*s+i)
					if s == subjects-1 && i == 3 {
						pad = strings.Repeat("z", 16<<10-100)
					}
					recs = append(recs, rec(t, s, fmt.Sprintf("dept%d", i%4), fmt.Sprintf("r%d-%d", s, i), cats[i%len(cats)],
						fmt.Sprintf("20%02d-%02d-%02d", 10+i%13, 1+i%12, 1+i%28), fmt.Sprintf(`{"n":%d,"pad":%q}`, i, pad)))
				}
				put(t, db, recs...)
			}
			want := make([][]string, subjects)
			for s := range subjects {
				got, err := db.Report(ctx, testkit.USCC(t, "440300", s), Filter{})
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 20*s+1 {
					t.Fatalf("subject %d: %d records, want %d", s, len(got), 20*s+1)
				}
				want[s] = reportKeys(got)
			}
			kept, err := db.Report(ctx, testkit.USCC(t, "440300", subjects-1), Filter{})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for k := range 50 {
						s := (g + k) % subjects
						got, err := db.Report(ctx, testkit.USCC(t, "440300", s), Filter{})
						if err != nil {
							t.Error(err)
							return
						}
						if !slices.Equal(reportKeys(got), want[s]) {
							t.Errorf("subject %d: a concurrent report differs from the first", s)
							return
						}
					}
				})
			}
			wg.Wait()
			if !slices.Equal(reportKeys(kept), want[subjects-1]) {
				t.Fatal("a report changed after later reports ran")
			}
			// A caller appending to one record's attributes leaves the
			// next record's alone.
			kept[0].Attrs = append(kept[0].Attrs, "garbage"...)
			if !slices.Equal(reportKeys(kept[1:]), want[subjects-1][1:]) {
				t.Fatal("appending to a record's attributes changed the next record")
			}
		})
	}
}

// reportKeys keeps the order: it is part of what a report promises.
func reportKeys(rs []credit.Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = keyOf(r)
	}
	return out
}

// TestReportWaitsForItsTurn: with every read slot taken, a report waits,
// and gives up with its context.
func TestReportWaitsForItsTurn(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, Options{InMemory: true, ReadConcurrency: 1, Logger: testkit.LoggerAt(t, slog.LevelWarn)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	put(t, db, rec(t, 1, "tax", "x", credit.Tax, "2020-01-01", `{}`))

	db.readSlots <- struct{}{} // another report holds the only slot
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := db.Report(cctx, testkit.USCC(t, "440300", 1), Filter{})
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("report while every slot is taken, context cancelled: %v, want context.Canceled", err)
	}

	go func() {
		recs, err := db.Report(ctx, testkit.USCC(t, "440300", 1), Filter{})
		if err == nil && len(recs) != 1 {
			err = fmt.Errorf("%d records, want 1", len(recs))
		}
		done <- err
	}()
	<-db.readSlots // the other report finishes
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestNoBlockCache: a negative BlockCacheSize means no block cache; Badger
// allows that only for uncompressed tables, so Open refuses it otherwise
// instead of reaching Badger's panic, and reports work without one.
func TestNoBlockCache(t *testing.T) {
	ctx := context.Background()
	if db, err := Open(ctx, Options{Dir: t.TempDir(), BlockCacheSize: -1, Logger: testkit.LoggerAt(t, slog.LevelWarn)}); err == nil {
		db.Close()
		t.Fatal("Open with no block cache and compressed tables: no error")
	}
	dir := t.TempDir()
	db, err := Open(ctx, Options{Dir: dir, BlockCacheSize: -1, NoCompression: true, Logger: testkit.LoggerAt(t, slog.LevelWarn)})
	if err != nil {
		t.Fatal(err)
	}
	put(t, db, rec(t, 1, "tax", "x", credit.Tax, "2020-01-01", `{"a":1}`), rec(t, 1, "szmr", "y", credit.Penalty, "2021-01-01", `{"b":2}`))
	// Closed and opened again with the default options, the records are
	// read from a table, and the store stays uncompressed and uncached
	// because all its tables are.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(ctx, Options{Dir: dir, Logger: testkit.LoggerAt(t, slog.LevelWarn)}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if bo := db.Badger().Opts(); bo.BlockCacheSize != 0 || bo.Compression != options.None {
		t.Fatalf("uncompressed store opened with defaults: block cache %d, compression %v; want none and none", bo.BlockCacheSize, bo.Compression)
	}
	if len(db.Badger().Tables()) == 0 {
		t.Fatal("no table was written")
	}
	got, err := db.Report(ctx, testkit.USCC(t, "440300", 1), Filter{})
	if err != nil || len(got) != 2 {
		t.Fatalf("report without a block cache: %d records, %v", len(got), err)
	}
}

// TestCompressedStoreKeepsItsCache: a store of compressed tables opened
// with the default options keeps the default block cache and compression.
func TestCompressedStoreKeepsItsCache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := Open(ctx, Options{Dir: dir, Logger: testkit.LoggerAt(t, slog.LevelWarn)})
	if err != nil {
		t.Fatal(err)
	}
	put(t, db, rec(t, 1, "tax", "x", credit.Tax, "2020-01-01", `{"a":1}`))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(ctx, Options{Dir: dir, Logger: testkit.LoggerAt(t, slog.LevelWarn)}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if len(db.Badger().Tables()) == 0 {
		t.Fatal("no table was written")
	}
	if bo := db.Badger().Opts(); bo.BlockCacheSize != DefaultBlockCacheSize || bo.Compression != options.Snappy {
		t.Fatalf("compressed store opened with defaults: block cache %d, compression %v", bo.BlockCacheSize, bo.Compression)
	}
}
