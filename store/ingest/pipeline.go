package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/store"
)

// Defaults of Options.
const (
	DefaultMaxLineBytes    = 64 << 10
	DefaultBatchLines      = 4000
	DefaultFutureTolerance = 24 * time.Hour
)

// Options configure an Importer.
type Options struct {
	// Format of every input; FormatUnknown: guess from each name's
	// extension (.jsonl, .ndjson, .json, .csv, optionally + .gz); standard
	// input, which has no name, is JSON Lines.
	Format Format
	// Bulk loads into an empty store with store.Bulk instead of ordinary
	// transactions. Not resumable: an interrupted bulk load starts over.
	Bulk        bool
	BulkOptions store.BulkOptions
	// Transactional commits every batch of BatchLines lines in its own
	// transaction, so a killed import resumes after the last batch, at a
	// fraction of the speed. Otherwise (the default) an import into a
	// store that holds data is a store.Load: sorted, merged with what is
	// stored and written as tables in one durable step at the end; killed,
	// it is redone from its inputs' start.
	Transactional bool
	// Now is the clock future dates are judged by (default time.Now).
	Now             func() time.Time
	FutureTolerance time.Duration // default 24h; negative: none
	MaxLineBytes    int           // default 64 KiB
	BatchLines      int           // lines per transaction, default 4000
	Workers         int           // parsers, default GOMAXPROCS
	// Errors receives one JSON object per rejected line; nil discards.
	Errors io.Writer
	// Rejects, when set, receives each rejected line instead of Errors
	// (a running node passes them on to the importing client).
	Rejects func(Rejection) error
	// Stdin is read for the input name "-" (default os.Stdin).
	Stdin    io.Reader
	Logger   *slog.Logger
	Progress ProgressSink // nil: none
}

// ProgressSink is told how the import advances, from one goroutine.
type ProgressSink interface {
	Start(input string, totalBytes int64) // totalBytes -1 when unknown
	Update(s Summary, inputBytes int64)   // inputBytes: of the current input read so far
	Finish(s Summary)
}

// Summary counts what an import did.
type Summary struct {
	Inputs    int           `json:"inputs"`
	Skipped   int           `json:"skipped"` // inputs already fully imported
	Lines     int64         `json:"lines"`   // lines read in this run
	Inserted  int64         `json:"inserted"`
	Replaced  int64         `json:"replaced"`
	Unchanged int64         `json:"unchanged"` // duplicates of stored records
	Rejected  int64         `json:"rejected"`
	Bytes     int64         `json:"bytes"` // decoded bytes read
	Elapsed   time.Duration `json:"elapsed_ns"`
}

// Records is the number of valid records this run handled.
func (s Summary) Records() int64 { return s.Inserted + s.Replaced + s.Unchanged }

// Rate is valid records per second.
func (s Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Records()) / s.Elapsed.Seconds()
}

// ErrInput wraps why an input could not be read at all (missing file,
// unreadable gzip, bad CSV header). Other inputs are still imported.
var ErrInput = errors.New("input failed")

// Importer imports inputs into one store.
type Importer struct {
	db   *store.DB
	opts Options
	log  *slog.Logger
	// readBlock, when set, is the reader's block size and makes its chunk
	// buffers as small as they may be: tests use it to reach a chunk's
	// edges with small inputs.
	readBlock int
}

// New makes an Importer; db stays the caller's to close.
func New(db *store.DB, o Options) (*Importer, error) {
	if db == nil {
		return nil, errors.New("ingest: nil store")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FutureTolerance == 0 {
		o.FutureTolerance = DefaultFutureTolerance
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	if o.BatchLines <= 0 {
		o.BatchLines = DefaultBatchLines
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Stdin == nil {
		o.Stdin = os.Stdin
	}
	if o.Errors == nil {
		o.Errors = io.Discard
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Importer{db: db, opts: o, log: log}, nil
}

// Import reads every input in turn. It returns an error wrapping ErrInput
// if some input could not be read (the others are imported), or another
// error if the store failed. Rejected lines are not errors: see
// Summary.Rejected.
func (im *Importer) Import(ctx context.Context, names []string) (sum Summary, err error) {
	srcs := make([]source, len(names))
	for i, n := range names {
		srcs[i] = source{name: n}
	}
	return im.importSources(ctx, srcs)
}

// Stream is an input read from a reader rather than opened by name: a file
// a client sends to a running node's admin API.
type Stream struct {
	// Name is what the error file and the log call the input.
	Name string
	// ID is the input's identity for resuming ("" : not resumable). The
	// client makes it as Import does for a file, so that a rerun of the
	// same command continues where the last committed batch ended.
	ID     string
	Format Format // FormatUnknown: from Name's extension
	R      io.Reader
	Size   int64 // of the whole input, -1 unknown
	// Offset, when positive, says R starts at this byte of a plain
	// (uncompressed) JSON Lines input: the client skipped what the store
	// already holds. It must equal the stored progress; see ErrResume.
	Offset int64
}

// ErrResume: a stream starts at another offset than the store's progress
// for its input; the client asks for the progress and sends again.
var ErrResume = errors.New("stream does not start where the stored progress of its input ends")

// ImportStream imports one streamed input, as Import does a file.
func (im *Importer) ImportStream(ctx context.Context, st Stream) (Summary, error) {
	return im.importSources(ctx, []source{{name: st.Name, stream: &st}})
}

// source is an input to open: a name (a file or "-") or a stream.
type source struct {
	name   string
	stream *Stream
}

func (im *Importer) importSources(ctx context.Context, srcs []source) (sum Summary, err error) {
	start := time.Now()
	// Also when interrupted, so that a summary says how long it ran.
	defer func() { sum.Elapsed = time.Since(start) }()
	var errs []error
	var bulk *store.Bulk // a bulk load or an incremental store.Load
	defer func() {
		if err != nil && bulk != nil {
			// Counted as read; a load that did not finish stored none.
			sum.Inserted, sum.Replaced, sum.Unchanged = 0, 0, 0
		}
	}()
	var done []store.Progress
	switch {
	case im.opts.Bulk:
		var err error
		if bulk, err = im.db.NewBulk(im.opts.BulkOptions); err != nil {
			return sum, fmt.Errorf("ingest: %w", err)
		}
		defer bulk.Close()
	case !im.opts.Transactional:
		var err error
		if bulk, err = im.db.NewLoad(im.opts.BulkOptions); err != nil {
			return sum, fmt.Errorf("ingest: %w", err)
		}
		defer bulk.Close()
	}
	ew := newErrorWriter(im.opts.Errors)
	ew.fn = im.opts.Rejects
	defer ew.flush()
	var pl *store.Pipeline
	if bulk == nil {
		var err error
		if pl, err = im.db.NewPipeline(ctx); err != nil {
			return sum, fmt.Errorf("ingest: %w", err)
		}
		defer pl.Close()
	}
	for _, src := range srcs {
		name := src.name
		sum.Inputs++
		p, err := im.importOne(ctx, src, bulk, pl, ew, &sum, start)
		if err != nil {
			if errors.Is(err, ErrInput) {
				im.log.Error("input not imported", "input", name, "err", err)
				errs = append(errs, err)
				continue
			}
			return sum, err
		}
		if p != nil {
			done = append(done, *p)
		}
	}
	if bulk != nil {
		res, err := bulk.Finish(ctx, done)
		if err != nil {
			return sum, fmt.Errorf("ingest: %w", err)
		}
		sum.Inserted, sum.Replaced, sum.Unchanged = res.Inserted, res.Replaced, res.Unchanged
	}
	if pl != nil {
		if err := pl.Close(); err != nil {
			return sum, fmt.Errorf("ingest: %w", err)
		}
	}
	if err := im.db.Sync(); err != nil {
		return sum, fmt.Errorf("ingest: %w", err)
	}
	if err := ew.flush(); err != nil {
		return sum, fmt.Errorf("ingest: error file: %w", err)
	}
	sum.Elapsed = time.Since(start)
	if im.opts.Progress != nil {
		im.opts.Progress.Finish(sum)
	}
	return sum, errors.Join(errs...)
}

// errorWriter writes the error file. Only the goroutine that writes the
// chunks in input order uses it, so it has no lock.
type errorWriter struct {
	enc *json.Encoder
	w   *bufio.Writer
	fn  func(Rejection) error // set: receives the rejections instead
}

// Rejection is one line of the error file.
type Rejection struct {
	File   string `json:"file"`
	Line   int64  `json:"line"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
	Text   string `json:"text,omitempty"` // the line's start, for finding it
}

func newErrorWriter(w io.Writer) *errorWriter {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &errorWriter{enc: enc, w: bw}
}

func (e *errorWriter) write(r Rejection) error {
	if e.fn != nil {
		return e.fn(r)
	}
	return e.enc.Encode(r)
}
func (e *errorWriter) flush() error {
	if e.w == nil {
		return nil
	}
	return e.w.Flush()
}

// input is one opened input, positioned at its first line to import.
type input struct {
	name     string
	id       string // "" when not resumable (standard input)
	format   Format
	header   *CSVHeader
	br       *bufio.Reader
	raw      *CountingReader // bytes of the underlying file, for progress
	size     int64           // of the underlying file, -1 unknown
	offset   int64           // decoded bytes before br's next byte
	line     int64           // lines before br's next byte
	rejected int64           // rejections before offset (from progress)
	close    func() error
}

// CountingReader counts the bytes read through it, after a starting
// offset, for a progress display that another goroutine reads (the
// import's own, or a client's sending a file to a running node).
type CountingReader struct {
	r io.Reader
	n atomic.Int64
}

// NewCountingReader counts what is read from r, starting at offset.
func NewCountingReader(r io.Reader, offset int64) *CountingReader {
	c := &CountingReader{r: r}
	c.n.Store(offset)
	return c
}

func (c *CountingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Count is the offset of the next byte to read.
func (c *CountingReader) Count() int64 { return c.n.Load() }

// SetCount moves the offset, after a seek on the underlying reader or
// when it starts further into the input than thought.
func (c *CountingReader) SetCount(offset int64) { c.n.Store(offset) }

// InputID is a file input's identity for resuming: its absolute path,
// size, modification time and inode, and the format it is read as. A
// client streaming a file to a running node sends the same identity, so
// an import resumes whichever way it was started.
func InputID(name string, st os.FileInfo, f Format) string {
	abs, _ := filepath.Abs(name)
	var ino uint64
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = sys.Ino
	}
	return fmt.Sprintf("file:%s:size=%d:mtime=%d:ino=%d:format=%s", abs, st.Size(), st.ModTime().UnixNano(), ino, f)
}

// FormatOf is the format a file's name says (.jsonl, .ndjson, .json,
// .csv, optionally + .gz), FormatUnknown when it says none.
func FormatOf(name string) Format { return formatOf(name) }

// formatOf guesses the format from a file name.
func formatOf(name string) Format {
	n := strings.ToLower(strings.TrimSuffix(strings.ToLower(name), ".gz"))
	switch filepath.Ext(n) {
	case ".jsonl", ".ndjson", ".json":
		return FormatJSONL
	case ".csv":
		return FormatCSV
	}
	return FormatUnknown
}

func (im *Importer) bufSize() int { return max(im.opts.MaxLineBytes+2, 256<<10) }

// open opens an input and, if it is resumable and a previous run left a
// progress marker, positions it after the last committed line. done is
// true when a previous run imported all of it.
func (im *Importer) open(ctx context.Context, src source, bulk bool) (in *input, done bool, err error) {
	name := src.name
	in = &input{name: name, size: -1, format: im.opts.Format, close: func() error { return nil }}
	if src.stream != nil && src.stream.Format != FormatUnknown {
		in.format = src.stream.Format
	}
	if in.format == FormatUnknown && name == "-" {
		in.format = FormatJSONL
	}
	if in.format == FormatUnknown {
		in.format = formatOf(name)
		if in.format == FormatUnknown {
			return nil, false, fmt.Errorf("%w: %s: cannot tell the format from the name; use --format", ErrInput, name)
		}
	}
	var f *os.File
	switch {
	case src.stream != nil:
		st := src.stream
		in.raw, in.id, in.size = NewCountingReader(st.R, 0), st.ID, st.Size
		if st.Offset > 0 && (in.format != FormatJSONL || st.ID == "" || bulk) {
			return nil, false, fmt.Errorf("%w: %s: a stream may start past its beginning only for a resumable JSON Lines input", ErrInput, name)
		}
	case name == "-":
		in.raw = NewCountingReader(im.opts.Stdin, 0)
	default:
		if f, err = os.Open(name); err != nil {
			return nil, false, fmt.Errorf("%w: %w", ErrInput, err)
		}
		in.close = f.Close
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, false, fmt.Errorf("%w: %w", ErrInput, err)
		}
		in.size = st.Size()
		in.id = InputID(name, st, in.format)
		in.raw = NewCountingReader(f, 0)
	}
	var streamOffset int64
	if src.stream != nil {
		streamOffset = src.stream.Offset
	}
	fail := func(err error) (*input, bool, error) {
		in.close()
		return nil, false, fmt.Errorf("%w: %s: %w", ErrInput, name, err)
	}
	var prog store.Progress
	if in.id != "" && !bulk {
		p, ok, err := im.db.LoadProgress(ctx, in.id)
		if err != nil {
			in.close()
			return nil, false, fmt.Errorf("ingest: %w", err)
		}
		if ok && p.Done {
			in.close()
			return nil, true, nil
		}
		if ok {
			prog = p
		}
	}
	if streamOffset > 0 && prog.Offset != streamOffset {
		in.close()
		return nil, false, fmt.Errorf("%w: %s: it starts at byte %d, the store holds its lines up to byte %d", ErrResume, name, streamOffset, prog.Offset)
	}
	if streamOffset > 0 {
		// The client sent the input from where the store's progress ends.
		in.raw.SetCount(streamOffset)
		in.offset, in.line, in.rejected = prog.Offset, prog.Line, prog.Rejected
		in.br = bufio.NewReaderSize(in.raw, im.bufSize())
		im.log.Info("resuming input", "input", name, "line", prog.Line+1, "offset", prog.Offset)
		return in, false, nil
	}
	// Gzip is recognised by its magic bytes, whatever the name says.
	// klauspost/compress inflates about 1.5 times as fast as the standard
	// library (BenchmarkGunzip), and for a gzip feed inflating costs more
	// than parsing.
	peek := bufio.NewReaderSize(in.raw, 64<<10)
	magic, _ := peek.Peek(2)
	gz := len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b
	var dec io.Reader = peek
	if gz {
		zr, err := gzip.NewReader(peek)
		if err != nil {
			return fail(err)
		}
		dec = zr
	}
	in.br = bufio.NewReaderSize(dec, im.bufSize())
	if in.format == FormatCSV {
		line, n, err := readLine(in.br, im.opts.MaxLineBytes)
		if err != nil && !errors.Is(err, io.EOF) {
			return fail(err)
		}
		if n == 0 {
			return fail(fmt.Errorf("%w: empty file", ErrBadHeader))
		}
		if in.header, err = ParseCSVHeader(line); err != nil {
			return fail(err)
		}
		in.offset, in.line = int64(n), 1
	}
	if prog.Offset > in.offset {
		skip := prog.Offset - in.offset
		if !gz && f != nil {
			// A plain file: seek instead of re-reading what is stored.
			if _, err := f.Seek(prog.Offset, io.SeekStart); err != nil {
				return fail(err)
			}
			in.raw.SetCount(prog.Offset)
			in.br.Reset(in.raw)
		} else if _, err := io.CopyN(io.Discard, in.br, skip); err != nil {
			return fail(fmt.Errorf("resume at byte %d: %w", prog.Offset, err))
		}
		in.offset, in.line, in.rejected = prog.Offset, prog.Line, prog.Rejected
		im.log.Info("resuming input", "input", name, "line", prog.Line+1, "offset", prog.Offset)
	}
	return in, false, nil
}

// readLine returns the next line without its line end, the bytes it took
// (line end included), and ErrOversized (with the line dropped) when it is
// longer than max. At the end of input it returns io.EOF with n == 0.
func readLine(br *bufio.Reader, maxLen int) ([]byte, int, error) {
	s, err := br.ReadSlice('\n')
	n := len(s)
	if errors.Is(err, bufio.ErrBufferFull) {
		for errors.Is(err, bufio.ErrBufferFull) {
			s, err = br.ReadSlice('\n')
			n += len(s)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, n, err
		}
		return nil, n, fmt.Errorf("%w: %d bytes, limit %d", ErrOversized, n, maxLen)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, n, err
	}
	if n == 0 {
		return nil, 0, io.EOF
	}
	line := s
	if len(line) > 0 && line[len(line)-1] == '\n' {
		line = line[:len(line)-1]
	}
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if len(line) > maxLen {
		return nil, n, fmt.Errorf("%w: %d bytes, limit %d", ErrOversized, len(line), maxLen)
	}
	return line, n, nil
}

// chunk is a run of consecutive lines: one store transaction.
type chunk struct {
	seq       int
	data      []byte  // the lines as read, line ends included
	ends      []int   // end of each line in data, its line end included
	bad       []error // per line: set when the reader already rejected it
	firstLine int64   // number of the first line (1-based)
	endOffset int64   // decoded offset after the last line
}

// recycler keeps an import's chunks and parsed batches circulating
// between the reader, the parsers and the writer. Fresh memory costs more
// than the work done in it (on this kind of VM a first touch of a page
// costs microseconds of CPU), and a sync.Pool gives its buffers up to
// the collector, which then returns their pages and takes them back. The
// free lists are bounded: what does not fit is left to the collector.
type recycler struct {
	chunks chan *chunk
	parsed chan *parsed
}

func newRecycler(workers int) *recycler {
	// Enough for every chunk in flight: the two channels, the parsers,
	// the reader, the writer and results waiting for their turn.
	n := 6*workers + 4
	return &recycler{chunks: make(chan *chunk, n), parsed: make(chan *parsed, n)}
}

func (r *recycler) chunk() *chunk {
	select {
	case c := <-r.chunks:
		return c
	default:
		return &chunk{}
	}
}

func (r *recycler) putChunk(c *chunk) {
	select {
	case r.chunks <- c:
	default:
	}
}

func (r *recycler) parsedFor(c *chunk) *parsed {
	select {
	case p := <-r.parsed:
		p.c, p.rejects = c, p.rejects[:0]
		return p
	default:
		return &parsed{c: c}
	}
}

func (r *recycler) putParsed(p *parsed) {
	p.c = nil
	clear(p.rejects)
	select {
	case r.parsed <- p:
	default:
	}
}

type parsed struct {
	c       *chunk
	entries []store.Entry
	buf     []byte // backs entries
	// batch: the records encoded for a bulk load or a Load instead of
	// entries; its memory is reused (recycler) once the load has copied it.
	batch   store.LoadBatch
	rejects []Rejection
}

// bufPool recycles the encoding buffers of a transactional import once a
// batch is written: without it the garbage collector works as hard as the
// parsers.
var bufPool sync.Pool

func getBuf(n int) []byte {
	if b, ok := bufPool.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:0]
	}
	return make([]byte, 0, n)
}

func putBuf(b []byte) {
	b = b[:0]
	bufPool.Put(&b)
}

// importOne imports one input: a reader splits it into chunks, workers
// parse them, and the chunks are written in input order. It returns the
// input's final progress when the bulk load is to record it.
func (im *Importer) importOne(ctx context.Context, src source, bulk *store.Bulk, pl *store.Pipeline, ew *errorWriter, sum *Summary, start time.Time) (*store.Progress, error) {
	name := src.name
	in, done, err := im.open(ctx, src, im.opts.Bulk)
	if err != nil {
		return nil, err
	}
	if done {
		im.log.Info("input already imported; skipping", "input", name)
		sum.Skipped++
		return nil, nil
	}
	defer in.close()
	if im.opts.Progress != nil {
		im.opts.Progress.Start(name, in.size)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The reader goroutine advances in.line and in.offset from here on.
	final := store.Progress{Input: in.id, Offset: in.offset, Line: in.line, Rejected: in.rejected, Done: true}
	w := &inputWriter{im: im, in: in, bulk: bulk, pl: pl, ew: ew, sum: sum, start: start,
		rc: newRecycler(im.opts.Workers), rejected: in.rejected, prevOffset: in.offset}
	results, readDone := im.parse(ctx, in, bulk != nil, w.rc)
	if err := w.writeInOrder(ctx, results, cancel); err != nil {
		return nil, err
	}
	// The reader has ended: chunks is closed, or ctx is cancelled and it
	// returns at its next send.
	readErr := <-readDone
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if readErr != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInput, name, readErr)
	}
	final.Rejected = w.rejected
	if w.last != nil {
		final.Offset, final.Line = w.last.Offset, w.last.Line
	}
	if in.id == "" {
		return nil, nil
	}
	if bulk != nil {
		return &final, nil
	}
	// Mark the input done so a later run skips it without reading.
	if _, err := pl.Write(ctx, nil, &final); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	return nil, nil
}

// parse starts the reader and the parsing workers of one input. Parsed
// chunks come on the first channel in the order the workers finish them;
// the reader's error comes on the second once it has ended.
func (im *Importer) parse(ctx context.Context, in *input, bulk bool, rc *recycler) (<-chan *parsed, <-chan error) {
	chunks := make(chan *chunk, im.opts.Workers*2)
	results := make(chan *parsed, im.opts.Workers*2)
	readDone := make(chan error, 1)
	go func() {
		defer close(chunks)
		readDone <- im.readChunks(ctx, in, chunks, rc)
	}()
	var wg sync.WaitGroup
	for w := 0; w < im.opts.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var scratch [][]byte
			var csv csvScratch
			for c := range chunks {
				p := im.parseChunk(c, in, &scratch, &csv, bulk, rc)
				select {
				case results <- p:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()
	return results, readDone
}

// inputWriter writes one input's parsed chunks, in input order, to the
// bulk load or the transactional pipeline, and counts them in the summary.
type inputWriter struct {
	im    *Importer
	in    *input
	bulk  *store.Bulk // nil: the pipeline writes
	pl    *store.Pipeline
	ew    *errorWriter
	sum   *Summary
	start time.Time
	rc    *recycler

	rejected   int64
	prevOffset int64
	last       *store.Progress // of the last chunk written
	// inFlightBuf is the buffer of the batch the pipeline may still be
	// committing.
	inFlightBuf []byte
}

// writeInOrder writes the chunks as their turn comes. After a failed
// write it cancels the input and drains what is still in flight.
func (w *inputWriter) writeInOrder(ctx context.Context, results <-chan *parsed, cancel func()) error {
	pending := map[int]*parsed{}
	next := 0
	var werr error
	for p := range results {
		if werr != nil {
			continue // drain
		}
		pending[p.c.seq] = p
		for {
			q, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if werr = w.write(ctx, q); werr != nil {
				cancel()
				break
			}
			if w.im.opts.Progress != nil {
				s := *w.sum
				s.Elapsed = time.Since(w.start)
				w.im.opts.Progress.Update(s, w.in.raw.Count())
			}
		}
	}
	return werr
}

// write writes one chunk: its rejected lines to the error file, its
// records to the store, with the progress marker of its end.
func (w *inputWriter) write(ctx context.Context, q *parsed) error {
	var werr error
	for _, r := range q.rejects {
		if err := w.ew.write(r); err != nil {
			werr = fmt.Errorf("ingest: error file: %w", err)
		}
	}
	sum := w.sum
	w.rejected += int64(len(q.rejects))
	line := q.c.firstLine + int64(len(q.c.ends)) - 1
	sum.Lines += int64(len(q.c.ends))
	sum.Rejected += int64(len(q.rejects))
	sum.Bytes += q.c.endOffset - w.prevOffset
	w.prevOffset = q.c.endOffset
	prog := &store.Progress{Input: w.in.id, Offset: q.c.endOffset, Line: line, Rejected: w.rejected}
	if w.bulk != nil {
		sum.Inserted += int64(q.batch.Len()) // provisional: Finish gives the final split
		if err := w.bulk.AddBatch(&q.batch); err != nil {
			werr = fmt.Errorf("ingest: %w", err)
		}
	} else {
		var pp *store.Progress
		if w.in.id != "" {
			pp = prog
		}
		res, err := w.pl.Write(ctx, q.entries, pp)
		if err != nil {
			werr = fmt.Errorf("ingest: %w", err)
		}
		sum.Inserted += res.Inserted
		sum.Replaced += res.Replaced
		sum.Unchanged += res.Unchanged
	}
	w.last = prog
	w.rc.putChunk(q.c)
	if w.bulk != nil {
		w.rc.putParsed(q)
	}
	if w.bulk == nil && werr == nil {
		// The pipeline commits this batch while we prepare the next:
		// its buffer is free once the next Write has succeeded
		// (a failed Write may not have waited for it).
		if w.inFlightBuf != nil {
			putBuf(w.inFlightBuf)
		}
		w.inFlightBuf = q.buf
	}
	return werr
}

// readChunks splits the input into chunks of at most BatchLines lines.
// It reads large blocks straight into a chunk's buffer and finds the lines
// there, so every byte is copied once (by the read) and scanned once
// before the parsers; a line longer than MaxLineBytes is dropped as it
// streams past and passed on as a rejected line.
func (im *Importer) readChunks(ctx context.Context, in *input, out chan<- *chunk, rc *recycler) error {
	maxLine := im.opts.MaxLineBytes
	// At least in.br's buffer, so that reads past what it holds go
	// straight from the input into the chunk.
	readSize := im.bufSize()
	if im.readBlock > 0 {
		readSize = im.readBlock
	}
	// Room for a whole line of maxLine (plus "\r\n") after a partial one.
	capacity := max(im.opts.BatchLines*400, maxLine+3+readSize, 4*readSize)
	if im.readBlock > 0 {
		capacity = maxLine + 3 + readSize
	}
	seq := 0
	newChunk := func(carry []byte) *chunk {
		c := rc.chunk()
		if cap(c.data) < capacity {
			c.data = make([]byte, 0, capacity)
		}
		c.seq, c.firstLine, c.endOffset = seq, in.line+1, 0
		c.data = append(c.data[:0], carry...)
		c.ends, c.bad = c.ends[:0], c.bad[:0]
		return c
	}
	c := newChunk(nil)
	lineStart := 0 // in c.data: where the line being read starts
	scanned := 0   // in c.data: bytes already searched for a line end
	skipped := 0   // bytes of an oversized line already dropped
	// send passes on c.data[:cut] and carries the rest into a new chunk.
	send := func(cut int) error {
		c.endOffset = in.offset
		seq++
		next := newChunk(c.data[cut:])
		c.data = c.data[:cut]
		select {
		case out <- c:
		case <-ctx.Done():
			return ctx.Err()
		}
		c, lineStart, scanned = next, 0, 0
		return nil
	}
	// addLine takes c.data[lineStart:end] (with skipped bytes before it)
	// as the next line; term is the length of its line end.
	addLine := func(end int, term int) error {
		n := skipped + end - lineStart
		in.offset += int64(n)
		in.line++
		content := n - term
		if term == 1 && end-2 >= lineStart && c.data[end-2] == '\r' {
			content--
		} else if term == 0 && end-1 >= lineStart && c.data[end-1] == '\r' {
			content--
		}
		var bad error
		if skipped > 0 || content > maxLine {
			bad = fmt.Errorf("%w: %d bytes, limit %d", ErrOversized, content, maxLine)
			// Drop its bytes: a rejected line of that size is reported
			// without its text.
			c.data = append(c.data[:lineStart], c.data[end:]...)
			scanned -= end - lineStart
			end = lineStart
			skipped = 0
		}
		c.ends = append(c.ends, end)
		if bad != nil || len(c.bad) > 0 {
			for len(c.bad) < len(c.ends)-1 {
				c.bad = append(c.bad, nil)
			}
			c.bad = append(c.bad, bad)
		}
		lineStart = end
		if len(c.ends) >= im.opts.BatchLines {
			return send(end)
		}
		return nil
	}
	for eof := false; ; {
		for {
			k := bytes.IndexByte(c.data[scanned:], '\n')
			if k < 0 {
				scanned = len(c.data)
				break
			}
			scanned += k + 1
			if err := addLine(scanned, 1); err != nil {
				return err
			}
		}
		if eof {
			break
		}
		if len(c.data) == cap(c.data) {
			if partial := len(c.data) - lineStart; partial > maxLine+2 {
				// Too long whatever its end: drop what was read of it.
				skipped += partial
				c.data = c.data[:lineStart]
				scanned = lineStart
			} else if err := send(lineStart); err != nil {
				return err
			}
		}
		n, err := in.br.Read(c.data[len(c.data):min(cap(c.data), len(c.data)+readSize)])
		c.data = c.data[:len(c.data)+n]
		if errors.Is(err, io.EOF) {
			eof = true
		} else if err != nil {
			return err
		}
	}
	if len(c.data) > lineStart || skipped > 0 {
		// The last line has no line end.
		if err := addLine(len(c.data), 0); err != nil {
			return err
		}
	}
	if len(c.ends) > 0 {
		c.endOffset = in.offset
		select {
		case out <- c:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// parseChunk parses, validates and encodes one chunk's lines: for a load
// (a bulk load or a Load) into p.batch, otherwise into p.entries.
func (im *Importer) parseChunk(c *chunk, in *input, scratch *[][]byte, csv *csvScratch, load bool, rc *recycler) *parsed {
	p := rc.parsedFor(c)
	now := im.opts.Now()
	tol := im.opts.FutureTolerance
	if tol < 0 {
		tol = 0
	}
	var buf []byte
	if load {
		buf := p.batch.Bytes()
		if cap(buf) < len(c.data) {
			// A record's encoding is smaller than its line: one buffer of
			// the chunk's size, grown by doubling no more.
			buf = make([]byte, 0, len(c.data)+len(c.data)/8)
		}
		p.batch.Reset(buf)
	} else {
		p.entries = make([]store.Entry, 0, len(c.ends))
		buf = getBuf(len(c.data) + len(c.ends)*64)
		defer func() { p.buf = buf }()
	}
	start := 0
	for i, end := range c.ends {
		line := c.data[start:end]
		start = end
		if len(line) > 0 && line[len(line)-1] == '\n' {
			line = line[:len(line)-1]
		}
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		lineNo := c.firstLine + int64(i)
		reject := func(err error) {
			r := Rejection{File: in.name, Line: lineNo, Reason: err.Error()}
			var fe *credit.FieldError
			var le *LineError
			switch {
			case errors.As(err, &fe):
				r.Field = fe.Field
				r.Reason = fe.Err.Error()
			case errors.As(err, &le):
				r.Field = le.Field
				r.Reason = le.Err.Error()
			}
			t := line
			if len(t) > 200 {
				t = t[:200]
			}
			r.Text = string(t)
			p.rejects = append(p.rejects, r)
		}
		if i < len(c.bad) && c.bad[i] != nil {
			reject(&LineError{Err: c.bad[i]})
			continue
		}
		if isBlank(line) {
			continue // blank lines, e.g. a trailing one, are not records
		}
		if load && in.format == FormatJSONL && appendFastJSON(&p.batch, line, now, tol) {
			continue
		}
		if load && in.format == FormatCSV && appendFastCSV(&p.batch, in.header, line, csv, now, tol) {
			continue
		}
		if !utf8.Valid(line) {
			reject(&LineError{Err: ErrInvalidUTF8})
			continue
		}
		var r credit.Record
		var err error
		if in.format == FormatCSV {
			*scratch, err = in.header.ParseCSVLine(line, &r, *scratch)
		} else {
			err = ParseJSONLine(line, &r)
		}
		if err == nil {
			err = r.Normalize(now, tol)
		}
		if err != nil {
			reject(err)
			continue
		}
		if load {
			if err := p.batch.Append(&r); err != nil {
				reject(err)
			}
			continue
		}
		var e store.Entry
		if err := store.EncodeInto(&e, &r, buf[len(buf):len(buf)]); err != nil {
			reject(err)
			continue
		}
		// EncodeInto appended after buf's end; claim those bytes unless
		// they did not fit and went to an array of their own.
		if n := len(e.RecKey) + len(e.IDKey) + len(e.Value); cap(buf)-len(buf) >= n {
			buf = buf[:len(buf)+n]
		}
		p.entries = append(p.entries, e)
	}
	return p
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}
