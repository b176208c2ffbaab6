package p2p

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/p2p/pb"
)

// ReportProtocol is the report protocol of a consortium: one request
// frame, then a Response frame and, after a receipt, Chunk frames; then
// the requester's Ack frame and the answerer's AckResponse, or the end of
// the requester's side when it does not acknowledge.
func ReportProtocol(networkID string) protocol.ID { return reportProtocol(networkID, "3.0.0") }

// ReportsProtocol is ReportProtocol with exchanges one after another on a
// stream: after an AckResponse the answerer waits for the next Request
// frame (at most ServerConfig.IdleTimeout) instead of closing, and the
// requester keeps the stream for its next exchange with the region instead
// of closing its side after the ack. A refusal, or an answer the requester
// does not acknowledge, ends the stream as in ReportProtocol. A stream
// then costs its opening, protocol negotiation and closing frames once for
// many exchanges instead of once for each.
func ReportsProtocol(networkID string) protocol.ID { return reportProtocol(networkID, "4.0.0") }

func reportProtocol(networkID, version string) protocol.ID {
	return protocol.ID("/ccnode/" + networkID + "/report/" + version)
}

// Request is a report request as the answering side receives it.
type Request struct {
	Requester credit.RegionID
	Query     credit.Query // decoded from QueryJSON
	QueryJSON []byte       // the query's canonical JSON bytes as sent
}

// Handler is the node's answering pipeline as the transport sees it.
type Handler interface {
	// Answer answers req from the remote peer `from`, writing to w. Before w.Begin it may
	// return a refusal (*credit.Refusal; any other error is sent as credit.CodeUnavailable).
	// After w.Begin an error resets the stream (the requester sees the region unreachable).
	Answer(ctx context.Context, from peer.ID, req *Request, w AnswerWriter) error
	// Acknowledge checks and stores an ack from the remote peer `from`, sent on the stream
	// of the answer whose receipt (in its leaf form, as Begin had it) is receiptLeaf: nil or
	// a refusal.
	Acknowledge(ctx context.Context, from peer.ID, receiptLeaf []byte, ack *credit.Ack) error
}

// AnswerWriter carries one answer: Begin once with the signed receipt in its leaf form
// (credit.Receipt.SignLeaf's bytes; already durable in the answerer's log) and its leaf index,
// then the slice's records in (category, date) order over any number of Records calls.
// The server cuts them into frames of at most ServerConfig.ChunkBytes; memory stays bounded
// by a chunk, never the whole slice.
type AnswerWriter interface {
	Begin(receiptLeaf []byte, leafIndex uint64) error
	Records(recs []credit.Record) error
}

// ServerConfig configures the answering side's transport.
type ServerConfig struct {
	NetworkID     string
	Handler       Handler
	Timeout       time.Duration // one exchange, first byte read to last written (default 10 s)
	MaxConcurrent int           // default 256; beyond: refused credit.CodeUnavailable
	ChunkBytes    int           // default 1 MiB
	// IdleTimeout bounds how long a ReportsProtocol stream waits for its
	// next request (default 2 min; a requester keeps an idle stream for
	// less, DefaultClientIdle).
	IdleTimeout time.Duration
	// Members, when set, counts each exchange in flight, so that a peer
	// leaving the membership is disconnected only once it ends.
	Members *Membership
	Logger  *slog.Logger
}

// Defaults and bounds.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultIdleTimeout   = 2 * time.Minute
	DefaultMaxConcurrent = 256
	DefaultChunkBytes    = 1 << 20
	// MinChunkBytes holds the largest valid record (credit.MaxAttrsBytes
	// of attributes and its short fields) in one chunk.
	MinChunkBytes = 32 << 10
)

// Server serves the report protocol: it reads frames, hands them
// to the Handler and writes what the Handler answers. It makes no credit
// decision of its own.
type Server struct {
	cfg ServerConfig
	log *slog.Logger
	sem chan struct{}

	mu       sync.Mutex
	host     host.Host
	closed   bool
	handlers sync.WaitGroup
	idle     map[network.Stream]struct{} // ReportsProtocol streams waiting for a request
	// active holds a channel per exchange in progress, closed when it
	// ends (Settle).
	active  map[chan struct{}]struct{}
	closing chan struct{} // closed by Close: Settle waits no longer
}

// NewServer checks cfg and applies defaults.
func NewServer(cfg ServerConfig) (*Server, error) {
	switch {
	case cfg.NetworkID == "":
		return nil, &ConfigError{"network_id", credit.ErrMissing}
	case cfg.Handler == nil:
		return nil, &ConfigError{"handler", credit.ErrMissing}
	case cfg.ChunkBytes != 0 && (cfg.ChunkBytes < MinChunkBytes || cfg.ChunkBytes > MaxChunkFrame):
		return nil, &ConfigError{"chunk_bytes", fmt.Errorf("%d: want %d to %d", cfg.ChunkBytes, MinChunkBytes, MaxChunkFrame)}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.ChunkBytes == 0 {
		cfg.ChunkBytes = DefaultChunkBytes
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log, sem: make(chan struct{}, cfg.MaxConcurrent), idle: map[network.Stream]struct{}{},
		active: map[chan struct{}]struct{}{}, closing: make(chan struct{})}, nil
}

// Register serves the protocol on h until Close.
func (s *Server) Register(h host.Host) {
	s.mu.Lock()
	s.host = h
	s.mu.Unlock()
	h.SetStreamHandler(ReportProtocol(s.cfg.NetworkID), s.handler(s.serveReport))
	h.SetStreamHandler(ReportsProtocol(s.cfg.NetworkID), s.handler(s.serveReports))
}

// Close stops serving, ends the streams waiting for a request and waits
// for the exchanges in progress to finish. Safe to call twice.
func (s *Server) Close() error {
	s.mu.Lock()
	h := s.host
	if !s.closed {
		close(s.closing)
	}
	s.host, s.closed = nil, true
	for st := range s.idle {
		_ = st.Reset()
	}
	s.mu.Unlock()
	if h != nil {
		h.RemoveStreamHandler(ReportProtocol(s.cfg.NetworkID))
		h.RemoveStreamHandler(ReportsProtocol(s.cfg.NetworkID))
	}
	s.handlers.Wait()
	return nil
}

// enter registers a stream handler in progress; false once closed.
func (s *Server) enter(st network.Stream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = st.Reset()
		return false
	}
	s.handlers.Add(1)
	return true
}

// handler is a protocol's stream handler: counted until it returns (Close
// waits for it).
func (s *Server) handler(serve func(st network.Stream, from peer.ID)) network.StreamHandler {
	return func(st network.Stream) {
		growStack()
		if !s.enter(st) {
			return
		}
		defer s.handlers.Done()
		serve(st, st.Conn().RemotePeer())
	}
}

// hold counts an exchange with from in flight until the returned func is
// called: for Settle, and for the membership (Membership.hold) when
// ServerConfig.Members is set.
func (s *Server) hold(from peer.ID) (release func()) {
	done := make(chan struct{})
	s.mu.Lock()
	s.active[done] = struct{}{}
	s.mu.Unlock()
	member := func() {}
	if s.cfg.Members != nil {
		member = s.cfg.Members.hold(from)
	}
	return func() {
		member()
		s.mu.Lock()
		delete(s.active, done)
		s.mu.Unlock()
		close(done)
	}
}

// Settle waits, within ctx and until Close, for every exchange in progress
// when it was called to end. A requester sends its ack after the answer it holds
// and does not wait for the AckResponse, so an answer the requester
// already gave on may still have its ack on the way: an export of the
// receipt log that first settles carries the acks of every answer its
// requester had by then (or the exchange failed).
func (s *Server) Settle(ctx context.Context) error {
	s.mu.Lock()
	waits := make([]chan struct{}, 0, len(s.active))
	for ch := range s.active {
		waits = append(waits, ch)
	}
	s.mu.Unlock()
	for _, ch := range waits {
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d exchanges in progress: %w", len(waits), ctx.Err())
		case <-s.closing:
			return fmt.Errorf("waiting for %d exchanges in progress: %w", len(waits), ErrServerClosed)
		}
	}
	return nil
}

// serveReport runs one ReportProtocol exchange within the exchange's
// deadline, counted in flight for the whole stream, and closes the stream.
func (s *Server) serveReport(st network.Stream, from peer.ID) {
	defer s.hold(from)()
	_ = st.SetDeadline(time.Now().Add(s.cfg.Timeout))
	b, err := ReadFrame(st, MaxRequestFrame)
	if s.exchange(st, from, b, err, false) {
		_ = st.Close()
	}
}

// serveReports serves a ReportsProtocol stream: exchanges one after
// another, each within the exchange timeout and counted in flight on its
// own, until the requester closes the stream, it stays idle past
// IdleTimeout, an exchange ends it, or the server closes.
func (s *Server) serveReports(st network.Stream, from peer.ID) {
	for {
		if !s.waiting(st, true) {
			return
		}
		_ = st.SetDeadline(time.Now().Add(s.cfg.IdleTimeout))
		b, err := ReadFrame(st, MaxRequestFrame)
		if !s.waiting(st, false) {
			return
		}
		if errors.Is(err, io.EOF) {
			_ = st.Close() // the requester is done with the stream
			return
		}
		if err != nil && !errors.Is(err, ErrFrameTooLarge) && !errors.Is(err, ErrMalformed) && !errors.Is(err, io.ErrUnexpectedEOF) {
			_ = st.Reset() // idle past the bound, or reset: nobody to answer
			return
		}
		_ = st.SetDeadline(time.Now().Add(s.cfg.Timeout))
		release := s.hold(from)
		more := s.exchange(st, from, b, err, true)
		if more && s.cfg.Members != nil && !s.cfg.Members.Admits(from) {
			// A peer that left: this was its last exchange. The stream is
			// closed, after the frames written, before the exchange stops
			// counting in flight and the peer is disconnected.
			_ = st.Close()
			more = false
		}
		release()
		if !more {
			return
		}
	}
}

// waiting marks st as waiting for a request (Close resets it then) or no
// longer; false once the server is closed, with st reset.
func (s *Server) waiting(st network.Stream, idle bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if idle {
		s.idle[st] = struct{}{}
	} else {
		delete(s.idle, st)
	}
	if s.closed {
		_ = st.Reset()
		return false
	}
	return true
}

// exchange answers the request frame b (or its read error readErr): write
// the Response frame and the Chunk frames; then read the requester's ack,
// hand it to the Handler and write its AckResponse (or see the requester's
// side end without one). Reset when a frame cannot be written or the
// answer fails after it began. It returns whether the stream is left
// open: to be closed, or, when reuse (ReportsProtocol) and the exchange
// ended with an AckResponse, to carry the next exchange.
func (s *Server) exchange(st network.Stream, from peer.ID, b []byte, readErr error, reuse bool) bool {
	w := &answerWriter{st: st, max: s.cfg.ChunkBytes}
	refusal := s.answer(from, b, readErr, w)
	switch {
	case w.broken:
		_ = st.Reset()
		return false
	case refusal != nil:
		_ = st.CloseRead()
		s.log.Debug("refused", "peer", from, "code", refusal.Code, "msg", refusal.Msg)
		if err := w.writeMessage(&pb.Response{Error: wireError(refusal)}); err != nil {
			_ = st.Reset()
			return false
		}
		if reuse {
			_ = st.Close()
			return false
		}
		return true
	}
	if err := w.flush(true); err != nil {
		s.log.Debug("writing answer", "peer", from, "err", err)
		_ = st.Reset()
		return false
	}
	acked, ok := s.serveAck(st, from, w, reuse)
	if !ok {
		_ = st.Reset()
		return false
	}
	if reuse && !acked {
		_ = st.Close()
		return false
	}
	return true
}

// answer decodes the request frame b (or its read error readErr) and runs
// the handler; it returns the refusal to send, or nil once the handler
// answered through w (w.broken when the answer failed after it began).
func (s *Server) answer(from peer.ID, b []byte, err error, w *answerWriter) *credit.Refusal {
	if err != nil {
		if errors.Is(err, ErrFrameTooLarge) {
			return credit.Refuse(credit.CodeTooLarge, "%w", err)
		}
		return credit.Refuse(credit.CodeInvalidQuery, "reading the request: %w", err)
	}
	req, err := DecodeRequest(b)
	if err != nil {
		return credit.Refuse(credit.CodeInvalidQuery, "%w", err)
	}
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	default:
		return &credit.Refusal{Code: credit.CodeUnavailable, Msg: "too many requests in progress"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	err = s.callAnswer(ctx, from, req, w)
	switch {
	case w.broken:
		return nil
	case w.begun && err != nil:
		s.log.Warn("answer failed after it began", "peer", from, "err", err)
		w.broken = true
		return nil
	case w.begun:
		return nil
	case err == nil:
		s.log.Error("handler returned without an answer", "peer", from)
		return &credit.Refusal{Code: credit.CodeInternal, Msg: "the answering node gave no answer"}
	}
	if r := credit.RefusalOf(err); r != nil {
		return r
	}
	s.log.Warn("answer failed", "peer", from, "err", err)
	return &credit.Refusal{Code: credit.CodeUnavailable, Msg: "the answering node cannot answer now", Err: err}
}

// callAnswer runs the handler, turning a panic into a refusal (before
// Begin) or a broken answer (after).
func (s *Server) callAnswer(ctx context.Context, from peer.ID, req *Request, w *answerWriter) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("answer panic", "peer", from, "panic", p, "stack", string(debug.Stack()))
			w.broken = w.broken || w.begun
			err = &credit.Refusal{Code: credit.CodeInternal, Msg: "the answering node failed"}
		}
	}()
	return s.cfg.Handler.Answer(ctx, from, req, w)
}

// answerWriter is the stream-backed AnswerWriter: Begin writes the
// Response frame, Records fills a chunk and writes it when the next record
// would not fit.
type answerWriter struct {
	st     io.Writer // the stream
	max    int
	begun  bool
	broken bool   // a write failed, or the answer failed after Begin
	leaf   []byte // the receipt Begin sent, which an ack must name
	size   int    // encoded size of the chunk's records so far
	n      int    // records in the chunk
	recs   []*pb.Record
	buf    []byte
	held   int // bytes at the start of buf: frames encoded, not written yet
}

// chunkTail is the size of a chunk's last=true field.
const chunkTail = 2

func (w *answerWriter) Begin(receiptLeaf []byte, leafIndex uint64) error {
	if w.begun || w.broken {
		return errors.New("p2p: AnswerWriter.Begin called twice")
	}
	if len(receiptLeaf) == 0 {
		return errors.New("p2p: AnswerWriter.Begin without a receipt")
	}
	w.begun, w.leaf = true, receiptLeaf
	// Held until the first chunk, which goes out in the same write: one
	// stream frame, and the requester wakes once for the receipt and a
	// small slice instead of twice.
	return w.frame(&pb.Response{Receipt: receiptLeaf, LeafIndex: leafIndex}, true)
}

func (w *answerWriter) Records(recs []credit.Record) error {
	if !w.begun {
		return errors.New("p2p: AnswerWriter.Records before Begin")
	}
	if w.broken {
		return errors.New("p2p: the answer's stream failed")
	}
	for i := range recs {
		r := &recs[i]
		n := recordSize(r)
		n += 1 + protowire.SizeVarint(uint64(n))
		if n+chunkTail > w.max {
			return fmt.Errorf("p2p: a record of %d bytes exceeds the chunk size %d", n, w.max)
		}
		if w.size+n+chunkTail > w.max {
			if err := w.flush(false); err != nil {
				return err
			}
		}
		if w.n == len(w.recs) {
			w.recs = append(w.recs, new(pb.Record))
		}
		p := w.recs[w.n]
		p.Source, p.SourceId, p.Category, p.Date, p.Attrs = r.Source, r.SourceID, string(r.Category), string(r.Date), r.Attrs
		w.n++
		w.size += n
	}
	return nil
}

// flush writes the records held as one Chunk frame.
func (w *answerWriter) flush(last bool) error {
	err := w.writeMessage(&pb.Chunk{Records: w.recs[:w.n], Last: last})
	for _, p := range w.recs[:w.n] {
		p.Attrs = nil // the caller's memory is not kept past the call
	}
	w.n, w.size = 0, 0
	return err
}

// framePrefix is the room kept in front of a message for its length.
const framePrefix = binary.MaxVarintLen32

// writeMessage writes m as one frame, after any frames held, from the
// writer's reused buffer.
func (w *answerWriter) writeMessage(m proto.Message) error { return w.frame(m, false) }

// frame encodes m as one frame after the frames held and, unless hold,
// writes them all in one Write.
func (w *answerWriter) frame(m proto.Message, hold bool) error {
	b, err := proto.MarshalOptions{}.MarshalAppend(append(w.buf[:w.held], make([]byte, framePrefix)...), m)
	if err != nil {
		w.broken = true
		return err
	}
	w.buf = b
	var pre [binary.MaxVarintLen64]byte
	p := binary.PutUvarint(pre[:], uint64(len(b)-w.held-framePrefix))
	// The length goes right before the message, and the frames held move
	// up to meet it.
	gap := framePrefix - p
	copy(b[gap:], b[:w.held])
	copy(b[gap+w.held:], pre[:p])
	if hold {
		w.buf = b[:copy(b, b[gap:])]
		w.held = len(w.buf)
		return nil
	}
	w.held = 0
	if _, err := w.st.Write(b[gap:]); err != nil {
		w.broken = true
		return err
	}
	return nil
}

// recordSize is the encoded size of a Record message's fields (proto3
// leaves empty ones out; tags 1-5 take one byte).
func recordSize(r *credit.Record) int {
	n := 0
	for _, l := range [...]int{len(r.Source), len(r.SourceID), len(r.Category), len(r.Date), len(r.Attrs)} {
		if l > 0 {
			n += 1 + protowire.SizeVarint(uint64(l)) + l
		}
	}
	return n
}

// serveAck reads the requester's ack of the answer w sent, hands it to
// the Handler and writes its answer; a requester that ends its side
// instead sends none. acked: an ack came and was answered; ok false: the
// stream failed. Unless reuse, the read side is closed after the ack.
func (s *Server) serveAck(st network.Stream, from peer.ID, w *answerWriter, reuse bool) (acked, ok bool) {
	var refusal *credit.Refusal
	b, err := ReadFrame(st, MaxAckFrame)
	if !reuse || err != nil {
		_ = st.CloseRead()
	}
	switch {
	case errors.Is(err, io.EOF):
		return false, true
	case errors.Is(err, ErrFrameTooLarge):
		refusal = credit.Refuse(credit.CodeTooLarge, "%w", err)
	case errors.Is(err, ErrMalformed) || errors.Is(err, io.ErrUnexpectedEOF):
		refusal = credit.Refuse(credit.CodeInvalidQuery, "reading the ack: %w", err)
	case err != nil:
		return false, false // reset, deadline: nobody is left to answer
	default:
		a, err := DecodeAck(b)
		if err != nil {
			refusal = credit.Refuse(credit.CodeInvalidQuery, "%w", err)
		} else if err := s.callAcknowledge(from, w.leaf, a); err != nil {
			if refusal = credit.RefusalOf(err); refusal == nil {
				s.log.Warn("ack failed", "peer", from, "err", err)
				refusal = &credit.Refusal{Code: credit.CodeUnavailable, Msg: "the answering node cannot store the ack now", Err: err}
			}
		}
	}
	m := &pb.AckResponse{}
	if refusal != nil {
		m.Error = wireError(refusal)
	}
	// After a refused or unreadable ack frame the stream's state is not
	// known: it carries nothing more.
	return refusal == nil || !reuse, w.writeMessage(m) == nil
}

func (s *Server) callAcknowledge(from peer.ID, receiptLeaf []byte, a *credit.Ack) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("ack panic", "peer", from, "panic", p, "stack", string(debug.Stack()))
			err = &credit.Refusal{Code: credit.CodeInternal, Msg: "the answering node failed"}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	return s.cfg.Handler.Acknowledge(ctx, from, receiptLeaf, a)
}
