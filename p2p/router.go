package p2p

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/prdcredit/ccnode/credit"
)

// Status is one region's outcome of a query.
type Status string

// Outcomes.
const (
	// StatusAnswered: a verified slice with records and its receipt.
	StatusAnswered Status = "answered"
	// StatusNoData: a verified receipt for an empty slice.
	StatusNoData Status = "no_data"
	// StatusRefused: the region refused; Err is an *Error with the code.
	StatusRefused Status = "refused"
	// StatusUnreachable: no answer within the timeout (no route, dial or
	// stream failure); Err wraps ErrUnreachable. Retrying can help.
	StatusUnreachable Status = "unreachable"
	// StatusBadAnswer: an answer arrived but failed verification (receipt
	// signature, digest, count, query or regions); the data is dropped and
	// Err wraps ErrBadAnswer. Evidence of a faulty or dishonest region.
	StatusBadAnswer Status = "bad_answer"
)

// Errors of the requesting side.
var (
	ErrUnreachable = errors.New("region unreachable")
	ErrBadAnswer   = errors.New("answer failed verification")
)

// RegionResult is one region's outcome.
type RegionResult struct {
	Region credit.RegionID
	// Registration marks the subject's registration region.
	Registration bool
	Status       Status
	// Report and Receipt are set, verified, for answered and no_data.
	Report    *credit.Report
	Receipt   *credit.Receipt
	LeafIndex uint64
	Err       error
	Elapsed   time.Duration
}

// Result is a query's outcome per region, in the order asked: the
// registration region first, then the others by id.
type Result struct {
	Regions []RegionResult
}

// RouterConfig holds the requesting side's identity and dependencies.
type RouterConfig struct {
	Host      host.Host
	NetworkID string
	Region    credit.RegionID
	Key       ed25519.PrivateKey
	Members   *Membership
	// Local answers this node's own region in-process (a libp2p host
	// cannot open a stream to itself); nil leaves the region out.
	Local *Server
	// Timeout bounds each region's exchange (default 3 s).
	Timeout time.Duration
	Now     func() time.Time
	Logger  *slog.Logger
}

// DefaultRegionTimeout bounds one region's answer.
const DefaultRegionTimeout = 3 * time.Second

// Router asks regions for their slices of a subject's report and verifies
// every answer before returning it.
type Router struct {
	cfg RouterConfig
	log *slog.Logger
	// sigs batches the receipt checks of answers arriving together.
	sigs sigGate
}

// NewRouter checks cfg and applies defaults.
func NewRouter(cfg RouterConfig) (*Router, error) {
	switch {
	case cfg.Host == nil:
		return nil, &ConfigError{"host", credit.ErrMissing}
	case cfg.NetworkID == "":
		return nil, &ConfigError{"network_id", credit.ErrMissing}
	case credit.ValidateRegionID(cfg.Region) != nil:
		return nil, &ConfigError{"region", credit.ValidateRegionID(cfg.Region)}
	case len(cfg.Key) != ed25519.PrivateKeySize:
		return nil, &ConfigError{"key", ErrBadKey}
	case cfg.Members == nil:
		return nil, &ConfigError{"members", credit.ErrMissing}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultRegionTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Router{cfg: cfg, log: log}, nil
}

// Query asks, in parallel, the subject's registration region and every
// other active member region (a consolidated report), each within the
// per-region timeout.
func (r *Router) Query(ctx context.Context, q *credit.Query) Result {
	reg, _ := r.cfg.Members.RegistrationRegion(q.Subject)
	ids := []credit.RegionID{}
	if reg != "" {
		ids = append(ids, reg)
	}
	for _, m := range r.cfg.Members.Active() {
		if m.ID != reg {
			ids = append(ids, m.ID)
		}
	}
	return r.QueryRegions(ctx, q, ids)
}

// QueryRegions asks the named regions in parallel.
func (r *Router) QueryRegions(ctx context.Context, q *credit.Query, regions []credit.RegionID) Result {
	reg, _ := r.cfg.Members.RegistrationRegion(q.Subject)
	res := Result{Regions: make([]RegionResult, len(regions))}
	qj, _, err := q.CanonicalAndDigest()
	if err != nil {
		for i, id := range regions {
			res.Regions[i] = RegionResult{Region: id, Status: StatusRefused, Err: &Error{Code: CodeBadRequest, Msg: err.Error(), Err: err}}
		}
		return res
	}
	frame := appendRequest(r.cfg.Region, qj)
	var wg sync.WaitGroup
	one := func(i int, id credit.RegionID) {
		res.Regions[i] = r.ask(ctx, id, q, qj, frame)
		res.Regions[i].Registration = id == reg
	}
	// The last region is asked on the caller's goroutine, which would
	// otherwise only wait: one goroutine fewer per query, and for a
	// single region none, so no new stack to grow under the receipt's
	// checks.
	for i, id := range regions[:max(len(regions)-1, 0)] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			growStack()
			one(i, id)
		}()
	}
	if n := len(regions); n > 0 {
		one(n-1, regions[n-1])
	}
	wg.Wait()
	return res
}

// Ask asks one region.
func (r *Router) Ask(ctx context.Context, region credit.RegionID, q *credit.Query) RegionResult {
	res := r.QueryRegions(ctx, q, []credit.RegionID{region})
	return res.Regions[0]
}

func (r *Router) ask(ctx context.Context, region credit.RegionID, q *credit.Query, qj, frame []byte) RegionResult {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	out := RegionResult{Region: region}
	m, err := r.cfg.Members.Region(region)
	if err != nil {
		out.Status, out.Err = StatusUnreachable, fmt.Errorf("%w: %w", ErrUnreachable, err)
		return out
	}
	var resp *Response
	if region == r.cfg.Region {
		resp, err = r.local(ctx, q)
	} else {
		resp, err = r.remote(ctx, region, frame)
	}
	out.Elapsed = time.Since(start)
	if err != nil {
		var refusal *Error
		switch {
		case errors.As(err, &refusal):
			out.Status = StatusRefused
		case errors.Is(err, ErrBadAnswer):
			out.Status = StatusBadAnswer
		default:
			out.Status = StatusUnreachable
		}
		out.Err = err
		return out
	}
	if resp.Err != nil {
		out.Status, out.Err = StatusRefused, resp.Err
		return out
	}
	if err := r.verify(q, qj, m, resp); err != nil {
		r.log.Warn("answer failed verification", "region", region, "err", err)
		out.Status, out.Err = StatusBadAnswer, err
		return out
	}
	out.Status = StatusAnswered
	if resp.Receipt.RecordCount == 0 {
		out.Status = StatusNoData
	}
	out.Report, out.Receipt, out.LeafIndex = &resp.Report, &resp.Receipt, resp.LeafIndex
	return out
}

// local answers the node's own region through the server's Answer, the
// function the report protocol handler runs, with the host's own peer id.
func (r *Router) local(ctx context.Context, q *credit.Query) (*Response, error) {
	if r.cfg.Local == nil {
		return nil, fmt.Errorf("%w: no local server for region %s", ErrUnreachable, r.cfg.Region)
	}
	qc := *q
	qc.Categories = append([]credit.Category(nil), q.Categories...)
	return r.cfg.Local.Answer(ctx, r.cfg.Host.ID(), &Request{Requester: r.cfg.Region, Query: qc})
}

func (r *Router) remote(ctx context.Context, region credit.RegionID, frame []byte) (*Response, error) {
	p, ok := r.cfg.Members.Peer(region)
	if !ok {
		return nil, fmt.Errorf("%w: region %s is not a member", ErrUnreachable, region)
	}
	st, err := r.cfg.Host.NewStream(ctx, p, ReportProtocol(r.cfg.NetworkID))
	if err != nil {
		return nil, fmt.Errorf("%w: region %s: %w", ErrUnreachable, region, err)
	}
	// Cancelling ctx must unblock a read that is waiting on the peer.
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	if err := WriteFrame(st, frame); err != nil {
		_ = st.Reset()
		return nil, fmt.Errorf("%w: region %s: sending request: %w", ErrUnreachable, region, err)
	}
	_ = st.CloseWrite()
	b, err := ReadFrame(st, MaxResponseFrame)
	if err != nil {
		_ = st.Reset()
		if errors.Is(err, ErrFrameTooLarge) {
			return nil, fmt.Errorf("%w: region %s: %w", ErrBadAnswer, region, err)
		}
		return nil, fmt.Errorf("%w: region %s: reading answer: %w", ErrUnreachable, region, err)
	}
	_ = st.Close()
	resp, err := DecodeResponse(b)
	if err != nil {
		return nil, fmt.Errorf("%w: region %s: %w", ErrBadAnswer, region, err)
	}
	return resp, nil
}

// verify checks an answer before its data is used: the receipt is signed
// by the answering region's ledger key, names this query (whose canonical
// encoding is qj) and both regions, and its digest and count match the
// slice received.
func (r *Router) verify(q *credit.Query, qj []byte, m credit.RegionMember, resp *Response) error {
	rc := &resp.Receipt
	if rc.Answerer != m.ID || rc.Requester != r.cfg.Region {
		return fmt.Errorf("%w: receipt names %s→%s", ErrBadAnswer, rc.Answerer, rc.Requester)
	}
	names, err := rc.VerifyNamesQuery(m.PubKey, qj, r.sigs.verify)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadAnswer, err)
	}
	if !names {
		return fmt.Errorf("%w: receipt %s names another query", ErrBadAnswer, rc.ID)
	}
	d := resp.Report.Digest()
	if !bytes.Equal(d[:], rc.ReportDigest) || rc.RecordCount != resp.Report.Count() || resp.Report.Subject != q.Subject {
		return fmt.Errorf("%w: receipt %s: digest or count differs from the slice", ErrBadAnswer, rc.ID)
	}
	if !credit.CategoriesSubset(resp.Report.Categories(), q.Categories) {
		return fmt.Errorf("%w: slice has categories outside the query", ErrBadAnswer)
	}
	return nil
}

// Ack signs this node's acknowledgement of a verified receipt and delivers
// it to the answering region.
func (r *Router) Ack(ctx context.Context, rc *credit.Receipt) (credit.Ack, error) {
	a, err := credit.NewAck(rc, r.cfg.Region, r.cfg.Now(), r.cfg.Key)
	if err != nil {
		return credit.Ack{}, err
	}
	return a, r.Acknowledge(ctx, rc.Answerer, a)
}

// Acknowledge delivers a signed ack to the answering region (in-process
// for this node's own region). A refusal is an *Error.
func (r *Router) Acknowledge(ctx context.Context, region credit.RegionID, a credit.Ack) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	if region == r.cfg.Region {
		if r.cfg.Local == nil {
			return fmt.Errorf("%w: no local server for region %s", ErrUnreachable, region)
		}
		return r.cfg.Local.Acknowledge(ctx, r.cfg.Host.ID(), &a)
	}
	p, ok := r.cfg.Members.Peer(region)
	if !ok {
		return fmt.Errorf("%w: region %s is not a member", ErrUnreachable, region)
	}
	frame, err := EncodeAck(&a)
	if err != nil {
		return err
	}
	st, err := r.cfg.Host.NewStream(ctx, p, AckProtocol(r.cfg.NetworkID))
	if err != nil {
		return fmt.Errorf("%w: region %s: %w", ErrUnreachable, region, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	if err := WriteFrame(st, frame); err != nil {
		_ = st.Reset()
		return fmt.Errorf("%w: region %s: %w", ErrUnreachable, region, err)
	}
	_ = st.CloseWrite()
	b, err := ReadFrame(st, MaxAckFrame)
	if err != nil {
		_ = st.Reset()
		return fmt.Errorf("%w: region %s: %w", ErrUnreachable, region, err)
	}
	_ = st.Close()
	refusal, err := DecodeAckResponse(b)
	if err != nil {
		return fmt.Errorf("%w: region %s: %w", ErrBadAnswer, region, err)
	}
	if refusal != nil {
		return refusal
	}
	return nil
}
