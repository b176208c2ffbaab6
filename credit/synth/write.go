package synth

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// Format is an output format of Write, the two that ccnode import reads.
type Format int

const (
	JSONL Format = iota // one JSON object per line
	CSV                 // header row, then one record per line; attrs a quoted JSON column
)

// ParseFormat accepts "jsonl" and "csv".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "jsonl", "":
		return JSONL, nil
	case "csv":
		return CSV, nil
	}
	return 0, fmt.Errorf("synth: unknown format %q (want jsonl or csv)", s)
}

func (f Format) String() string {
	if f == CSV {
		return "csv"
	}
	return "jsonl"
}

// CSVHeader is the first line of CSV output.
const CSVHeader = "uscc,source,source_id,category,date,attrs\n"

// AppendEnterprise appends every record of enterprise i in format f and
// returns the extended buffer and the number of records.
func (g *Generator) AppendEnterprise(b []byte, i int, f Format) ([]byte, int) {
	return g.appendEnterprise(b, newStream(), &scratch{}, i, f)
}

func (g *Generator) appendEnterprise(b []byte, s *stream, sc *scratch, i int, f Format) ([]byte, int) {
	e := g.enterprise(s, i)
	for j := range e.n {
		rc := g.record(s.r, &e, j, sc)
		if f == CSV {
			b = append(b, e.uscc...)
			b = append(b, ',')
			b = append(b, rc.source...)
			b = append(b, ',')
			b = append(b, rc.sid...)
			b = append(b, ',')
			b = append(b, rc.cat...)
			b = append(b, ',')
			b = append(b, rc.date...)
			b = append(b, ',', '"')
			for _, c := range rc.attrs {
				if c == '"' {
					b = append(b, '"')
				}
				b = append(b, c)
			}
			b = append(b, '"', '\n')
			continue
		}
		b = append(b, `{"uscc":"`...)
		b = append(b, e.uscc...)
		b = append(b, `","source":"`...)
		b = append(b, rc.source...)
		b = append(b, `","source_id":"`...)
		b = append(b, rc.sid...)
		b = append(b, `","category":"`...)
		b = append(b, rc.cat...)
		b = append(b, `","date":"`...)
		b = append(b, rc.date...)
		b = append(b, `","attrs":`...)
		b = append(b, rc.attrs...)
		b = append(b, '}', '\n')
	}
	return b, e.n
}

// Stats counts what Write wrote.
type Stats struct {
	Enterprises int
	Records     int64
	Bytes       int64
}

// chunkEnterprises is how many enterprises one worker encodes at a time:
// about 3.5 MB of output on average (buffers start at 8 MB so that most never
// grow), large enough to keep the ordering overhead small.
const chunkEnterprises = 64

type chunk struct {
	buf     []byte
	records int
}

// Write writes every record in format f to w, enterprise by enterprise, with
// workers goroutines encoding chunks in parallel (0 means GOMAXPROCS). The
// bytes are the same for any number of workers. It stops early when ctx ends.
func (g *Generator) Write(ctx context.Context, w io.Writer, f Format, workers int) (Stats, error) {
	return g.WriteRange(ctx, w, f, workers, 0, g.cfg.Enterprises)
}

// WriteRange is Write for enterprises from (inclusive) to to (exclusive):
// benchmarks split one data set into a first load and the rest. CSV output
// starts with its header row.
func (g *Generator) WriteRange(ctx context.Context, w io.Writer, f Format, workers, from, to int) (Stats, error) {
	if from < 0 || to > g.cfg.Enterprises || from > to {
		return Stats{}, fmt.Errorf("synth: range [%d, %d) outside [0, %d)", from, to, g.cfg.Enterprises)
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var st Stats
	if f == CSV {
		n, err := io.WriteString(w, CSVHeader)
		st.Bytes += int64(n)
		if err != nil {
			return st, fmt.Errorf("synth: write: %w", err)
		}
	}
	nchunks := (to - from + chunkEnterprises - 1) / chunkEnterprises
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	pool := sync.Pool{New: func() any { return &chunk{buf: make([]byte, 0, 8<<20)} }}
	type job struct {
		index int
		out   chan *chunk
	}
	jobs := make(chan job)
	order := make(chan chan *chunk, 2*workers) // bounds the chunks in flight
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, sc := newStream(), &scratch{}
			for jb := range jobs {
				c := pool.Get().(*chunk)
				c.buf, c.records = c.buf[:0], 0
				end := min(from+(jb.index+1)*chunkEnterprises, to)
				for i := from + jb.index*chunkEnterprises; i < end; i++ {
					var n int
					c.buf, n = g.appendEnterprise(c.buf, s, sc, i, f)
					c.records += n
				}
				jb.out <- c
			}
		}()
	}
	go func() {
		defer close(order)
		defer close(jobs)
		for k := range nchunks {
			out := make(chan *chunk, 1)
			select {
			case order <- out:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- job{k, out}:
			case <-ctx.Done():
				return
			}
		}
	}()
	var err error
	for out := range order {
		var c *chunk
		select {
		case c = <-out:
		case <-ctx.Done():
		}
		if c == nil {
			break
		}
		if err == nil {
			var n int
			n, err = w.Write(c.buf)
			st.Bytes += int64(n)
			st.Records += int64(c.records)
			if err != nil {
				err = fmt.Errorf("synth: write: %w", err)
				cancel()
			}
		}
		pool.Put(c)
	}
	cancel()
	// Drain so that no worker stays blocked on a chunk nobody reads.
	for range order {
	}
	wg.Wait()
	if err == nil && parent.Err() != nil {
		err = fmt.Errorf("synth: %w", parent.Err())
	}
	if err == nil {
		st.Enterprises = to - from
	}
	return st, err
}
