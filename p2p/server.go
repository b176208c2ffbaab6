package p2p

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/prdcredit/ccnode/credit"
)

// ReportProtocol is the report request/response protocol of a consortium.
func ReportProtocol(networkID string) protocol.ID {
	return protocol.ID("/ccnode/" + networkID + "/report/1.0.0")
}

// AckProtocol is the acknowledgement protocol. Acks travel on their own
// stream, not as a last frame of the report stream: the requester acks only
// after it has verified every region's receipt and stored them durably,
// which can take longer than one answer, and an answering handler must not
// hold a stream (and a goroutine) open waiting for that. The ack is
// self-contained (it names the receipt by id and digest) and is checked
// against the answerer's durable receipt log, not an in-memory pending
// table, so it can also be resent later.
func AckProtocol(networkID string) protocol.ID {
	return protocol.ID("/ccnode/" + networkID + "/ack/1.0.0")
}

// The answering side's dependencies, provided by the node.

// Members is the node's ledger view of regions and banks. Unknown ids wrap
// ErrUnknownMember.
type Members interface {
	Region(id credit.RegionID) (credit.RegionMember, error)
	Bank(id credit.BankID) (credit.BankMember, error)
}

// ConsentChecker checks a query's consent against the ledger at a time. It
// returns nil or a refusal: an *Error (see Refuse) with one of the consent
// codes; any other error is answered as CodeUnavailable (fail closed).
// The server calls it only for a query that decoded and validated and
// whose bank signature it verified against Members.Bank's key, so Check
// need not verify the bank's signature again.
type ConsentChecker interface {
	Check(ctx context.Context, q *credit.Query, at time.Time) error
}

// ReportSource reads this region's records on a subject, in (category,
// date) order.
type ReportSource interface {
	Report(ctx context.Context, subject credit.USCC, categories []credit.Category) ([]credit.Record, error)
}

// ReceiptLog appends an issued receipt and returns once it is durable,
// with its leaf index.
type ReceiptLog interface {
	Append(ctx context.Context, r *credit.Receipt) (uint64, error)
}

// AckStore finds issued receipts and keeps the acks that name them.
type AckStore interface {
	Receipt(id string) (credit.Receipt, error)
	PutAck(a credit.Ack) error
}

// NonceStore remembers a bank's nonces until a time. Seen records the
// nonce and reports whether it was already there. It must be the answering
// side's own store: the home node spends the nonce at its bank-facing API
// first and then answers for its own region through this same path.
type NonceStore interface {
	Seen(bank credit.BankID, nonce string, until time.Time) (bool, error)
}

// ServerConfig holds an answering node's identity, policy and dependencies.
type ServerConfig struct {
	NetworkID string
	Region    credit.RegionID
	Key       ed25519.PrivateKey
	Members   Members
	Consent   ConsentChecker
	Source    ReportSource
	Receipts  ReceiptLog
	Acks      AckStore
	Nonces    NonceStore
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Window: a query's time must be within this of Now (default 2 min).
	Window time.Duration
	// Timeout bounds one exchange, from the first byte read to the last
	// written (default 10 s).
	Timeout time.Duration
	// MaxConcurrent bounds the requests handled at once (default 256); the
	// rest are refused as unavailable rather than queued without bound.
	MaxConcurrent int
	Logger        *slog.Logger
}

// verifyQuery checks the bank's signature on q through the server's
// signature gate, which batches the checks of concurrent requests.
func (s *Server) verifyQuery(q *credit.Query, bankPub []byte) error {
	return q.VerifyWith(bankPub, s.sigs.verify)
}

// verifyAck is credit.Ack.Verify with the signature checked through the
// server's gate, as the bank's are: the requesting regions are few, so
// their expanded keys are kept, and the acks of concurrent answers are
// verified as one batch.
func (s *Server) verifyAck(a *credit.Ack, r *credit.Receipt, requesterPub []byte) error {
	return a.VerifyWith(r, requesterPub, s.sigs.verify)
}

// Server answers report requests and acks from other regions. It is given
// a host and never builds one, and it reaches records, receipts and the
// ledger only through its interfaces.
type Server struct {
	cfg  ServerConfig
	log  *slog.Logger
	sem  chan struct{}
	sigs sigGate

	mu       sync.Mutex
	host     host.Host
	closed   bool
	handlers sync.WaitGroup
}

// Defaults.
const (
	DefaultWindow        = 2 * time.Minute
	DefaultTimeout       = 10 * time.Second
	DefaultMaxConcurrent = 256
)

// NewServer checks cfg and applies defaults.
func NewServer(cfg ServerConfig) (*Server, error) {
	switch {
	case cfg.NetworkID == "":
		return nil, &ConfigError{"network_id", credit.ErrMissing}
	case credit.ValidateRegionID(cfg.Region) != nil:
		return nil, &ConfigError{"region", credit.ValidateRegionID(cfg.Region)}
	case len(cfg.Key) != ed25519.PrivateKeySize:
		return nil, &ConfigError{"key", ErrBadKey}
	case cfg.Members == nil || cfg.Consent == nil || cfg.Source == nil || cfg.Receipts == nil || cfg.Acks == nil || cfg.Nonces == nil:
		return nil, &ConfigError{"dependencies", errors.New("members, consent, source, receipts, acks and nonces are required")}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log.With("region", cfg.Region), sem: make(chan struct{}, cfg.MaxConcurrent)}, nil
}

// Register serves the protocols on h until Close.
func (s *Server) Register(h host.Host) {
	s.mu.Lock()
	s.host = h
	s.mu.Unlock()
	h.SetStreamHandler(ReportProtocol(s.cfg.NetworkID), s.handleReport)
	h.SetStreamHandler(AckProtocol(s.cfg.NetworkID), s.handleAck)
}

// Close stops serving and waits for the streams in progress to finish.
// Safe to call twice.
func (s *Server) Close() error {
	s.mu.Lock()
	h := s.host
	s.host, s.closed = nil, true
	s.mu.Unlock()
	if h != nil {
		h.RemoveStreamHandler(ReportProtocol(s.cfg.NetworkID))
		h.RemoveStreamHandler(AckProtocol(s.cfg.NetworkID))
	}
	s.handlers.Wait()
	return nil
}

// begin registers a stream handler in progress; false once closed.
func (s *Server) begin(st network.Stream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = st.Reset()
		return false
	}
	s.handlers.Add(1)
	return true
}

// handleReport runs one exchange: deadline, read, CloseRead, answer within
// the timeout, write, Close; Reset when the response cannot be written.
func (s *Server) handleReport(st network.Stream) {
	growStack()
	if !s.begin(st) {
		return
	}
	defer s.handlers.Done()
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("report stream panic", "panic", p, "stack", string(debug.Stack()))
			_ = st.Reset()
		}
	}()
	start := s.cfg.Now()
	_ = st.SetDeadline(time.Now().Add(s.cfg.Timeout))
	resp, leaf := s.serve(st)
	buf := frameBufs.Get().(*[]byte)
	frame, storage, err := responseFrame(*buf, resp, leaf)
	if err != nil {
		s.log.Error("encoding answer", "peer", st.Conn().RemotePeer(), "err", err)
		frame, storage, _ = responseFrame(storage, &Response{Err: &Error{Code: CodeInternal, Msg: "encoding the answer"}}, nil)
	}
	defer putFrameBuf(buf, storage)
	if resp.Err != nil {
		s.log.Debug("refused", "peer", st.Conn().RemotePeer(), "code", resp.Err.Code, "msg", resp.Err.Msg, "elapsed", s.cfg.Now().Sub(start))
	}
	if _, err := st.Write(frame); err != nil {
		s.log.Debug("writing answer", "peer", st.Conn().RemotePeer(), "err", err)
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

// serve reads and answers one request; leaf is the receipt's LeafBytes
// when answered.
func (s *Server) serve(st network.Stream) (resp *Response, leaf []byte) {
	b, err := ReadFrame(st, MaxRequestFrame)
	_ = st.CloseRead()
	if err != nil {
		if errors.Is(err, ErrFrameTooLarge) {
			return &Response{Err: &Error{Code: CodeTooLarge, Msg: err.Error()}}, nil
		}
		return &Response{Err: &Error{Code: CodeBadRequest, Msg: err.Error()}}, nil
	}
	req, err := DecodeRequest(b)
	if err != nil {
		return &Response{Err: &Error{Code: CodeBadRequest, Msg: err.Error()}}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	ans, leaf, err := s.answer(ctx, st.Conn().RemotePeer(), req)
	if err != nil {
		return &Response{Err: asRefusal(err)}, nil
	}
	return ans, leaf
}

// Answer runs the answering pipeline for a request from peer from. The
// report protocol handler calls it for requests off the wire, and the
// Router calls it in-process for the node's own region (libp2p cannot open
// a stream to its own host), so both take exactly the same checks. A
// handler panic becomes CodeInternal. Refusals are *Error values.
func (s *Server) Answer(ctx context.Context, from peer.ID, req *Request) (*Response, error) {
	resp, _, err := s.answer(ctx, from, req)
	return resp, err
}

// answer is Answer, also returning the receipt in its leaf form (LeafBytes),
// made while signing it, for the handler to send as it is.
func (s *Server) answer(ctx context.Context, from peer.ID, req *Request) (resp *Response, leaf []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("answer panic", "panic", p, "stack", string(debug.Stack()))
			resp, leaf, err = nil, nil, &Error{Code: CodeInternal, Msg: "the answering node failed"}
		}
	}()
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	default:
		return nil, nil, &Error{Code: CodeUnavailable, Msg: "too many requests in progress"}
	}
	q := &req.Query
	now := s.cfg.Now()
	// The claimed requesting region must be an active member whose peer
	// is the one on the other end of the stream.
	rm, err := s.cfg.Members.Region(req.Requester)
	if err != nil {
		if errors.Is(err, ErrUnknownMember) {
			return nil, nil, Refuse(CodeNotMember, "region %s is not a member", req.Requester)
		}
		return nil, nil, fmt.Errorf("membership: %w", err)
	}
	if rm.Status != credit.StatusActive {
		return nil, nil, Refuse(CodeNotMember, "region %s is %s", req.Requester, rm.Status)
	}
	if p, err := peer.Decode(rm.PeerID); err != nil || p != from {
		return nil, nil, Refuse(CodeNotMember, "peer %s is not region %s", from, req.Requester)
	}
	if skew := now.Sub(q.Time); skew > s.cfg.Window || skew < -s.cfg.Window {
		return nil, nil, Refuse(CodeStale, "query time is %s from this node's clock (window %s)", skew.Round(time.Millisecond), s.cfg.Window)
	}
	bank, err := s.cfg.Members.Bank(q.Bank)
	if err != nil {
		if errors.Is(err, ErrUnknownMember) {
			return nil, nil, Refuse(CodeBankUnknown, "bank %s", q.Bank)
		}
		return nil, nil, fmt.Errorf("membership: %w", err)
	}
	if bank.Status != credit.StatusActive {
		return nil, nil, Refuse(CodeBankRetired, "bank %s is %s", q.Bank, bank.Status)
	}
	if err := s.verifyQuery(q, bank.PubKey); err != nil {
		return nil, nil, Refuse(CodeBadSignature, "%w", err)
	}
	// The nonce is spent only once the bank's signature holds, so a forged
	// request cannot burn a real query's nonce.
	seen, err := s.cfg.Nonces.Seen(q.Bank, q.Nonce, q.Time.Add(s.cfg.Window))
	if err != nil {
		return nil, nil, fmt.Errorf("nonce store: %w", err)
	}
	if seen {
		return nil, nil, Refuse(CodeReplayed, "nonce %s of bank %s was already used", q.Nonce, q.Bank)
	}
	if err := s.cfg.Consent.Check(ctx, q, now); err != nil {
		return nil, nil, err
	}
	recs, err := s.cfg.Source.Report(ctx, q.Subject, q.Categories)
	if err != nil {
		return nil, nil, Refuse(CodeUnavailable, "reading records: %w", err)
	}
	// The records are this answer's own: the report's sections slice them.
	rep := reportOf(q.Subject, recs)
	id, err := credit.ReceiptID(s.cfg.Region, q)
	if err != nil {
		return nil, nil, Refuse(CodeInternal, "receipt id: %w", err)
	}
	d := rep.Digest()
	r := credit.Receipt{
		Version: 1, ID: id, Query: *q, Requester: req.Requester, Answerer: s.cfg.Region,
		Categories: rep.Categories(), ReportDigest: d[:], RecordCount: rep.Count(), Time: now,
	}
	// The receipt is signed and put in the form it travels in from one
	// encoding of it.
	if leaf, err = r.SignLeaf(s.cfg.Key); err != nil {
		return nil, nil, Refuse(CodeInternal, "signing receipt: %w", err)
	}
	// Durable before the answer leaves: a receipt the requester holds is
	// always in this node's log.
	idx, err := s.cfg.Receipts.Append(ctx, &r)
	if err != nil {
		return nil, nil, Refuse(CodeUnavailable, "logging receipt: %w", err)
	}
	return &Response{Receipt: r, Report: rep, LeafIndex: idx}, leaf, nil
}

func (s *Server) handleAck(st network.Stream) {
	growStack()
	if !s.begin(st) {
		return
	}
	defer s.handlers.Done()
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("ack stream panic", "panic", p, "stack", string(debug.Stack()))
			_ = st.Reset()
		}
	}()
	_ = st.SetDeadline(time.Now().Add(s.cfg.Timeout))
	var refusal *Error
	b, err := ReadFrame(st, MaxAckFrame)
	_ = st.CloseRead()
	switch {
	case errors.Is(err, ErrFrameTooLarge):
		refusal = &Error{Code: CodeTooLarge, Msg: err.Error()}
	case err != nil:
		refusal = &Error{Code: CodeBadRequest, Msg: err.Error()}
	default:
		a, err := DecodeAck(b)
		if err != nil {
			refusal = &Error{Code: CodeBadRequest, Msg: err.Error()}
		} else if err := s.Acknowledge(context.Background(), st.Conn().RemotePeer(), a); err != nil {
			refusal = asRefusal(err)
		}
	}
	if err := WriteFrame(st, EncodeAckResponse(refusal)); err != nil {
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

// Acknowledge checks an ack from peer from against the receipt it names
// and stores it. The router calls it in-process for the node's own region.
func (s *Server) Acknowledge(_ context.Context, from peer.ID, a *credit.Ack) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("ack panic", "panic", p, "stack", string(debug.Stack()))
			err = &Error{Code: CodeInternal, Msg: "the answering node failed"}
		}
	}()
	rm, err := s.cfg.Members.Region(a.Requester)
	if err != nil {
		if errors.Is(err, ErrUnknownMember) {
			return Refuse(CodeNotMember, "region %s is not a member", a.Requester)
		}
		return fmt.Errorf("membership: %w", err)
	}
	if p, err := peer.Decode(rm.PeerID); err != nil || p != from || rm.Status != credit.StatusActive {
		return Refuse(CodeNotMember, "peer %s is not active region %s", from, a.Requester)
	}
	r, err := s.cfg.Acks.Receipt(a.ReceiptID)
	if err != nil {
		return Refuse(CodeBadRequest, "receipt %s: %w", a.ReceiptID, err)
	}
	if r.Requester != a.Requester {
		return Refuse(CodeBadRequest, "receipt %s was issued to %s", r.ID, r.Requester)
	}
	if err := s.verifyAck(a, &r, rm.PubKey); err != nil {
		return Refuse(CodeBadSignature, "%w", err)
	}
	if err := s.cfg.Acks.PutAck(*a); err != nil {
		return Refuse(CodeUnavailable, "storing ack: %w", err)
	}
	return nil
}
