package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
)

func benchRecord(b *testing.B, subj, i int) credit.Record {
	cats := credit.AllCategories()
	return rec(b, subj, fmt.Sprintf("dept%02d", i%37), fmt.Sprintf("r-%d-%d", subj, i), cats[i%len(cats)],
		fmt.Sprintf("20%02d-%02d-%02d", 10+i%15, 1+i%12, 1+i%28),
		fmt.Sprintf(`{"amount":%d,"authority":"Shenzhen Municipal Administration of Market Regulation","case_no":"SZ%010d","description":"record of routine inspection and follow-up for the enterprise","status":"closed"}`, i, i))
}

// BenchmarkEncode: keys and value of one record.
func BenchmarkEncode(b *testing.B) {
	r := benchRecord(b, 1, 1)
	var e Entry
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if err := EncodeInto(&e, &r, buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReport reads all ~183 records of one random enterprise from a
// store of 500 enterprises, warm, on disk, one goroutine and in parallel.
func BenchmarkReport(b *testing.B) {
	ctx := context.Background()
	db, err := Open(ctx, Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const subjects, per = 500, 183
	for s := 0; s < subjects; s++ {
		recs := make([]credit.Record, per)
		for i := range recs {
			recs[i] = benchRecord(b, s, i)
		}
		if _, err := db.Put(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	us := make([]credit.USCC, subjects)
	for i := range us {
		us[i] = testkit.USCC(b, "440300", i)
	}
	var f Filter
	run := func(pb interface{ Next() bool }, rng *rand.Rand) {
		for pb.Next() {
			recs, err := db.Report(ctx, us[rng.IntN(subjects)], f)
			if err != nil || len(recs) != per {
				b.Fatalf("%d records, %v", len(recs), err)
			}
		}
	}
	b.Run("1reader", func(b *testing.B) {
		b.ReportAllocs()
		run(loopNext{b}, rand.New(rand.NewPCG(1, 1)))
	})
	// As a bank's query asks: every category named (one scan), and all
	// but one (a scan that skips it).
	b.Run("categories", func(b *testing.B) {
		f = Filter{Categories: credit.AllCategories()}
		defer func() { f = Filter{} }()
		b.ReportAllocs()
		run(loopNext{b}, rand.New(rand.NewPCG(1, 1)))
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(4) // 8 readers on 2 cores
		b.RunParallel(func(pb *testing.PB) { run(pb, rand.New(rand.NewPCG(rand.Uint64(), 1))) })
	})
}

type loopNext struct{ b *testing.B }

func (l loopNext) Next() bool { return l.b.Loop() }

// BenchmarkPut writes batches of 4000 new records in one transaction each.
func BenchmarkPut(b *testing.B) {
	ctx := context.Background()
	db, err := Open(ctx, Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const batch = 4000
	es := make([]Entry, batch)
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		for i := range es {
			r := benchRecord(b, n/183, n)
			n++
			if err := EncodeInto(&es[i], &r, nil); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := db.Write(ctx, es, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkReportDir measures report latency on an existing store, e.g.
// one made by ccnode import or ccbench import:
//
//	CCNODE_BENCH_DIR=/path go test -run XXX -bench ReportDir -benchtime 20000x ./store
//
// Warm: every subject of the store is read once first. It reports p50, p99
// and p99.9 per report of a random subject, reports/s, and the process's
// CPU time per report (the figure that survives a busy machine), for one
// reader and for 8 concurrent readers.
func BenchmarkReportDir(b *testing.B) {
	dir := os.Getenv("CCNODE_BENCH_DIR")
	if dir == "" {
		b.Skip("set CCNODE_BENCH_DIR to a data directory made by ccnode import")
	}
	ctx := context.Background()
	o := Options{Dir: dir}
	// CCNODE_BENCH_BLOCK_CACHE_MB sizes the block cache. Negative: none,
	// which Open allows only with NoCompression; that option only says how
	// tables this process writes are compressed (none here), each table
	// read keeps its own.
	if mb := os.Getenv("CCNODE_BENCH_BLOCK_CACHE_MB"); mb != "" {
		n, err := strconv.ParseInt(mb, 10, 64)
		if err != nil {
			b.Fatalf("CCNODE_BENCH_BLOCK_CACHE_MB: %v", err)
		}
		o.BlockCacheSize, o.NoCompression = n<<20, n < 0
	}
	db, err := Open(ctx, o)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var subjects []credit.USCC
	err = db.Badger().View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixSubject}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			subjects = append(subjects, credit.USCC(it.Item().KeyCopy(nil)[1:]))
		}
		return nil
	})
	if err != nil || len(subjects) == 0 {
		b.Fatalf("%d subjects: %v", len(subjects), err)
	}
	for _, s := range subjects {
		if _, err := db.Report(ctx, s, Filter{}); err != nil {
			b.Fatal(err)
		}
	}
	// What keeping every block decompressed in the block cache would take.
	var disk, raw uint64
	levels := map[int]int{}
	for _, t := range db.Badger().Tables() {
		disk += uint64(t.OnDiskSize)
		raw += uint64(t.UncompressedSize)
		levels[t.Level]++
	}
	b.Logf("%d subjects; tables per level %v; %d MiB on disk, %d MiB decompressed; block cache %d MiB",
		len(subjects), levels, disk>>20, raw>>20, db.Badger().Opts().BlockCacheSize>>20)
	for _, readers := range []int{1, 8} {
		b.Run(fmt.Sprintf("readers=%d", readers), func(b *testing.B) {
			per := b.N/readers + 1
			lat := make([][]time.Duration, readers)
			picks := make([][]int, readers)
			for r := range readers {
				lat[r] = make([]time.Duration, 0, per)
				rng := rand.New(rand.NewPCG(uint64(r), 3))
				for range per {
					picks[r] = append(picks[r], rng.IntN(len(subjects)))
				}
			}
			sizes := make([][]int, readers)
			for r := range sizes {
				sizes[r] = make([]int, 0, per)
			}
			hits0, misses0 := blockCacheCounts(db)
			b.ResetTimer()
			cpu0 := processCPU()
			var wg sync.WaitGroup
			for r := range readers {
				wg.Go(func() {
					mine, n := lat[r], sizes[r]
					for _, i := range picks[r] {
						t0 := time.Now()
						recs, err := db.Report(ctx, subjects[i], Filter{})
						mine = append(mine, time.Since(t0))
						if err != nil {
							b.Error(err)
							return
						}
						n = append(n, len(recs))
					}
					lat[r], sizes[r] = mine, n
				})
			}
			wg.Wait()
			b.StopTimer()
			cpu := processCPU() - cpu0
			hits, misses := blockCacheCounts(db)
			all, ns := slices.Concat(lat...), slices.Concat(sizes...)
			// Latency per record tells a report slow because its enterprise
			// is large (the p99 enterprise has ten times the median's records)
			// from one slow for another reason (GC, a preemption, a cold block).
			perRecord := make([]time.Duration, len(all))
			var records int
			for i, d := range all {
				perRecord[i] = d / time.Duration(max(1, ns[i]))
				records += ns[i]
			}
			slices.Sort(perRecord)
			slices.Sort(all)
			b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(all[len(all)*999/1000].Microseconds()), "p99.9-µs")
			b.ReportMetric(float64(cpu.Microseconds())/float64(len(all)), "CPU-µs/report")
			b.ReportMetric(float64(records)/float64(len(all)), "records/report")
			b.ReportMetric(float64(perRecord[len(all)/2].Nanoseconds()), "p50-ns/record")
			b.ReportMetric(float64(perRecord[len(all)*99/100].Nanoseconds()), "p99-ns/record")
			if n := (hits - hits0) + (misses - misses0); n > 0 {
				b.ReportMetric(100*float64(hits-hits0)/float64(n), "block-hit-%")
			}
			b.ReportMetric(float64(len(all))/b.Elapsed().Seconds(), "reports/s")
		})
	}
}

// BenchmarkImportPaths writes the same 100,000 records (547 subjects, in
// input order by subject, records unsorted within a subject, as generated
// feeds are) into a store that already holds 10,000 (loaded, closed and
// reopened, as a previous ccnode import leaves it), through a Load and
// through the transactional Pipeline, side by side:
//
//	go test -run XXX -bench ImportPaths -count 5 ./store
func BenchmarkImportPaths(b *testing.B) {
	ctx := context.Background()
	const base, n = 10_000, 100_000
	encode := func(from, to int) []Entry {
		es := make([]Entry, 0, to-from)
		for i := from; i < to; i++ {
			r := benchRecord(b, i/183, i*7919%n)
			var e Entry
			if err := EncodeInto(&e, &r, nil); err != nil {
				b.Fatal(err)
			}
			es = append(es, e)
		}
		return es
	}
	first, rest := encode(0, base), encode(base, base+n)
	for _, path := range []string{"load", "pipeline"} {
		b.Run(path, func(b *testing.B) {
			// CPU time of the whole process, Badger's goroutines included:
			// on a shared machine it says more than the wall clock.
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				// The store as a previous import left it: written, closed.
				dir := b.TempDir()
				db, err := Open(ctx, Options{Dir: dir})
				if err != nil {
					b.Fatal(err)
				}
				benchLoad(ctx, b, db, first)
				if err := db.Close(); err != nil {
					b.Fatal(err)
				}
				if db, err = Open(ctx, Options{Dir: dir}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				cpu0 := processCPU()
				switch path {
				case "load":
					benchLoad(ctx, b, db, rest)
				case "pipeline":
					p, err := db.NewPipeline(ctx)
					if err != nil {
						b.Fatal(err)
					}
					for i := 0; i < len(rest); i += 4000 {
						if _, err := p.Write(ctx, rest[i:min(i+4000, len(rest))], nil); err != nil {
							b.Fatal(err)
						}
					}
					if err := p.Close(); err != nil {
						b.Fatal(err)
					}
				}
				if err := db.Sync(); err != nil {
					b.Fatal(err)
				}
				cpu += processCPU() - cpu0
				b.StopTimer()
				db.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*n), "CPU-µs/record")
		})
	}
}

// blockCacheCounts are the block cache's hits and misses so far.
func blockCacheCounts(db *DB) (hits, misses uint64) {
	m := db.Badger().BlockCacheMetrics()
	if m == nil {
		return 0, 0
	}
	return m.Hits(), m.Misses()
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchLoad imports es into db as one Load.
func benchLoad(ctx context.Context, b *testing.B, db *DB, es []Entry) {
	b.Helper()
	l, err := db.NewLoad(BulkOptions{TempDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	if err := l.Add(es); err != nil {
		b.Fatal(err)
	}
	if _, err := l.Finish(ctx, nil); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReportGuard: reports from tables (the store written, closed
// and reopened, uncompressed as ccnode import leaves it), with the read
// guard that fails a report cut short by a bad block, and without it.
func BenchmarkReportGuard(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	db, err := Open(ctx, Options{Dir: dir, NoCompression: true})
	if err != nil {
		b.Fatal(err)
	}
	const subjects, per = 500, 183
	for s := 0; s < subjects; s++ {
		recs := make([]credit.Record, per)
		for i := range recs {
			recs[i] = benchRecord(b, s, i)
		}
		if _, err := db.Put(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	db.Close()
	if db, err = Open(ctx, Options{Dir: dir}); err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	us := make([]credit.USCC, subjects)
	for i := range us {
		us[i] = testkit.USCC(b, "440300", i)
	}
	guard := db.guard
	for _, c := range []struct {
		name  string
		guard *readGuard
	}{{"guard", guard}, {"noguard", nil}} {
		b.Run(c.name, func(b *testing.B) {
			db.guard = c.guard
			defer func() { db.guard = guard }()
			rng := rand.New(rand.NewPCG(1, 1))
			for b.Loop() {
				recs, err := db.Report(ctx, us[rng.IntN(subjects)], Filter{})
				if err != nil || len(recs) != per {
					b.Fatalf("%d records, %v", len(recs), err)
				}
			}
		})
	}
}
