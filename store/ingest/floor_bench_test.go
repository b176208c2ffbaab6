package ingest

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"syscall"
	"testing"
	"time"
)

// floorFile is a real import feed for BenchmarkFloor, named by the
// environment variable env, which skips without one. ccbench's 1M data set
// (--dir /tmp/ccbench-1m) leaves both formats at the default paths.
func floorFile(b *testing.B, env, ext string) []byte {
	name := os.Getenv(env)
	if name == "" {
		name = "/tmp/ccbench-1m/data-440300-5464-1-rest." + ext
	}
	data, err := os.ReadFile(name)
	if err != nil {
		b.Skipf("no feed to measure (set %s): %v", env, err)
	}
	return data
}

// BenchmarkFloor measures on one goroutine what the import's front half
// costs per record of a real feed: a bare line split (the lower bound of
// any reader), the reader (lines copied into chunks), and the parsers
// (parse, validate, encode into the sort layout). One op is the whole
// feed; ns/record and MB/s are per core.
func BenchmarkFloor(b *testing.B) {
	data := floorFile(b, "CCNODE_FLOOR_JSONL", "jsonl")
	lines := bytes.Count(data, []byte{'\n'})
	im := &Importer{opts: Options{
		Now:             func() time.Time { return testNow },
		FutureTolerance: DefaultFutureTolerance,
		MaxLineBytes:    DefaultMaxLineBytes,
		BatchLines:      DefaultBatchLines,
	}}
	newInput := func() *input {
		return &input{name: "floor.jsonl", format: FormatJSONL, br: bufio.NewReaderSize(bytes.NewReader(data), im.bufSize())}
	}
	// ns/record is wall time; cpu-ns/record is the process's user and
	// system time (collector included), which a busy machine inflates
	// less.
	var cpu0 time.Duration
	cpuTime := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := func(b *testing.B) {
		b.ResetTimer()
		cpu0 = cpuTime()
	}
	report := func(b *testing.B) {
		n := float64(b.N * lines)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/record")
		b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/n, "cpu-ns/record")
	}
	b.Run("split", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		n := 0
		start(b)
		for b.Loop() {
			for rest := data; len(rest) > 0; n++ {
				i := bytes.IndexByte(rest, '\n')
				if i < 0 {
					break
				}
				rest = rest[i+1:]
			}
		}
		if n != b.N*lines {
			b.Fatalf("%d lines, want %d", n, b.N*lines)
		}
		report(b)
	})
	b.Run("read", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		start(b)
		for b.Loop() {
			ch := make(chan *chunk, 4)
			done := make(chan int)
			rc := newRecycler(1)
			go func() {
				n := 0
				for c := range ch {
					n += len(c.ends)
					rc.putChunk(c)
				}
				done <- n
			}()
			err := im.readChunks(context.Background(), newInput(), ch, rc)
			close(ch)
			if n := <-done; err != nil || n != lines {
				b.Fatalf("%d lines, %v", n, err)
			}
		}
		report(b)
	})
	// parse measures the parsers over in's lines, which take data bytes.
	parse := func(b *testing.B, in *input, data []byte, lines int) {
		ch := make(chan *chunk, lines/DefaultBatchLines+1)
		if err := im.readChunks(context.Background(), in, ch, newRecycler(1)); err != nil {
			b.Fatal(err)
		}
		close(ch)
		var chunks []*chunk
		for c := range ch {
			chunks = append(chunks, c)
		}
		var scratch [][]byte
		var csv csvScratch
		rc := newRecycler(1)
		b.SetBytes(int64(len(data)))
		start(b)
		for b.Loop() {
			n := 0
			for _, c := range chunks {
				p := im.parseChunk(c, in, &scratch, &csv, true, rc)
				if len(p.rejects) > 0 {
					b.Fatalf("line %d rejected: %s", p.rejects[0].Line, p.rejects[0].Reason)
				}
				n += p.batch.Len()
				rc.putParsed(p)
			}
			if n != lines {
				b.Fatalf("%d records, want %d", n, lines)
			}
		}
		n := float64(b.N * lines)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/record")
		b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/n, "cpu-ns/record")
	}
	b.Run("parse", func(b *testing.B) { parse(b, newInput(), data, lines) })
	b.Run("parse-csv", func(b *testing.B) {
		// The same records as CSV, when ccbench left them next to the
		// feed: the header row is read as an import reads it.
		csv := floorFile(b, "CCNODE_FLOOR_CSV", "csv")
		nl := bytes.IndexByte(csv, '\n')
		h, err := ParseCSVHeader(csv[:max(nl, 0)])
		if err != nil {
			b.Fatal(err)
		}
		rows := csv[nl+1:]
		in := &input{name: "floor.csv", format: FormatCSV, header: h, br: bufio.NewReaderSize(bytes.NewReader(rows), im.bufSize())}
		parse(b, in, rows, bytes.Count(rows, []byte{'\n'}))
	})
}
