package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/p2p/pb"
)

// ClientConfig configures the requesting side's transport.
type ClientConfig struct {
	Host      host.Host
	NetworkID string
	Members   *Membership
	Timeout   time.Duration // per exchange (default 3 s)
	// MaxAnswerBytes bounds one answer's records on the wire (default 512 MiB): beyond it the
	// answer is dropped as ErrBadAnswer.
	MaxAnswerBytes int64
	// IdleTimeout bounds how long a stream whose exchange ended is kept
	// for the next exchange with its region (default DefaultClientIdle,
	// well within the answerer's ServerConfig.IdleTimeout).
	IdleTimeout time.Duration
	Logger      *slog.Logger
}

// Client defaults.
const (
	DefaultClientTimeout  = 3 * time.Second
	DefaultMaxAnswerBytes = 512 << 20
	DefaultClientIdle     = 30 * time.Second
	// maxIdleStreams bounds the streams kept per region: each is an
	// inbound stream the region's resource manager counts against its
	// limits for the peer and for all of them (the answering side's
	// ServerConfig.MaxConcurrent is 256 exchanges in all).
	maxIdleStreams = 64
)

// Client is the requesting side's transport: it sends requests to
// regions' peers, reads their answers and sends the acks back. It verifies
// nothing: the node checks every receipt. A region that speaks
// ReportsProtocol is asked on a stream kept from an earlier exchange when
// one is idle.
type Client struct {
	cfg ClientConfig
	log *slog.Logger

	mu     sync.Mutex
	idle   map[peer.ID][]idleStream // most recently used last
	closed bool                     // Close ran: no stream is kept any more
	acks   sync.WaitGroup           // exchanges waiting for their AckResponse
}

type idleStream struct {
	st    network.Stream
	since time.Time
}

// NewClient checks cfg and applies defaults.
func NewClient(cfg ClientConfig) (*Client, error) {
	switch {
	case cfg.Host == nil:
		return nil, &ConfigError{"host", credit.ErrMissing}
	case cfg.NetworkID == "":
		return nil, &ConfigError{"network_id", credit.ErrMissing}
	case cfg.Members == nil:
		return nil, &ConfigError{"members", credit.ErrMissing}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultClientTimeout
	}
	// No exchange of this client outlives its deadline, so a peer that
	// left the membership is kept no longer for it.
	cfg.Members.setDrain(cfg.Timeout)
	if cfg.MaxAnswerBytes <= 0 {
		cfg.MaxAnswerBytes = DefaultMaxAnswerBytes
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultClientIdle
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, log: log, idle: map[peer.ID][]idleStream{}}, nil
}

// take returns an idle stream to p that may carry an exchange, if any,
// dropping those past the idle bound or on a closed connection.
func (c *Client) take(p peer.ID) network.Stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.idle[p]
	for len(l) > 0 {
		is := l[len(l)-1]
		l = l[:len(l)-1]
		if time.Since(is.since) < c.cfg.IdleTimeout && !is.st.Conn().IsClosed() {
			c.idle[p] = l
			return is.st
		}
		_ = is.st.Reset()
	}
	delete(c.idle, p)
	return nil
}

// keep makes st, whose exchange with p ended cleanly, idle for the next.
func (c *Client) keep(p peer.ID, st network.Stream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.idle[p]
	if c.closed || len(l) >= maxIdleStreams {
		_ = st.Close()
		return
	}
	// The oldest are the first to pass the idle bound; they are dropped
	// when met.
	for len(l) > 0 && time.Since(l[0].since) >= c.cfg.IdleTimeout {
		_ = l[0].st.Close()
		l = l[1:]
	}
	c.idle[p] = append(l, idleStream{st: st, since: time.Now()})
}

// Close waits for the acks in flight to be answered (each within its
// exchange's deadline), then closes the idle streams.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.acks.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, l := range c.idle {
		for _, is := range l {
			_ = is.st.Close()
		}
		delete(c.idle, p)
	}
	return nil
}

// Reply is a region's answer as received.
type Reply struct {
	Receipt     credit.Receipt // decoded, NOT verified (the node verifies)
	ReceiptJSON []byte         // the receipt bytes as received
	LeafIndex   uint64
	Records     []credit.Record // in the order sent; USCC filled from the receipt's query subject
	// Acked tells whether an ack was sent; AckOutcome waits for what
	// the region said of it. A lost ack leaves the reply as good as it was.
	Acked bool

	ack      *ackState // the ack's outcome, written after Ask returned
	detached bool      // the AckResponse is read after Ask returned
}

// ackState is what became of an ack: err is set before done is closed.
type ackState struct {
	done chan struct{}
	err  error
}

// AckOutcome waits for the region's AckResponse to the ack sent for r and
// returns nil once the region stored it, its *credit.Refusal, or an error
// wrapping ErrUnreachable or ErrBadAnswer; nil at once when no ack was
// sent. Ask does not wait for it: the ack is evidence for the region's
// log, and the requester holds its own copy.
func (r *Reply) AckOutcome() error {
	if r.ack == nil {
		return nil
	}
	<-r.ack.done
	return r.ack.err
}

// Acker checks a reply and signs the ack that goes back to the region on
// the answer's own stream; nil sends none (the reply is not acknowledged).
// Once an Acker returned an ack, Ask returns the reply and no error,
// whatever happens to the ack: its outcome is Reply.AckOutcome.
type Acker func(*Reply) *credit.Ack

// exchange is one exchange with a region on a stream: opened (or taken
// idle) within ctx, reset when ctx ends first.
type exchange struct {
	c       *Client
	ctx     context.Context
	region  credit.RegionID
	peer    peer.ID
	st      network.Stream
	reuse   bool // ReportsProtocol: the stream may carry the next exchange
	kept    bool // the stream carried an exchange before this one
	clean   bool // the exchange ended with an AckResponse that stored the ack
	stop    func() bool
	release func() // the exchange is no longer in flight (Membership.hold)
}

func (c *Client) open(ctx context.Context, region credit.RegionID, mayKeep bool) (*exchange, error) {
	p, ok := c.cfg.Members.Peer(region)
	if !ok {
		return nil, fmt.Errorf("%w: region %s is not a member", ErrUnreachable, region)
	}
	// Held from before the stream opens: a retirement of the region from
	// now on lets this exchange finish.
	release := c.cfg.Members.hold(p)
	var st network.Stream
	if mayKeep {
		st = c.take(p)
	}
	kept := st != nil
	if st == nil {
		var err error
		st, err = c.cfg.Host.NewStream(ctx, p, ReportsProtocol(c.cfg.NetworkID), ReportProtocol(c.cfg.NetworkID))
		if err != nil {
			release()
			return nil, fmt.Errorf("%w: region %s: %w", ErrUnreachable, region, err)
		}
	}
	// Cancelling ctx must unblock a read that is waiting on the peer.
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	return &exchange{c: c, ctx: ctx, region: region, peer: p, st: st, reuse: st.Protocol() == ReportsProtocol(c.cfg.NetworkID),
		kept: kept, stop: stop, release: release}, nil
}

// send writes a frame and, when last, closes the stream's write side.
func (x *exchange) send(frame []byte, last bool) error {
	if _, err := x.st.Write(frame); err != nil {
		return x.unreachable("sending", err)
	}
	if last {
		_ = x.st.CloseWrite()
	}
	return nil
}

// read reads one frame of at most max bytes; a frame over the limit is a
// bad answer, anything else failing is the region unreachable.
func (x *exchange) read(max int, buf []byte) ([]byte, error) {
	b, err := readFrame(x.st, max, buf)
	switch {
	case err == nil:
		return b, nil
	case errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrMalformed):
		return nil, x.bad("%w", err)
	}
	return nil, x.unreachable("reading", err)
}

func (x *exchange) unreachable(what string, err error) error {
	if cerr := context.Cause(x.ctx); cerr != nil {
		err = cerr
	}
	return fmt.Errorf("%w: region %s: %s: %w", ErrUnreachable, x.region, what, err)
}

func (x *exchange) bad(format string, args ...any) error {
	return fmt.Errorf("%w: region %s: %w", ErrBadAnswer, x.region, fmt.Errorf(format, args...))
}

// end keeps the stream for the next exchange after a clean one on
// ReportsProtocol, closes it after another whole exchange (an answer or a
// refusal), or resets it after a failed one.
func (x *exchange) end(err error) {
	stopped := x.stop()
	defer x.release()
	switch {
	case err != nil && credit.RefusalOf(err) == nil, !stopped:
		_ = x.st.Reset()
	case err == nil && x.reuse && x.clean && x.c.cfg.Members.Admits(x.peer):
		x.c.keep(x.peer, x.st)
	default:
		_ = x.st.Close()
	}
}

// Ask sends the request to the region's peer and reads the whole answer;
// then, on the same stream, it sends the ack that ack (nil: none) signs for
// the reply; whether the region stored it is read after Ask returns
// (Reply.AckOutcome), as the requester needs nothing from it.
// Errors: a *credit.Refusal exactly as the region sent it (code and message);
// an error wrapping ErrUnreachable (no peer, dial, stream, timeout); or wrapping ErrBadAnswer
// (frames that do not decode, too large, records after the end...).
func (c *Client) Ask(ctx context.Context, region credit.RegionID, request []byte, ack Acker) (*Reply, error) {
	// The exchange outlives ctx once its ack is sent (its AckResponse is
	// read after Ask returns): ctx's end cuts it only until then, with
	// its cause (a deadline stays a deadline).
	cut, cutCancel := context.WithCancelCause(context.WithoutCancel(ctx))
	xctx, cancel := context.WithTimeout(cut, c.cfg.Timeout)
	stop := context.AfterFunc(ctx, func() { cutCancel(context.Cause(ctx)) })
	unhook := func() { stop() }
	end := func() { stop(); cancel(); cutCancel(nil) }
	reply, again, err := c.ask(xctx, region, request, ack, true, unhook, end)
	if again {
		reply, _, err = c.ask(xctx, region, request, ack, false, unhook, end)
	}
	if reply == nil || !reply.detached {
		end()
	}
	return reply, err
}

// ask is one try of Ask, on a kept stream when mayKeep and one is idle.
// again: it failed on a kept stream before any answer came, as when the
// region closed the stream meanwhile (past its idle bound, or restarting):
// worth one more try on a new stream. Had the region read the request and
// failed before answering, the try gets its refusal of the replayed query.
//
// Once the ack is sent, the region's AckResponse is read on a goroutine
// of its own (Reply.AckOutcome; Close waits for it): ask calls unhook
// then, so that the caller's context no longer cuts the exchange, and the
// goroutine calls end once the exchange ended.
func (c *Client) ask(ctx context.Context, region credit.RegionID, request []byte, ack Acker, mayKeep bool, unhook, end func()) (_ *Reply, again bool, err error) {
	x, err := c.open(ctx, region, mayKeep)
	if err != nil {
		return nil, false, err
	}
	detached := false
	var ackErr error // the ack's own failure, when Ask returns after it
	defer func() {
		if !detached {
			x.end(errors.Join(err, ackErr))
		}
	}()
	// A region that refuses a request before reading all of it (too
	// large) closes its read side, so writing can fail while its refusal
	// is on the way: read it all the same.
	sendErr := x.send(request, ack == nil)
	b, err := x.read(MaxResponseFrame, nil)
	if err != nil {
		if sendErr != nil {
			err = sendErr
		}
		return nil, x.kept && errors.Is(err, ErrUnreachable) && ctx.Err() == nil, err
	}
	receipt, leaf, err := DecodeResponse(b)
	if r := credit.RefusalOf(err); r != nil {
		return nil, false, r
	}
	if sendErr != nil {
		return nil, false, sendErr
	}
	if err != nil {
		return nil, false, x.bad("%w", err)
	}
	rc, err := decodeReceipt(receipt)
	if err != nil {
		return nil, false, x.bad("receipt: %w", err)
	}
	reply := &Reply{Receipt: rc, ReceiptJSON: receipt, LeafIndex: leaf}
	if reply.Records, err = c.readChunks(x, rc.Query.Subject, rc.RecordCount); err != nil {
		return nil, false, err
	}
	var a *credit.Ack
	if ack != nil {
		a = ack(reply)
	}
	if a == nil {
		// Nothing may follow the last chunk: the region closes once it
		// sees that no ack comes.
		if ack != nil {
			_ = x.st.CloseWrite()
		}
		if err := x.atEnd("data after the last chunk"); err != nil {
			return nil, false, err
		}
		return reply, false, nil
	}
	reply.Acked, reply.ack = true, &ackState{done: make(chan struct{})}
	frame, ackErr := encodeAck(a)
	if ackErr == nil {
		ackErr = x.send(frame, !x.reuse)
	}
	if ackErr != nil {
		c.ackEnded(x, reply, ackErr)
		return reply, false, nil
	}
	if !c.detach() {
		// Closing: the AckResponse is read before Ask returns.
		ackErr = x.ackResponse()
		c.ackEnded(x, reply, ackErr)
		return reply, false, nil
	}
	detached, reply.detached = true, true
	unhook()
	go func() {
		defer c.acks.Done()
		defer end()
		err := x.ackResponse()
		c.ackEnded(x, reply, err)
		x.end(err) // a refused ack closes the stream, a failed one resets it
	}()
	return reply, false, nil
}

// detach counts an exchange whose AckResponse is read after Ask returns;
// false once Close began.
func (c *Client) detach() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.acks.Add(1)
	return true
}

// ackEnded records what became of the ack sent for reply.
func (c *Client) ackEnded(x *exchange, reply *Reply, err error) {
	if err != nil {
		c.log.Warn("ack not delivered", "region", x.region, "receipt", reply.Receipt.ID, "err", err)
	}
	reply.ack.err = err
	close(reply.ack.done)
}

// ackResponse reads the region's AckResponse to the ack sent, the last
// frame of the exchange.
func (x *exchange) ackResponse() error {
	b, err := x.read(MaxAckFrame, nil)
	if err != nil {
		return err
	}
	var m pb.AckResponse
	if err := proto.Unmarshal(b, &m); err != nil {
		return x.bad("%w: %w", ErrMalformed, err)
	}
	// The AckResponse is the exchange's last frame: the stream is closed
	// (or kept) without waiting for the region's end of stream, a frame of
	// yamux that can arrive in a write and a wakeup of its own.
	if m.Error != nil {
		return refusalOf(m.Error)
	}
	x.clean = true
	return nil
}

// atEnd checks that the region closed its side with nothing more sent.
func (x *exchange) atEnd(what string) error {
	var one [1]byte
	if n, err := x.st.Read(one[:]); n > 0 || !errors.Is(err, io.EOF) {
		if n > 0 {
			return x.bad("%s", what)
		}
		return x.unreachable("reading the end", err)
	}
	return nil
}

// readChunks reads Chunk frames up to the last, within MaxAnswerBytes.
func (c *Client) readChunks(x *exchange, subject credit.USCC, count int) ([]credit.Record, error) {
	// The receipt's count sizes the slice, within what MaxAnswerBytes can
	// hold (a record takes at least a few bytes on the wire).
	recs := make([]credit.Record, 0, min(max(count, 0), int(c.cfg.MaxAnswerBytes/16), 1<<20))
	var total int64
	var buf []byte
	for {
		b, err := x.read(MaxChunkFrame, buf)
		if err != nil {
			return nil, err
		}
		buf = b[:0]
		if total += int64(len(b)); total > c.cfg.MaxAnswerBytes {
			return nil, x.bad("answer exceeds %d bytes", c.cfg.MaxAnswerBytes)
		}
		var last bool
		if recs, last, err = DecodeChunk(b, subject, recs); err != nil {
			return nil, x.bad("%w", err)
		}
		if last {
			return recs, nil
		}
	}
}
