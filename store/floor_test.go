package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/ristretto/v2/z"

	"github.com/prdcredit/ccnode/credit/synth"
)

// The floor benchmarks measure the two stages of an import after parsing,
// each alone, on generated records of the sizes ccnode gen writes (the
// data ccbench imports): how fast an import could be if parsing cost
// nothing.
//
//	go test -run XXX -bench Floor -benchtime 1x -count 3 ./store
//
// CCNODE_FLOOR_RECORDS sets the number of records (default 2,000,000; the
// data is generated and encoded once per process, outside the timings,
// and held outside the Go heap). The collector is set as in ccnode import
// (CCNODE_FLOOR_GC=default: Go's defaults). The first run in a process
// pays for touching fresh memory, as an import does; later runs reuse it.

var floorData struct {
	once     sync.Once
	batches  []*LoadBatch // records as the import's parsers hand them over
	batchMem *sortArena   // holds the batches' bytes
	records  int
	kvOnce   sync.Once
	kvs      [][]byte // the stream a bulk load writes, as handed to the StreamWriter
	kvMem    *sortArena
	written  int // records in kvs
}

func floorRecords(b *testing.B) int {
	n := 2_000_000
	if s := os.Getenv("CCNODE_FLOOR_RECORDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("CCNODE_FLOOR_RECORDS=%q: want a positive number", s)
		}
		n = v
	}
	return n
}

// floorBatches generates the records in the generator's order (enterprise
// by enterprise, as ccnode gen writes them) and encodes them into batches
// the way the import's parsers do.
func floorBatches(b *testing.B) ([]*LoadBatch, int) {
	floorData.once.Do(func() {
		want := floorRecords(b)
		g, err := synth.New(synth.Config{Region: "440300", Enterprises: want/int(synth.DefaultMeanRecords)*2 + 100, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		lb := &LoadBatch{}
		n := 0
		for i := 0; n < want; i++ {
			for _, r := range g.EnterpriseRecords(i) {
				if err := lb.Append(&r); err != nil {
					b.Fatal(err)
				}
				if n++; lb.Len() == 4096 {
					floorData.batches = append(floorData.batches, lb)
					lb = &LoadBatch{}
				}
			}
		}
		if lb.Len() > 0 {
			floorData.batches = append(floorData.batches, lb)
		}
		floorData.records = n
		// Out of the Go heap, as an import holds its input (in the page
		// cache and its parsers' recycled buffers): a heap of gigabytes
		// that ccnode does not have would change the collector's work and
		// what the timed code finds as fresh memory.
		floorData.batchMem = offHeap(b, floorData.batches)
	})
	if floorData.records == 0 {
		b.Fatal("floor data set not generated")
	}
	return floorData.batches, floorData.records
}

// kvCapture stands in for the StreamWriter: it keeps a copy of every
// buffer it is handed.
type kvCapture struct{ bufs [][]byte }

func (c *kvCapture) Write(buf *z.Buffer) error {
	c.bufs = append(c.bufs, bytes.Clone(buf.Bytes()))
	return nil
}

// floorKVs runs a bulk load's sort, merge and encoding once into a
// kvCapture: the exact stream (keys, values, versions, stream ids, buffer
// sizes) that Bulk.Finish hands to Badger.
func floorKVs(b *testing.B) ([][]byte, int) {
	batches, _ := floorBatches(b)
	floorData.kvOnce.Do(func() {
		bl := &Bulk{opts: BulkOptions{TempDir: b.TempDir(), ChunkBytes: DefaultChunkBytes}}
		defer bl.Close()
		for _, lb := range batches {
			if err := bl.AddBatch(lb); err != nil {
				b.Fatal(err)
			}
		}
		c := &kvCapture{}
		out := newStreamOut(&DB{inMem: true}, c) // inMem: no table pages to release
		d := statDelta{srcs: map[string]int64{}}
		var res WriteResult
		err := bl.merge(context.Background(), &res, func(group, _ [][]byte) error {
			res.Inserted += int64(len(group))
			return out.subject(group, &d)
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := out.close(); err != nil {
			b.Fatal(err)
		}
		floorData.kvs, floorData.written = c.bufs, int(res.Inserted)
		floorData.kvMem = offHeapBytes(b, floorData.kvs)
	})
	if floorData.written == 0 {
		b.Fatal("floor stream not encoded")
	}
	return floorData.kvs, floorData.written
}

// BenchmarkFloorStreamWriter: Badger's StreamWriter alone, fed the
// pre-sorted, pre-encoded key-values of a bulk load, into an empty store on
// disk, until the store is synced and closed; the table pages are released
// every releaseEvery bytes as Bulk.Finish does. With snappy (the default)
// and without compression.
func BenchmarkFloorStreamWriter(b *testing.B) {
	kvs, n := floorKVs(b)
	asImport(b)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		none bool
	}{{"snappy", false}, {"none", true}} {
		b.Run(c.name, func(b *testing.B) {
			var cpu time.Duration
			var disk int64
			for b.Loop() {
				b.StopTimer()
				dir := b.TempDir()
				db, err := Open(ctx, Options{Dir: dir, NoCompression: c.none})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				cpu0 := processCPU()
				sw := db.bdb.NewStreamWriter()
				if err := sw.Prepare(); err != nil {
					b.Fatal(err)
				}
				flushed := 0
				for _, kv := range kvs {
					if err := sw.Write(z.NewBufferSlice(kv)); err != nil {
						b.Fatal(err)
					}
					if flushed += len(kv); flushed >= releaseEvery {
						flushed = 0
						if err := db.dropTablePages(); err != nil {
							b.Fatal(err)
						}
					}
				}
				if err := sw.Flush(); err != nil {
					b.Fatal(err)
				}
				if err := db.Sync(); err != nil {
					b.Fatal(err)
				}
				if err := db.Close(); err != nil {
					b.Fatal(err)
				}
				cpu += processCPU() - cpu0
				b.StopTimer()
				disk = tableBytes(b, dir)
				b.StartTimer()
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*n), "CPU-µs/record")
			b.ReportMetric(float64(disk)/float64(n), "table-B/record")
		})
	}
}

// BenchmarkFloorSortMerge: the copy into the sort buffer, the sort, the
// spilled runs and the merge of a bulk load or Load, alone (the merge's
// output is only counted). chunk=256MiB is the import's default sort
// buffer (the data spills into sorted runs); chunk=1GiB holds it all.
func BenchmarkFloorSortMerge(b *testing.B) {
	batches, n := floorBatches(b)
	asImport(b)
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		chunk int
	}{{"chunk=256MiB", DefaultChunkBytes}, {"chunk=1GiB", 1 << 30}} {
		b.Run(c.name, func(b *testing.B) {
			var cpu time.Duration
			runs := 0
			for b.Loop() {
				cpu0 := processCPU()
				bl := &Bulk{opts: BulkOptions{TempDir: b.TempDir(), ChunkBytes: c.chunk}}
				for _, lb := range batches {
					if err := bl.AddBatch(lb); err != nil {
						b.Fatal(err)
					}
				}
				runs = len(bl.runs)
				var res WriteResult
				groups := 0
				err := bl.merge(ctx, &res, func(group, _ [][]byte) error {
					groups++
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				if err := bl.Close(); err != nil {
					b.Fatal(err)
				}
				cpu += processCPU() - cpu0
				if groups == 0 {
					b.Fatal("no subjects merged")
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*n), "CPU-µs/record")
			b.ReportMetric(float64(runs), "runs")
		})
	}
}

// offHeap moves the batches' bytes into one anonymous mapping.
func offHeap(b *testing.B, batches []*LoadBatch) *sortArena {
	bufs := make([][]byte, len(batches))
	for i, lb := range batches {
		bufs[i] = lb.buf
	}
	a := offHeapBytes(b, bufs)
	for i, lb := range batches {
		lb.buf = bufs[i]
	}
	return a
}

// offHeapBytes moves every slice of bufs into one anonymous mapping.
func offHeapBytes(b *testing.B, bufs [][]byte) *sortArena {
	total := 0
	for _, x := range bufs {
		total += len(x)
	}
	a, err := newSortArena(total)
	if err != nil {
		b.Fatal(err)
	}
	for i, x := range bufs {
		dst := a.alloc(len(x))
		copy(dst, x)
		bufs[i] = dst
	}
	runtime.GC()
	return a
}

// asImport sets the collector as ccnode import does (cmd/ccnode/import.go),
// unless CCNODE_FLOOR_GC=default asks for Go's defaults.
func asImport(b *testing.B) {
	if os.Getenv("CCNODE_FLOOR_GC") == "default" {
		return
	}
	gc := debug.SetGCPercent(400)
	lim := debug.SetMemoryLimit(1280 << 20)
	b.Cleanup(func() { debug.SetGCPercent(gc); debug.SetMemoryLimit(lim) })
}

// tableBytes is the size of the store's table files.
func tableBytes(b *testing.B, dir string) int64 {
	ms, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		b.Fatal(err)
	}
	var sum int64
	for _, m := range ms {
		fi, err := os.Stat(m)
		if err != nil {
			b.Fatal(err)
		}
		sum += fi.Size()
	}
	return sum
}
