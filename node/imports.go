package node

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/store/ingest"
)

// Imports into a running node. The node owns its Badger folder, so
// `ccnode import` against a running node streams each input to the admin
// API (POST /v1/imports) instead of opening the store. The node imports it
// batch by batch in ordinary transactions (ingest's transactional path):
// queries go on reading and logging receipts meanwhile, which a Load's
// stream writer would block (Badger refuses every other write while it
// flushes), and a stream cut off resumes after its last committed batch.
// The answer is a stream of JSON lines (ImportEvent): rejected lines as
// they are found, progress, and a last line with the outcome.

// ImportEvent is one line of POST /v1/imports' answer: exactly one field
// is set.
type ImportEvent struct {
	Rejected *ingest.Rejection `json:"rejected,omitempty"`
	Progress *ImportStatus     `json:"progress,omitempty"`
	Done     *ImportResult     `json:"done,omitempty"`
}

// ImportResult is how a streamed import ended.
type ImportResult struct {
	Summary ingest.Summary `json:"summary"`
	// Skipped: the store already holds the whole input.
	Skipped bool `json:"skipped,omitempty"`
	// Error says why the import stopped before the input's end; batches
	// committed before it stay, and the same command resumes after them.
	Error string `json:"error,omitempty"`
	// InputFailed: the input itself could not be read (cut off, bad gzip,
	// bad CSV header), as ingest.ErrInput; otherwise the store failed.
	InputFailed bool `json:"input_failed,omitempty"`
}

// ImportStatus is an import in progress, as GET /v1/imports lists it.
type ImportStatus struct {
	ID       string         `json:"id"`
	Operator string         `json:"operator"`
	Input    string         `json:"input"`
	Started  time.Time      `json:"started"`
	Waiting  bool           `json:"waiting,omitempty"` // for another import to end
	Bytes    int64          `json:"input_bytes"`       // of the input received so far
	Size     int64          `json:"input_size"`        // -1 unknown
	Summary  ingest.Summary `json:"summary"`
}

// ImportProgress is the stored progress of a resumable input (GET
// /v1/imports/progress?input=ID): where a rerun continues.
type ImportProgress struct {
	Input    string `json:"input"`
	Found    bool   `json:"found"`
	Offset   int64  `json:"offset"`
	Line     int64  `json:"line"`
	Rejected int64  `json:"rejected"`
	Done     bool   `json:"done"`
}

// liveBatchLines is a live import's default batch: a query's writes queue
// behind at most one such commit in Badger's write queue (4000 lines, the
// offline default, made the p99 three times as long; BENCHMARKS.md).
const liveBatchLines = 500

// imports are the node's running imports. One writes at a time (the
// store serialises its record writers anyway); the others wait their turn.
type imports struct {
	slot    chan struct{}
	mu      sync.Mutex
	seq     int
	running map[string]*liveImport
	// busy counts the queries being answered: a running import gives way
	// to them (see yield).
	busy atomic.Int64
}

// answering marks a query being answered until the returned func runs.
func (im *imports) answering() func() {
	im.busy.Add(1)
	return func() { im.busy.Add(-1) }
}

// Import batches give way to queries: a query commits a nonce and a
// receipt and waits for them to be durable, behind whatever the import
// queued in Badger's one write queue and in the sync, and its goroutines
// wait for cores behind the import's. So between two batches the import
// waits while queries are being answered, up to yieldMax per batch: on
// an idle node it runs at full speed, on a busy one it still advances.
const (
	yieldMax  = 50 * time.Millisecond
	yieldPoll = time.Millisecond
)

// yield waits until no query is being answered, or yieldMax.
func (im *imports) yield() {
	for deadline := time.Now().Add(yieldMax); im.busy.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(yieldPoll)
	}
}

func newImports() *imports {
	return &imports{slot: make(chan struct{}, 1), running: map[string]*liveImport{}}
}

type liveImport struct {
	mu sync.Mutex
	st ImportStatus
}

func (li *liveImport) status() ImportStatus {
	li.mu.Lock()
	defer li.mu.Unlock()
	return li.st
}

func (im *imports) add(operator, input string, size int64, now time.Time) *liveImport {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.seq++
	li := &liveImport{st: ImportStatus{ID: fmt.Sprintf("import-%d-%d", now.Unix(), im.seq), Operator: operator,
		Input: input, Started: now.UTC(), Waiting: true, Size: size}}
	im.running[li.st.ID] = li
	return li
}

func (im *imports) remove(li *liveImport) {
	im.mu.Lock()
	defer im.mu.Unlock()
	delete(im.running, li.st.ID)
}

// list is the running imports, oldest first.
func (im *imports) list() []ImportStatus {
	im.mu.Lock()
	out := make([]ImportStatus, 0, len(im.running))
	for _, li := range im.running {
		out = append(out, li.status())
	}
	im.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// importParams are POST /v1/imports' query parameters: the input's name,
// identity, format and starting offset, and the import's tuning, as
// `ccnode import` flags give them.
type importParams struct {
	stream       ingest.Stream
	opts         ingest.Options
	progressEach time.Duration
	maxRate      int // lines per second; 0: as fast as it goes
}

func parseImportParams(r *http.Request) (importParams, error) {
	q := r.URL.Query()
	p := importParams{stream: ingest.Stream{Name: q.Get("name"), ID: q.Get("id"), Size: -1, R: r.Body}, progressEach: time.Second}
	if p.stream.Name == "" {
		p.stream.Name = "-"
	}
	if len(p.stream.Name) > 4096 || len(p.stream.ID) > 8192 {
		return p, credit.Refuse(credit.CodeInvalidQuery, "name or id longer than allowed")
	}
	var err error
	if f := q.Get("format"); f != "" {
		if p.stream.Format, err = ingest.ParseFormat(f); err != nil {
			return p, credit.Refuse(credit.CodeInvalidQuery, "format: %w", err)
		}
	}
	ints := []struct {
		name string
		dst  *int64
	}{{"offset", &p.stream.Offset}, {"size", &p.stream.Size}}
	for _, x := range ints {
		if v := q.Get(x.name); v != "" {
			if *x.dst, err = strconv.ParseInt(v, 10, 64); err != nil {
				return p, credit.Refuse(credit.CodeInvalidQuery, "%s: want an integer", x.name)
			}
		}
	}
	small := []struct {
		name string
		dst  *int
		max  int
	}{{"max_line_bytes", &p.opts.MaxLineBytes, 16 << 20}, {"batch_lines", &p.opts.BatchLines, 1 << 20}, {"workers", &p.opts.Workers, 256},
		{"max_rate", &p.maxRate, 1 << 30}}
	for _, x := range small {
		if v := q.Get(x.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > x.max {
				return p, credit.Refuse(credit.CodeInvalidQuery, "%s: want an integer from 0 to %d", x.name, x.max)
			}
			*x.dst = n
		}
	}
	durs := []struct {
		name string
		dst  *time.Duration
	}{{"future_tolerance", &p.opts.FutureTolerance}, {"progress_interval", &p.progressEach}}
	for _, x := range durs {
		if v := q.Get(x.name); v != "" {
			if *x.dst, err = time.ParseDuration(v); err != nil {
				return p, credit.Refuse(credit.CodeInvalidQuery, "%s: want a duration such as 5s", x.name)
			}
		}
	}
	if p.opts.BatchLines == 0 {
		p.opts.BatchLines = liveBatchLines
	}
	if p.opts.Workers == 0 {
		// Half the cores: the other half keeps answering queries.
		p.opts.Workers = max(1, runtime.GOMAXPROCS(0)/2)
	}
	return p, nil
}

// handleImport imports the request body as one input (POST /v1/imports).
// The body is streamed: it is bounded by no size, only by the time the
// client may stay silent (http.read_timeout between reads).
func (n *Node) handleImport(w http.ResponseWriter, r *http.Request) {
	// A refusal answers before the body is read, and the server then
	// closes the connection under the client: say so, or the client puts
	// the connection back in its pool and its next request (the resume
	// the refusal asks for) fails writing to it. One import per
	// connection costs a handshake per import.
	w.Header().Set("Connection", "close")
	p, err := parseImportParams(r)
	if err != nil {
		n.fail(w, err)
		return
	}
	noteTarget(r, p.stream.Name)
	// A node below store.min_free_bytes refuses imports before it reads a
	// byte; a known size is checked with room for the transactional path's
	// log and tables (about twice the input).
	if err := n.ImportSpaceCheck(2 * uint64(max(p.stream.Size-p.stream.Offset, 0))); err != nil {
		n.fail(w, credit.Refuse(credit.CodeDiskFull, "import refused: %w", err))
		return
	}
	rc := http.NewResponseController(w)
	// The answer streams while the body is still being read.
	if err := rc.EnableFullDuplex(); err != nil {
		n.fail(w, fmt.Errorf("import: %w", err))
		return
	}
	// The server's deadlines run from the request's start; an import
	// waiting its turn or running for hours replaces them with idle ones,
	// set at each read and write.
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	p.stream.R = newIdleReader(r.Body, rc, n.cfg.HTTP.ReadTimeout)

	operator := ""
	if c, ok := r.Context().Value(adminCallKey{}).(*adminCall); ok {
		operator = c.operator
	}
	li := n.imports.add(operator, p.stream.Name, p.stream.Size, n.now())
	defer n.imports.remove(li)
	select {
	case n.imports.slot <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	defer func() { <-n.imports.slot }()
	li.mu.Lock()
	li.st.Waiting = false
	li.mu.Unlock()

	// A mismatched start is told before anything streams, so the client
	// can ask for the progress and send again.
	if p.stream.ID != "" {
		prog, ok, err := n.deps.Store.LoadProgress(r.Context(), p.stream.ID)
		if err != nil {
			n.fail(w, err)
			return
		}
		if p.stream.Offset > 0 && (!ok || prog.Offset != p.stream.Offset) {
			writeError(w, http.StatusConflict, credit.CodeConflict,
				fmt.Sprintf("the input starts at byte %d, the store holds its lines up to byte %d: ask GET /v1/imports/progress and send again", p.stream.Offset, prog.Offset))
			return
		}
	}

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	ev := &eventWriter{rc: rc, timeout: n.cfg.HTTP.WriteTimeout}
	ev.bw = bufio.NewWriterSize(newDeadlineWriter(w, rc, n.cfg.HTTP.WriteTimeout), 32<<10)
	ev.enc = json.NewEncoder(ev.bw)
	ev.enc.SetEscapeHTML(false)

	opts := p.opts
	opts.Transactional = true
	opts.Logger = n.log.With("part", "import", "input", p.stream.Name)
	opts.Rejects = func(rej ingest.Rejection) error {
		// A client gone away stops the import through the body's error;
		// the rejection is lost with it, as in a killed offline import.
		ev.send(ImportEvent{Rejected: &rej})
		return nil
	}
	opts.Progress = &liveProgress{li: li, ev: ev, each: p.progressEach, maxRate: p.maxRate, start: time.Now(), yield: n.imports.yield}
	imp, err := ingest.New(n.deps.Store, opts)
	if err != nil {
		ev.send(ImportEvent{Done: &ImportResult{Error: err.Error()}})
		ev.flush()
		return
	}
	start := time.Now()
	sum, err := imp.ImportStream(r.Context(), p.stream)
	res := &ImportResult{Summary: sum}
	switch {
	case err == nil && sum.Skipped > 0:
		res.Skipped = true
	case err != nil:
		res.Error = err.Error()
		res.InputFailed = errors.Is(err, ingest.ErrInput)
		n.log.Warn("import stopped", "input", p.stream.Name, "err", err, "lines", sum.Lines)
	default:
		n.log.Info("import done", "input", p.stream.Name, "records", sum.Records(), "rejected", sum.Rejected,
			"elapsed", time.Since(start).Round(time.Millisecond))
	}
	ev.send(ImportEvent{Done: res})
	ev.flush()
}

// handleImports lists the imports in progress (GET /v1/imports).
func (n *Node) handleImports(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, n.imports.list())
}

// handleImportProgress is an input's stored progress (GET
// /v1/imports/progress?input=ID).
func (n *Node) handleImportProgress(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("input")
	if id == "" {
		n.fail(w, credit.Refuse(credit.CodeInvalidQuery, "input: the input's identity is required"))
		return
	}
	p, ok, err := n.deps.Store.LoadProgress(r.Context(), id)
	if err != nil {
		n.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ImportProgress{Input: id, Found: ok, Offset: p.Offset, Line: p.Line, Rejected: p.Rejected, Done: p.Done})
}

// eventWriter writes an import's answer lines. Only the goroutine running
// the import writes (ingest calls its sinks from the goroutine that
// writes batches), so it has no lock. After a write error it drops the
// rest: the client is gone.
type eventWriter struct {
	rc      *http.ResponseController
	timeout time.Duration
	bw      *bufio.Writer
	enc     *json.Encoder
	err     error
}

func (e *eventWriter) send(v ImportEvent) {
	if e.err == nil {
		e.err = e.enc.Encode(v)
	}
}

func (e *eventWriter) flush() {
	if e.err == nil {
		e.err = e.bw.Flush()
	}
	if e.err == nil {
		e.err = e.rc.Flush()
	}
}

// liveProgress keeps the import's status for GET /v1/imports and the
// metrics, and sends a progress line every interval.
type liveProgress struct {
	li   *liveImport
	ev   *eventWriter
	each time.Duration
	last time.Time
	// maxRate paces the import (lines per second since start): the
	// writer waits after a batch that came early, and the parsers and
	// the reader wait for it, so the node's CPU goes to queries meanwhile.
	maxRate int
	start   time.Time
	yield   func()
}

func (p *liveProgress) Start(input string, total int64) {
	p.li.mu.Lock()
	if total >= 0 {
		p.li.st.Size = total
	}
	p.li.mu.Unlock()
}

func (p *liveProgress) Update(s ingest.Summary, inputBytes int64) {
	p.li.mu.Lock()
	p.li.st.Summary, p.li.st.Bytes = s, inputBytes
	st := p.li.st
	p.li.mu.Unlock()
	if now := time.Now(); now.Sub(p.last) >= p.each {
		p.last = now
		p.ev.send(ImportEvent{Progress: &st})
		p.ev.flush()
	}
	p.yield()
	if p.maxRate > 0 {
		due := p.start.Add(time.Duration(float64(s.Lines) / float64(p.maxRate) * float64(time.Second)))
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
	}
}

func (p *liveProgress) Finish(s ingest.Summary) {
	p.li.mu.Lock()
	p.li.st.Summary = s
	p.li.mu.Unlock()
}

// deadline pushes one of a connection's deadlines d past now, at most
// once a second (each push resets a timer), so that a long stream is cut
// off only when its peer falls silent for d.
type deadline struct {
	set  func(time.Time) error // rc.SetReadDeadline or rc.SetWriteDeadline
	d    time.Duration
	last time.Time
}

func (e *deadline) extend() {
	if now := time.Now(); now.Sub(e.last) > time.Second {
		e.last = now
		e.set(now.Add(e.d))
	}
}

// idleReader extends the connection's read deadline at every read: a
// streamed body may take hours, a silent client is cut off after idle.
type idleReader struct {
	r io.Reader
	deadline
}

func newIdleReader(r io.Reader, rc *http.ResponseController, idle time.Duration) *idleReader {
	return &idleReader{r: r, deadline: deadline{set: rc.SetReadDeadline, d: idle}}
}

func (i *idleReader) Read(b []byte) (int, error) {
	i.extend()
	return i.r.Read(b)
}

// deadlineWriter extends the connection's write deadline before every
// write of a long answer (an import's events, an export), so that only a
// client that stops reading is cut off.
type deadlineWriter struct {
	w io.Writer
	deadline
}

func newDeadlineWriter(w io.Writer, rc *http.ResponseController, timeout time.Duration) *deadlineWriter {
	return &deadlineWriter{w: w, deadline: deadline{set: rc.SetWriteDeadline, d: timeout}}
}

func (d *deadlineWriter) Write(b []byte) (int, error) {
	d.extend()
	return d.w.Write(b)
}

var (
	importsRunningDesc = prometheus.NewDesc("ccnode_imports_running",
		"Imports in progress through the admin API (those waiting for another to end included).", nil, nil)
	importLinesDesc = prometheus.NewDesc("ccnode_import_lines",
		"Lines read so far by the imports in progress.", nil, nil)
	importRecordsDesc = prometheus.NewDesc("ccnode_import_records",
		"Records stored so far by the imports in progress.", nil, nil)
	importRejectedDesc = prometheus.NewDesc("ccnode_import_rejected_lines",
		"Lines rejected so far by the imports in progress.", nil, nil)
)

// importCollector reports the imports in progress at each scrape, for
// `ccnode status` and dashboards.
type importCollector struct{ n *Node }

func (c importCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- importsRunningDesc
	ch <- importLinesDesc
	ch <- importRecordsDesc
	ch <- importRejectedDesc
}

func (c importCollector) Collect(ch chan<- prometheus.Metric) {
	var lines, recs, rej int64
	list := c.n.imports.list()
	for _, s := range list {
		lines += s.Summary.Lines
		recs += s.Summary.Records()
		rej += s.Summary.Rejected
	}
	ch <- prometheus.MustNewConstMetric(importsRunningDesc, prometheus.GaugeValue, float64(len(list)))
	ch <- prometheus.MustNewConstMetric(importLinesDesc, prometheus.GaugeValue, float64(lines))
	ch <- prometheus.MustNewConstMetric(importRecordsDesc, prometheus.GaugeValue, float64(recs))
	ch <- prometheus.MustNewConstMetric(importRejectedDesc, prometheus.GaugeValue, float64(rej))
}
