package p2p_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/p2p"
	"github.com/prdcredit/ccnode/p2p/pb"
)

// TestAskAnswers: one exchange carries the request as sent to the
// handler, with the requesting peer, and the receipt, leaf index and
// records back, the records' USCC filled from the receipt's query.
func TestAskAnswers(t *testing.T) {
	var got struct {
		from peer.ID
		req  *p2p.Request
	}
	var p *pair
	recs := testRecords(testSubject(t), 183, true)
	inner := answering(t, region{}, nil, 0)
	h := &handler{answer: func(ctx context.Context, from peer.ID, req *p2p.Request, w p2p.AnswerWriter) error {
		got.from, got.req = from, req
		inner = answering(t, p.ans, recs, 50)
		return inner.answer(ctx, from, req, w)
	}}
	p = newPair(t, h, p2p.ServerConfig{})
	reply, err := p.ask(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.from != p.reqHost.ID() {
		t.Errorf("handler saw peer %s, want %s", got.from, p.reqHost.ID())
	}
	if got.req.Requester != p.req.Member.ID || !bytes.Equal(got.req.QueryJSON, p.queryJSON) || got.req.Query.Nonce != p.query.Nonce {
		t.Errorf("handler saw request %+v", got.req)
	}
	if reply.LeafIndex != 7 || reply.Receipt.RecordCount != 183 || reply.Receipt.Answerer != p.ans.Member.ID {
		t.Errorf("reply: leaf %d, receipt %+v", reply.LeafIndex, reply.Receipt)
	}
	if err := reply.Receipt.Verify(p.ans.Member.PubKey); err != nil {
		t.Errorf("receipt as received: %v", err)
	}
	if leaf, _ := reply.Receipt.LeafBytes(); !bytes.Equal(leaf, reply.ReceiptJSON) {
		t.Errorf("ReceiptJSON is not the receipt's leaf bytes")
	}
	if !reflect.DeepEqual(reply.Records, recs) {
		t.Fatalf("records differ: got %d, want %d", len(reply.Records), len(recs))
	}
	rep := credit.NewReport(reply.Receipt.Query.Subject, reply.Records)
	if d := rep.Digest(); !bytes.Equal(d[:], reply.Receipt.ReportDigest) {
		t.Error("digest over the records received differs from the receipt's")
	}
}

// TestAskEmptySlice: a receipt with no records is a whole answer.
func TestAskEmptySlice(t *testing.T) {
	var p *pair
	p = newPair(t, &handler{answer: func(ctx context.Context, from peer.ID, req *p2p.Request, w p2p.AnswerWriter) error {
		return answering(t, p.ans, nil, 1).answer(ctx, from, req, w)
	}}, p2p.ServerConfig{})
	reply, err := p.ask(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(reply.Records) != 0 || reply.Receipt.RecordCount != 0 {
		t.Fatalf("reply %+v", reply)
	}
}

// TestRefusalsPassThrough: every code of the closed set reaches the
// requester with the region's own message; any other error is
// unavailable, without its local text.
func TestRefusalsPassThrough(t *testing.T) {
	var refuse error
	p := newPair(t, &handler{answer: func(context.Context, peer.ID, *p2p.Request, p2p.AnswerWriter) error {
		return refuse
	}}, p2p.ServerConfig{})
	for _, c := range credit.Codes() {
		t.Run(string(c), func(t *testing.T) {
			refuse = credit.Refuse(c, "region says %s, in its words: 拒绝", c)
			_, err := p.ask(context.Background())
			r := credit.RefusalOf(err)
			if r == nil || r.Code != c || r.Msg != "region says "+string(c)+", in its words: 拒绝" {
				t.Fatalf("got %#v", err)
			}
			if errors.Is(err, p2p.ErrUnreachable) || errors.Is(err, p2p.ErrBadAnswer) {
				t.Fatalf("a refusal is also %v", err)
			}
		})
	}
	t.Run("other error", func(t *testing.T) {
		refuse = errors.New("disk /srv/secret full")
		_, err := p.ask(context.Background())
		if r := credit.RefusalOf(err); r == nil || r.Code != credit.CodeUnavailable || bytes.Contains([]byte(r.Msg), []byte("secret")) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("long message", func(t *testing.T) {
		refuse = credit.Refuse(credit.CodeInvalidQuery, "%s", bytes.Repeat([]byte("é"), 4000))
		_, err := p.ask(context.Background())
		if r := credit.RefusalOf(err); r == nil || r.Code != credit.CodeInvalidQuery || len(r.Msg) > 1024 || len(r.Msg) < 1000 {
			t.Fatalf("got %v", err)
		}
	})
}

// rawServer serves the report protocol on the answering host with write
// instead of the Server, to send what a faulty region would; the answering
// host then speaks ReportProtocol only, like a region before
// ReportsProtocol, and the client falls back to it.
func rawServer(p *pair, write func(s network.Stream)) {
	p.ansHost.RemoveStreamHandler(p2p.ReportsProtocol(testNet))
	p.ansHost.SetStreamHandler(p2p.ReportProtocol(testNet), func(s network.Stream) {
		defer s.Close()
		if _, err := p2p.ReadFrame(s, p2p.MaxRequestFrame); err != nil {
			s.Reset()
			return
		}
		write(s)
	})
}

func frame(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var w bytes.Buffer
	if err := p2p.WriteFrame(&w, b); err != nil {
		t.Fatal(err)
	}
	return w.Bytes()
}

// TestBadAnswers: what a faulty region sends is ErrBadAnswer, never a
// reply; an unknown refusal code is internal.
func TestBadAnswers(t *testing.T) {
	p := newPair(t, &handler{}, p2p.ServerConfig{})
	req := &p2p.Request{Requester: p.req.Member.ID, Query: *p.query}
	receipt := frame(t, &pb.Response{Receipt: signedReceipt(t, p.ans, req, nil), LeafIndex: 1})
	rec := &pb.Record{Source: "s", SourceId: "1", Category: "tax", Date: "2024-01-01", Attrs: []byte("{}")}
	tests := []struct {
		name string
		send [][]byte
	}{
		{"garbage response", [][]byte{{3, 0xff, 0xff, 0xff}}},
		{"response without receipt", [][]byte{frame(t, &pb.Response{LeafIndex: 1})}},
		{"receipt not JSON", [][]byte{frame(t, &pb.Response{Receipt: []byte("nope")})}},
		{"response too large", [][]byte{{0x80, 0x80, 0x80, 0x01}}},
		{"no chunk", [][]byte{receipt}},
		{"no last chunk", [][]byte{receipt, frame(t, &pb.Chunk{Records: []*pb.Record{rec}})}},
		{"garbage chunk", [][]byte{receipt, {2, 0xff, 0xff}}},
		{"chunk too large", [][]byte{receipt, {0x80, 0x80, 0x80, 0x08}}},
		{"records after the end", [][]byte{receipt, frame(t, &pb.Chunk{Last: true}), frame(t, &pb.Chunk{Records: []*pb.Record{rec}})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rawServer(p, func(s network.Stream) {
				for _, b := range tt.send {
					s.Write(b)
				}
			})
			reply, err := p.ask(context.Background())
			if !errors.Is(err, p2p.ErrBadAnswer) && !errors.Is(err, p2p.ErrUnreachable) {
				t.Fatalf("got %+v, %v", reply, err)
			}
			if credit.RefusalOf(err) != nil {
				t.Fatalf("a bad answer is a refusal: %v", err)
			}
		})
	}
	t.Run("unknown code", func(t *testing.T) {
		rawServer(p, func(s network.Stream) {
			s.Write(frame(t, &pb.Response{Error: &pb.Error{Code: "from_the_future", Message: "later"}}))
		})
		_, err := p.ask(context.Background())
		if r := credit.RefusalOf(err); r == nil || r.Code != credit.CodeInternal || r.Msg != "from_the_future: later" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("answer over MaxAnswerBytes", func(t *testing.T) {
		rawServer(p, func(s network.Stream) {
			s.Write(receipt)
			big := &pb.Chunk{Records: []*pb.Record{{Source: string(bytes.Repeat([]byte("x"), 10_000))}}}
			for range 20 {
				s.Write(frame(t, big))
			}
			s.Write(frame(t, &pb.Chunk{Last: true}))
		})
		members := p2p.NewMembership(nil, nil)
		members.SetMembers([]credit.RegionMember{p.req.Member, p.ans.Member})
		c, err := p2p.NewClient(p2p.ClientConfig{Host: p.reqHost, NetworkID: testNet, Members: members, MaxAnswerBytes: 100_000})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Ask(context.Background(), p.ans.Member.ID, p.request, nil); !errors.Is(err, p2p.ErrBadAnswer) {
			t.Fatalf("got %v", err)
		}
	})
}

// TestLargeAnswerStreams: 100,000 records go out in many chunks, none
// over ChunkBytes, and all arrive in order under the one receipt.
func TestLargeAnswerStreams(t *testing.T) {
	const n = 100_000
	recs := testRecords(testSubject(t), n, false)
	var p *pair
	p = newPair(t, &handler{answer: func(ctx context.Context, from peer.ID, req *p2p.Request, w p2p.AnswerWriter) error {
		// One Records call with the whole slice is cut as well as many.
		return answering(t, p.ans, recs, n).answer(ctx, from, req, w)
	}}, p2p.ServerConfig{ChunkBytes: p2p.MinChunkBytes})
	reply, err := p.ask(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(reply.Records, recs) {
		t.Fatalf("got %d records, want %d in the same order", len(reply.Records), n)
	}

	// The frames as they travel.
	s, err := p.reqHost.NewStream(context.Background(), p.ansHost.ID(), p2p.ReportProtocol(testNet))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	s.Write(p.request)
	s.CloseWrite()
	if _, err := p2p.ReadFrame(s, p2p.MaxResponseFrame); err != nil {
		t.Fatal(err)
	}
	chunks, total := 0, 0
	for {
		b, err := p2p.ReadFrame(s, p2p.MinChunkBytes)
		if err != nil {
			t.Fatalf("chunk %d: %v", chunks, err)
		}
		chunks++
		var c pb.Chunk
		if err := proto.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		total += len(c.Records)
		if c.Last {
			break
		}
		if len(b) < p2p.MinChunkBytes*9/10 {
			t.Errorf("chunk %d of %d bytes is not full", chunks, len(b))
		}
	}
	if total != n || chunks < 100 {
		t.Fatalf("%d records in %d chunks", total, chunks)
	}
}

// TestTooLargeAndUndecodableRequests are refused with too_large and
// invalid_query without reaching the handler.
func TestTooLargeAndUndecodableRequests(t *testing.T) {
	p := newPair(t, &handler{answer: func(context.Context, peer.ID, *p2p.Request, p2p.AnswerWriter) error {
		t.Error("the handler got a bad request")
		return nil
	}}, p2p.ServerConfig{})
	huge := p2p.EncodeRequest(p.req.Member.ID, bytes.Repeat([]byte("x"), p2p.MaxRequestFrame))
	tests := []struct {
		name    string
		request []byte
		want    credit.Code
	}{
		{"too large", huge, credit.CodeTooLarge},
		{"length only", []byte{0x80, 0x80, 0x80, 0x80, 0x01}, credit.CodeTooLarge},
		{"garbage", []byte{4, 0xff, 0xff, 0xff, 0xff}, credit.CodeInvalidQuery},
		{"truncated", p.request[:len(p.request)-10], credit.CodeInvalidQuery},
		{"query not JSON", p2p.EncodeRequest(p.req.Member.ID, []byte("{")), credit.CodeInvalidQuery},
		{"bad requester", p2p.EncodeRequest("Not A Region!", p.queryJSON), credit.CodeInvalidQuery},
		{"empty", []byte{0}, credit.CodeInvalidQuery},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.client.Ask(context.Background(), p.ans.Member.ID, tt.request, nil)
			if r := credit.RefusalOf(err); r == nil || r.Code != tt.want {
				t.Fatalf("got %v, want %s", err, tt.want)
			}
		})
	}
}

// TestHandlerFailures: a panic before Begin is internal, after Begin the
// stream is reset; an error after Begin resets it too; a handler that
// returns without answering is internal. The server keeps serving.
func TestHandlerFailures(t *testing.T) {
	var p *pair
	var mode string
	p = newPair(t, &handler{answer: func(ctx context.Context, from peer.ID, req *p2p.Request, w p2p.AnswerWriter) error {
		switch mode {
		case "panic before":
			panic("boom")
		case "no answer":
			return nil
		}
		if err := w.Begin(signedReceipt(t, p.ans, req, nil), 1); err != nil {
			return err
		}
		if err := w.Records(testRecords(req.Query.Subject, 10, true)); err != nil {
			return err
		}
		if mode == "panic after" {
			panic("boom")
		}
		return errors.New("store failed halfway")
	}}, p2p.ServerConfig{})
	for _, tt := range []struct {
		mode        string
		want        credit.Code
		unreachable bool
	}{
		{"panic before", credit.CodeInternal, false},
		{"no answer", credit.CodeInternal, false},
		{"panic after", "", true},
		{"error after", "", true},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			mode = tt.mode
			_, err := p.ask(context.Background())
			if tt.unreachable {
				if !errors.Is(err, p2p.ErrUnreachable) {
					t.Fatalf("got %v, want unreachable", err)
				}
				return
			}
			if r := credit.RefusalOf(err); r == nil || r.Code != tt.want {
				t.Fatalf("got %v, want %s", err, tt.want)
			}
		})
	}
}

// TestConcurrencyLimit: beyond MaxConcurrent answers in progress, a
// request is refused unavailable at once.
func TestConcurrencyLimit(t *testing.T) {
	const limit = 3
	entered := make(chan struct{}, limit)
	release := make(chan struct{})
	var p *pair
	p = newPair(t, &handler{answer: func(ctx context.Context, from peer.ID, req *p2p.Request, w p2p.AnswerWriter) error {
		entered <- struct{}{}
		<-release
		return answering(t, p.ans, nil, 1).answer(ctx, from, req, w)
	}}, p2p.ServerConfig{MaxConcurrent: limit})
	var wg sync.WaitGroup
	errs := make([]error, limit)
	for i := range limit {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = p.ask(context.Background())
		}()
	}
	for range limit {
		<-entered
	}
	_, err := p.ask(context.Background())
	if r := credit.RefusalOf(err); r == nil || r.Code != credit.CodeUnavailable {
		t.Fatalf("beyond the limit: %v", err)
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("request %d within the limit: %v", i, err)
		}
	}
}

// TestCancelResets: cancelling Ask returns at once as unreachable and
// resets the stream, which the handler's next write sees.
func TestCancelResets(t *testing.T) {
	begun := make(chan struct{})
	writeErr := make(chan error, 1)
	var p *pair
	p = newPair(t, &handler{answer: func(ctx context.Context, from peer.ID, req *p2p.Request, w p2p.AnswerWriter) error {
		if err := w.Begin(signedReceipt(t, p.ans, req, nil), 1); err != nil {
			return err
		}
		close(begun)
		// Writes until the reset reaches it.
		recs := testRecords(req.Query.Subject, 1000, true)
		for {
			if err := w.Records(recs); err != nil {
				writeErr <- err
				return err
			}
			if ctx.Err() != nil {
				writeErr <- ctx.Err()
				return ctx.Err()
			}
		}
	}}, p2p.ServerConfig{ChunkBytes: p2p.MinChunkBytes})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-begun
		cancel()
	}()
	_, err := p.ask(ctx)
	if !errors.Is(err, p2p.ErrUnreachable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	select {
	case err := <-writeErr:
		t.Logf("the handler's write after the reset: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("the handler never saw the reset")
	}
}

// TestCallerDeadline: a caller's deadline that passes while the region is
// still answering makes the exchange unreachable with the deadline as its
// cause, not a cancellation.
func TestCallerDeadline(t *testing.T) {
	release := make(chan struct{})
	p := newPair(t, &handler{answer: func(ctx context.Context, _ peer.ID, _ *p2p.Request, _ p2p.AnswerWriter) error {
		<-release
		return nil
	}}, p2p.ServerConfig{})
	t.Cleanup(func() { close(release) }) // before the server's Close, which waits for the handler
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := p.ask(ctx)
	if !errors.Is(err, p2p.ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want unreachable past the deadline", err)
	}
}

// TestUnreachable: no member, no link, and a region whose peer serves
// nothing are unreachable.
func TestUnreachable(t *testing.T) {
	p := newPair(t, &handler{}, p2p.ServerConfig{})
	if _, err := p.client.Ask(context.Background(), "449900", p.request, nil); !errors.Is(err, p2p.ErrUnreachable) {
		t.Fatalf("not a member: %v", err)
	}
	p.server.Close()
	p.server.Close()
	if _, err := p.ask(context.Background()); !errors.Is(err, p2p.ErrUnreachable) {
		t.Fatalf("server closed: %v", err)
	}
}

// TestAcknowledge: the ack goes back on the answer's stream and reaches
// the handler as sent, with the peer and the receipt that stream carried;
// its refusal comes back as sent; a malformed ack is invalid_query; an
// Acker that sends none ends the exchange with the handler never asked.
func TestAcknowledge(t *testing.T) {
	type seen struct {
		ack  *credit.Ack
		from peer.ID
		leaf []byte
	}
	var got []seen
	var refuse error
	var p *pair
	h := &handler{}
	h.answer = func(ctx context.Context, from peer.ID, req *p2p.Request, w p2p.AnswerWriter) error {
		return answering(t, p.ans, testRecords(testSubject(t), 3, false), 2).answer(ctx, from, req, w)
	}
	h.ack = func(_ context.Context, f peer.ID, leaf []byte, a *credit.Ack) error {
		got = append(got, seen{a, f, leaf})
		return refuse
	}
	p = newPair(t, h, p2p.ServerConfig{})
	var sent credit.Ack
	acker := func(mangle func(*credit.Ack)) p2p.Acker {
		return func(r *p2p.Reply) *credit.Ack {
			a, err := credit.NewAck(&r.Receipt, p.req.Member.ID, time.Now(), p.req.Key)
			if err != nil {
				t.Fatal(err)
			}
			if mangle != nil {
				mangle(&a)
			}
			sent = a
			return &a
		}
	}
	reply, err := p.client.Ask(context.Background(), p.ans.Member.ID, p.request, acker(nil))
	if err != nil || !reply.Acked || reply.AckOutcome() != nil || len(reply.Records) != 3 {
		t.Fatalf("acked ask: %+v, %v", reply, err)
	}
	if len(got) != 1 {
		t.Fatalf("handler saw %d acks", len(got))
	}
	g := got[0]
	if g.from != p.reqHost.ID() || g.ack.ReceiptID != reply.Receipt.ID || !g.ack.Time.Equal(sent.Time) || !bytes.Equal(g.ack.Sig, sent.Sig) {
		t.Fatalf("handler saw %+v from %s", g.ack, g.from)
	}
	if !bytes.Equal(g.leaf, reply.ReceiptJSON) {
		t.Fatal("handler was not given the receipt the stream carried")
	}
	if err := g.ack.Verify(&reply.Receipt, p.req.Member.PubKey); err != nil {
		t.Fatalf("ack as received: %v", err)
	}

	refuse = credit.Refuse(credit.CodeBadSignature, "ack signature")
	reply, err = p.client.Ask(context.Background(), p.ans.Member.ID, p.request, acker(nil))
	if err != nil || credit.CodeOf(reply.AckOutcome()) != credit.CodeBadSignature || credit.RefusalOf(reply.AckOutcome()).Msg != "ack signature" {
		t.Fatalf("refused ack: %v, %v", err, reply.AckOutcome())
	}
	refuse = nil

	reply, err = p.client.Ask(context.Background(), p.ans.Member.ID, p.request, acker(func(a *credit.Ack) { a.ReceiptID = "" }))
	if err != nil || credit.CodeOf(reply.AckOutcome()) != credit.CodeInvalidQuery {
		t.Fatalf("malformed ack: %v, %v", err, reply.AckOutcome())
	}

	got = nil
	reply, err = p.client.Ask(context.Background(), p.ans.Member.ID, p.request, func(*p2p.Reply) *credit.Ack { return nil })
	if err != nil || reply.Acked || len(reply.Records) != 3 {
		t.Fatalf("unacknowledged ask: %+v, %v", reply, err)
	}
	if len(got) != 0 {
		t.Fatalf("handler saw %d acks, none sent", len(got))
	}
}

// TestAckOutlivesAsk: Ask returns once the ack is sent, before the region
// stored it, and even a caller whose context ends at once does not cut the
// exchange; the server's Settle and the client's Close wait for it to end.
func TestAckOutlivesAsk(t *testing.T) {
	var p *pair
	entered, release := make(chan struct{}, 1), make(chan struct{})
	stored := make(chan *credit.Ack, 1)
	h := &handler{}
	h.answer = func(ctx context.Context, from peer.ID, req *p2p.Request, w p2p.AnswerWriter) error {
		return answering(t, p.ans, testRecords(testSubject(t), 3, false), 2).answer(ctx, from, req, w)
	}
	h.ack = func(_ context.Context, _ peer.ID, _ []byte, a *credit.Ack) error {
		entered <- struct{}{}
		<-release
		stored <- a
		return nil
	}
	p = newPair(t, h, p2p.ServerConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	reply, err := p.client.Ask(ctx, p.ans.Member.ID, p.request, signingAcker(t, p))
	cancel()
	if err != nil || !reply.Acked || len(reply.Records) != 3 {
		t.Fatalf("ask: %+v, %v", reply, err)
	}
	<-entered // the region holds the ack; Ask returned before it is stored

	short, stop := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer stop()
	if err := p.server.Settle(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Settle with the ack still being stored: %v, want the deadline", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- p.client.Close() }()
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	// Close returned: the outcome is known, and it is the region's.
	select {
	case <-stored:
	default:
		t.Fatal("Close returned before the region stored the ack")
	}
	if err := reply.AckOutcome(); err != nil {
		t.Fatalf("ack outcome: %v", err)
	}
	if err := p.server.Settle(context.Background()); err != nil {
		t.Fatal(err)
	}
}
