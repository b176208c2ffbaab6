package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/credit/sigbatch"
)

// DefaultAnchorDelay is how long a receipt may wait for an anchored
// checkpoint before the audit says so.
const DefaultAnchorDelay = time.Hour

// DefaultMaxFindings bounds the findings a report keeps (all are counted).
const DefaultMaxFindings = 10000

// Source is one export file, opened as many times as the audit reads it
// (a requesters' export is read twice).
type Source struct {
	Name string
	Open func() (io.ReadCloser, error)
}

// FileSource reads a file.
func FileSource(path string) Source {
	return Source{Name: path, Open: func() (io.ReadCloser, error) { return os.Open(path) }}
}

// BytesSource reads an in-memory export (tests, small tools).
func BytesSource(name string, b []byte) Source {
	return Source{Name: name, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
}

// Inputs are what the auditor was given besides the ledger.
type Inputs struct {
	// Exports in credit.ExportFormat, of either kind, in any order.
	Exports []Source
	// Consents are consent documents the auditor holds independently;
	// a query that carries a different document under the same id is a
	// finding.
	Consents []credit.ConsentGrant
	// ConsentFiles hold more such documents, as a JSON array or one per
	// line; they are read one document at a time. A file with none is an
	// input error.
	ConsentFiles []Source
}

// Options tune an audit. The zero value audits everything.
type Options struct {
	Since, Until time.Time         // receipts with Since <= Time < Until; zero is unbounded
	Regions      []credit.RegionID // answering regions to audit; empty is all
	AnchorDelay  time.Duration     // DefaultAnchorDelay when zero
	// RevocationBound is how long after a revocation's time on the
	// ledger a region may still answer on the consent without a finding:
	// the consortium's propagation bound (a node that has not learnt a
	// revocation within its ledger grace period refuses everything).
	// Such answers are counted in Report.WithinRevocationBound. Zero
	// allows none: every answer after the revocation is a finding.
	RevocationBound time.Duration
	// RetirementBound is how long after a region's retirement on the
	// ledger a query may still have been sent to it: the ledger stamps
	// the deciding vote with its proposal's time, and the region's node
	// and the requester's learn of it only once it commits, so a query
	// signed in between is answered as by a member. Zero allows none.
	RetirementBound time.Duration
	Now             time.Time // the audit's "now", for receipts not yet anchored; time.Now when zero
	// RequireAnchored makes every receipt no anchored checkpoint covers a
	// finding, however recent: for an audit of a log that should be
	// wholly anchored by now.
	RequireAnchored bool
	Workers         int          // GOMAXPROCS when zero
	MaxFindings     int          // DefaultMaxFindings when zero
	Logger          *slog.Logger // discarded when nil
	// Progress, when set, is told how many export bytes were read; it is
	// called from one goroutine at a time.
	Progress func(bytes int64)
}

// ErrInput is matched by errors about the inputs (not findings): an
// unreadable file, a bad header, a duplicate export.
var ErrInput = errors.New("audit input")

type xkey struct {
	answerer credit.RegionID
	id       string
}

// xentry is what the cross-check keeps per receipt a requester holds.
type xentry struct {
	digest [32]byte
	src    string
	line   int
	ack    credit.Ack // verified when ackOK
	ackOK  bool
	// The receipt's and its query's signatures verified in the
	// requester's export; the answerer's log holds the same bytes when
	// the digests are equal.
	receiptOK, queryOK bool
	seen               bool // written by the consumer of the answerer's log only
	conflict           bool // the answerer's log holds another receipt with this id
}

type auditor struct {
	view    LedgerView
	keys    *keyBook
	opts    Options
	log     *slog.Logger
	given   map[string][32]byte
	regions map[credit.RegionID]bool
	out     *collector
	xindex  map[xkey]*xentry
	// received: the regions whose received exports were given, read
	// before any answered export.
	received map[credit.RegionID]bool
	audited  map[credit.RegionID]bool
	// answers on revoked consents within Options.RevocationBound
	withinBound atomic.Uint64
	// trust is the ledger's whole record of enterprise identity: the
	// consent decision judges each certificate chain against it at the
	// receipt's time.
	trust *credit.TrustSet
	docMu sync.RWMutex
	docOK map[[32]byte]bool // commitments of documents whose two signatures verified
	// chains caches credit.VerifyEnterpriseChain by commitment: trust
	// does not change during an audit, so a document's chain is
	// verified once however many receipts carry it.
	chains map[[32]byte]*credit.CertifiedKey
	sigs   sigbatch.Verifier
	queues sync.Pool // *sigQueue, a batch's work space
	seed   maphash.Seed
}

// Run audits the exports in in against the ledger view v.
func Run(ctx context.Context, in Inputs, v LedgerView, opts Options) (Report, error) {
	rep := Report{Started: time.Now().UTC()}
	if opts.AnchorDelay <= 0 {
		opts.AnchorDelay = DefaultAnchorDelay
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.MaxFindings <= 0 {
		opts.MaxFindings = DefaultMaxFindings
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	kb, err := newKeyBook(ctx, v)
	if err != nil {
		return rep, err
	}
	kb.retirementBound = opts.RetirementBound
	trust, err := trustOf(ctx, v)
	if err != nil {
		return rep, err
	}
	a := &auditor{
		view: v, keys: kb, opts: opts, log: opts.Logger, trust: trust,
		chains: map[[32]byte]*credit.CertifiedKey{},
		given:  map[string][32]byte{},
		out:    newCollector(opts.MaxFindings),
		xindex: map[xkey]*xentry{}, received: map[credit.RegionID]bool{},
		audited: map[credit.RegionID]bool{},
		docOK:   map[[32]byte]bool{},
		seed:    maphash.MakeSeed(),
	}
	if len(opts.Regions) > 0 {
		a.regions = map[credit.RegionID]bool{}
		for _, r := range opts.Regions {
			a.regions[r] = true
		}
	}
	for i := range in.Consents {
		c, err := in.Consents[i].Commitment()
		if err != nil {
			return rep, fmt.Errorf("%w: consent document %s: %w", ErrInput, in.Consents[i].ID, err)
		}
		a.given[in.Consents[i].ID] = c
	}
	for _, src := range in.ConsentFiles {
		err := readConsentFile(src, func(g credit.ConsentGrant) error {
			c, err := g.Commitment()
			if err == nil {
				a.given[g.ID] = c
			}
			return err
		})
		if err != nil {
			return rep, err
		}
	}

	var answered, received []sourceHeader
	for _, s := range in.Exports {
		h, err := readHeader(s)
		if err != nil {
			return rep, err
		}
		switch h.Kind {
		case credit.ExportAnswered:
			for _, o := range answered {
				if o.h.Region == h.Region {
					return rep, fmt.Errorf("%w: two answered exports of region %s (%s, %s)", ErrInput, h.Region, o.src.Name, s.Name)
				}
			}
			answered = append(answered, sourceHeader{s, h})
		case credit.ExportReceived:
			received = append(received, sourceHeader{s, h})
		}
	}
	for _, s := range answered {
		if a.wantRegion(s.h.Region) {
			a.audited[s.h.Region] = true
		}
	}
	for _, s := range received {
		n, err := a.receivedPass1(ctx, s)
		if err != nil {
			return rep, err
		}
		rep.Received += n
	}
	for _, s := range answered {
		if !a.wantRegion(s.h.Region) {
			continue
		}
		sum, err := a.auditLog(ctx, s)
		if err != nil {
			return rep, err
		}
		rep.Regions = append(rep.Regions, sum)
	}
	for _, s := range received {
		if err := a.receivedPass2(ctx, s); err != nil {
			return rep, err
		}
	}
	rep.Findings, rep.Total, rep.ByRule = a.out.list, a.out.total, a.out.byRule
	rep.Truncated = len(rep.Findings) < rep.Total
	rep.WithinRevocationBound = a.withinBound.Load()
	for i := range rep.Regions {
		rep.Regions[i].Findings = a.out.byRegion[rep.Regions[i].Region]
	}
	rep.Finished = time.Now().UTC()
	return rep, nil
}

func (a *auditor) wantRegion(r credit.RegionID) bool { return a.regions == nil || a.regions[r] }

func (a *auditor) inWindow(t time.Time) bool {
	if !a.opts.Since.IsZero() && t.Before(a.opts.Since) {
		return false
	}
	if !a.opts.Until.IsZero() && !t.Before(a.opts.Until) {
		return false
	}
	return true
}

type sourceHeader struct {
	src Source
	h   credit.ExportHeader
}

func readHeader(s Source) (credit.ExportHeader, error) {
	rc, err := s.Open()
	if err != nil {
		return credit.ExportHeader{}, fmt.Errorf("%w: %s: %w", ErrInput, s.Name, err)
	}
	defer rc.Close()
	er, err := credit.NewExportReader(rc)
	if err != nil {
		return credit.ExportHeader{}, fmt.Errorf("%w: %s: %w", ErrInput, s.Name, err)
	}
	return er.Header(), nil
}

// collector keeps findings up to a bound and counts them all.
type collector struct {
	mu       sync.Mutex
	max      int
	list     []Finding
	total    int
	byRule   map[Rule]int
	byRegion map[credit.RegionID]int
}

func newCollector(max int) *collector {
	return &collector{max: max, list: []Finding{}, byRule: map[Rule]int{}, byRegion: map[credit.RegionID]int{}}
}

func (c *collector) add(f Finding) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total++
	c.byRule[f.Rule]++
	c.byRegion[f.Region]++
	if len(c.list) < c.max {
		c.list = append(c.list, f)
	}
}

// result is a worker's verdict on one line, consumed in file order.
type result struct {
	line       int
	bad        *Finding // the line could not be read as a receipt
	index      uint64
	hasIndex   bool // index was read
	leafBad    bool // the receipt's bytes are not its canonical encoding
	leafHash   [32]byte
	id         string
	answerer   credit.RegionID
	requester  credit.RegionID
	time       time.Time
	digest     [32]byte
	records    int
	inFilter   bool
	receiptBad bool // the answering region's signature fails
	hasAck     bool
	receiptOK  bool // verified in a requester's export (receivedPass1)
	queryOK    bool // verified in a requester's export (receivedPass1)
	ack        credit.Ack
	findings   []Finding
	opErr      error
}

type batch struct {
	buf   []byte // the lines' bytes, one after the other
	ends  []int  // where each line ends in buf
	lines [][]byte
	nos   []int
	errs  []error // why a line could not be read (too long), nil for most
	res   []result
	done  chan struct{}
}

// reset empties b for the next lines, keeping its memory: batches go
// round between the reader and the consumer, so reading a line allocates
// nothing.
func (b *batch) reset() {
	clear(b.res)
	clear(b.errs)
	b.buf, b.ends, b.lines, b.nos, b.res, b.errs = b.buf[:0], b.ends[:0], b.lines[:0], b.nos[:0], b.res[:0], b.errs[:0]
	b.done = make(chan struct{})
}

// batchLines is the lines a worker takes at once. Their signatures (about
// three a line) are verified in one sigbatch, whose cost per signature
// falls as the batch grows (Pippenger's method); a few batches per worker
// in flight still keep memory flat.
const batchLines = 512

// perLine adapts a function of one line to stream's work.
func perLine(f func(line []byte, no int, r *result)) func([][]byte, []int, []result) {
	return func(lines [][]byte, nos []int, res []result) {
		for i := range lines {
			f(lines[i], nos[i], &res[i])
		}
	}
}

// stream reads src's lines after the header, has work run on batches of
// them by opts.Workers goroutines, and hands the results to consume in file order.
// At most a few batches per worker are in flight, so memory stays flat.
func (a *auditor) stream(ctx context.Context, src Source, work func(lines [][]byte, nos []int, res []result), consume func(*result) error) error {
	rc, err := src.Open()
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInput, src.Name, err)
	}
	defer rc.Close()
	er, err := credit.NewExportReader(rc)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInput, src.Name, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan *batch, a.opts.Workers)
	order := make(chan *batch, 4*a.opts.Workers)
	readErr := make(chan error, 1)
	var wg sync.WaitGroup
	for range a.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range jobs {
				work(b.lines, b.nos, b.res)
				close(b.done)
			}
		}()
	}
	// At most cap(order) batches are in flight, and one more is being
	// filled: that many go round through free.
	free := make(chan *batch, cap(order)+1)
	for range cap(free) {
		free <- &batch{}
	}
	go func() {
		defer close(order)
		defer close(jobs)
		var read int64
		newBatch := func() *batch {
			select {
			case b := <-free:
				b.reset()
				return b
			case <-ctx.Done():
				return nil
			}
		}
		b := newBatch()
		if b == nil {
			return
		}
		send := func() bool {
			start := 0
			for _, end := range b.ends {
				b.lines = append(b.lines, b.buf[start:end:end])
				start = end
			}
			b.res = slices.Grow(b.res, len(b.lines))[:len(b.lines)]
			select {
			case order <- b:
			case <-ctx.Done():
				return false
			}
			select {
			case jobs <- b:
			case <-ctx.Done():
				return false
			}
			if a.opts.Progress != nil {
				a.opts.Progress(read)
				read = 0
			}
			b = newBatch()
			return b != nil
		}
		for {
			line, err := er.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil && !errors.Is(err, credit.ErrExportFormat) {
				readErr <- fmt.Errorf("%w: %s: %w", ErrInput, src.Name, err)
				return
			}
			read += int64(len(line) + 1)
			// A line too long to read is handed on as an empty line so
			// that it is reported where it stands, with why.
			b.buf = append(b.buf, line...)
			b.ends = append(b.ends, len(b.buf))
			b.nos = append(b.nos, er.Line())
			b.errs = append(b.errs, err)
			if len(b.ends) == batchLines && !send() {
				return
			}
		}
		if len(b.ends) > 0 {
			send()
		}
	}()
	var firstErr error
	for b := range order {
		select {
		case <-b.done:
		case <-ctx.Done():
		}
		if firstErr != nil || ctx.Err() != nil {
			continue
		}
		for i := range b.res {
			if err := b.errs[i]; err != nil {
				b.res[i] = result{line: b.nos[i], bad: &Finding{Rule: RuleExport, Region: er.Header().Region,
					Source: fmt.Sprintf("%s:%d", src.Name, b.nos[i]), Detail: err.Error()}}
			}
			if err := b.res[i].opErr; err != nil {
				firstErr = err
				break
			}
			if err := consume(&b.res[i]); err != nil {
				firstErr = err
				break
			}
		}
		if firstErr != nil {
			cancel()
			continue
		}
		// Consumed: nothing refers to the batch's lines or results any
		// more (what outlives a line is copied out of it).
		free <- b
	}
	wg.Wait()
	select {
	case err := <-readErr:
		if firstErr == nil {
			firstErr = err
		}
	default:
	}
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

// decodeLine reads one export line into r; it returns false (with r.bad
// set) when the line is not a receipt. msg is what the answering region's
// signature covers, encoded with the digest in one pass.
func decodeLine(src string, h credit.ExportHeader, line []byte, no int, r *result, sq *sigQueue) (l credit.ExportLine, rc credit.Receipt, msg []byte, ok bool) {
	r.line = no
	where := func() string { return fmt.Sprintf("%s:%d", src, no) }
	l, rc, lineErr, rcErr := credit.DecodeExportEntry(line)
	if lineErr != nil {
		r.bad = &Finding{Rule: RuleExport, Region: h.Region, Source: where(), Detail: lineErr.Error()}
		return l, credit.Receipt{}, nil, false
	}
	r.index, r.hasIndex = l.Index, true
	r.leafHash = leafHash(l.Receipt)
	var leaf *uint64
	if h.Kind == credit.ExportAnswered {
		leaf = leafPtr(l.Index)
	}
	if rcErr != nil {
		r.bad = &Finding{Rule: RuleExport, Region: h.Region, Source: where(), Leaf: leaf, Detail: rcErr.Error()}
		return l, rc, nil, false
	}
	r.id, r.answerer, r.requester, r.time, r.records = rc.ID, rc.Answerer, rc.Requester, rc.Time, rc.RecordCount
	n := len(sq.msgs)
	var d [32]byte
	var err error
	sq.msgs, d, err = rc.AppendSignedMessageAndDigest(sq.msgs)
	msg = sq.msgs[n:len(sq.msgs):len(sq.msgs)]
	if err != nil {
		r.bad = &Finding{Rule: RuleExport, Region: h.Region, Source: where(), Receipt: rc.ID, Detail: err.Error()}
		return l, rc, nil, false
	}
	// The receipt is the leaf the region logged, byte for byte: a field
	// added, repeated, renamed or moved changes the leaf but not the
	// signed message, so it is caught here before any root can.
	if !rc.LeafMatches(msg, l.Receipt) {
		r.leafBad = true
		r.findings = append(r.findings, Finding{Rule: RuleExport, Region: h.Region, Source: where(), Receipt: rc.ID, Leaf: leaf,
			Detail: "the receipt's bytes are not its canonical encoding (a field was added, repeated, renamed, moved or respelled): not the leaf the region logged"})
	}
	r.digest = d
	return l, rc, msg, true
}

// leafHash is RFC 6962's leaf hash, SHA-256(0x00 || leaf).
func leafHash(leaf []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(leaf)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func ackEqual(a, b *credit.Ack) bool {
	return a.ReceiptID == b.ReceiptID && a.Requester == b.Requester && a.Time.Equal(b.Time) &&
		bytes.Equal(a.ReceiptDigest, b.ReceiptDigest) && bytes.Equal(a.Sig, b.Sig)
}
