package p2p_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/p2p"
)

// reportsStreams counts h's open ReportsProtocol streams to other.
func reportsStreams(h host.Host, other peer.ID) int {
	n := 0
	for _, c := range h.Network().ConnsToPeer(other) {
		for _, st := range c.GetStreams() {
			if st.Protocol() == p2p.ReportsProtocol(testNet) {
				n++
			}
		}
	}
	return n
}

// signingAcker acks every reply as the requesting region.
func signingAcker(t *testing.T, p *pair) p2p.Acker {
	return func(r *p2p.Reply) *credit.Ack {
		a, err := credit.NewAck(&r.Receipt, p.req.Member.ID, time.Now(), p.req.Key)
		if err != nil {
			t.Error(err)
			return nil
		}
		return &a
	}
}

// TestStreamsCarryExchanges: acknowledged exchanges with a region follow
// one another on the streams kept from earlier ones (ReportsProtocol): as
// many streams as exchanges ran at once, not one per exchange; an
// exchange that ends otherwise (no ack) closes its stream.
func TestStreamsCarryExchanges(t *testing.T) {
	var p *pair
	h := &handler{}
	h.answer = func(ctx context.Context, from peer.ID, req *p2p.Request, w p2p.AnswerWriter) error {
		return answering(t, p.ans, testRecords(testSubject(t), 3, false), 2).answer(ctx, from, req, w)
	}
	p = newPair(t, h, p2p.ServerConfig{})
	ack := signingAcker(t, p)
	ask := func() {
		reply, err := p.client.Ask(context.Background(), p.ans.Member.ID, p.request, ack)
		if err != nil || reply.AckOutcome() != nil || len(reply.Records) != 3 {
			t.Errorf("ask: %+v, %v", reply, err)
		}
	}
	for range 5 {
		ask()
	}
	if n := reportsStreams(p.reqHost, p.ansHost.ID()); n != 1 {
		t.Fatalf("5 exchanges one after another left %d streams open, want the 1 they shared", n)
	}

	const together = 6
	var wg sync.WaitGroup
	for range together {
		wg.Go(ask)
	}
	wg.Wait()
	open := reportsStreams(p.reqHost, p.ansHost.ID())
	if open < 1 || open > together {
		t.Fatalf("%d exchanges at once left %d streams open", together, open)
	}
	for range 10 {
		ask()
	}
	if n := reportsStreams(p.reqHost, p.ansHost.ID()); n != open {
		t.Fatalf("10 more exchanges one after another: %d streams open, want the %d kept", n, open)
	}

	// Unacknowledged: the stream ends with the exchange.
	if _, err := p.ask(context.Background()); err != nil {
		t.Fatal(err)
	}
	// It took a kept stream: one fewer is left on each side.
	testkit.Eventually(t, 10*time.Second, func() error {
		if n := reportsStreams(p.ansHost, p.reqHost.ID()); n != open-1 {
			return fmt.Errorf("answering side: %d streams open, want %d", n, open-1)
		}
		return nil
	})
}

// realPair is a requesting and an answering region on real hosts over
// loopback TCP (mocknet's streams have no deadlines), the answering one
// serving h with cfg.
func realPair(t *testing.T, h p2p.Handler, cfg p2p.ServerConfig) (client *p2p.Client, req, ans region, reqHost, ansHost host.Host) {
	t.Helper()
	req, ans = newRegion(t, 0), newRegion(t, 1)
	var hosts []host.Host
	var members []*p2p.Membership
	for _, r := range []region{req, ans} {
		m := p2p.NewMembership(testkit.LoggerAt(t, slog.LevelDebug), nil)
		hh, err := p2p.NewHost(p2p.HostConfig{Key: r.Key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Members: m, Logger: testkit.LoggerAt(t, slog.LevelDebug)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { hh.Close() })
		hosts, members = append(hosts, hh), append(members, m)
	}
	var all []credit.RegionMember
	for i, r := range []region{req, ans} {
		m := r.Member
		for _, a := range hosts[i].Addrs() {
			m.Addrs = append(m.Addrs, a.String())
		}
		all = append(all, m)
	}
	for _, m := range members {
		if err := m.SetMembers(all); err != nil {
			t.Fatal(err)
		}
	}
	cfg.NetworkID, cfg.Handler, cfg.Logger = testNet, h, testkit.LoggerAt(t, slog.LevelDebug)
	srv, err := p2p.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Register(hosts[1])
	t.Cleanup(func() { srv.Close() })
	client, err = p2p.NewClient(p2p.ClientConfig{Host: hosts[0], NetworkID: testNet, Members: members[0], Timeout: 20 * time.Second, Logger: testkit.LoggerAt(t, slog.LevelDebug)})
	if err != nil {
		t.Fatal(err)
	}
	return client, req, ans, hosts[0], hosts[1]
}

// TestKeptStreamClosedByRegion: a region that closed an idle stream (its
// idle bound passed) costs the next exchange nothing: it runs on a new
// stream.
func TestKeptStreamClosedByRegion(t *testing.T) {
	if testing.Short() {
		t.Skip("real transports on loopback")
	}
	ans := newRegion(t, 1)
	client, req, _, reqHost, ansHost := realPair(t, answering(t, ans, testRecords(testSubject(t), 2, false), 2), p2p.ServerConfig{IdleTimeout: 50 * time.Millisecond})
	_, qj := newQuery(t, testSubject(t), ans)
	ack := func(r *p2p.Reply) *credit.Ack {
		a, err := credit.NewAck(&r.Receipt, req.Member.ID, time.Now(), req.Key)
		if err != nil {
			t.Error(err)
			return nil
		}
		return &a
	}
	for i := range 3 {
		// A new query each time: the answering side refuses none as replayed.
		_, qj = newQuery(t, testSubject(t), ans)
		reply, err := client.Ask(context.Background(), ans.Member.ID, p2p.EncodeRequest(req.Member.ID, qj), ack)
		if err != nil || reply.AckOutcome() != nil || len(reply.Records) != 2 {
			t.Fatalf("ask %d: %v", i, err)
		}
		// The region ends the idle stream; the requester still holds it.
		testkit.Eventually(t, 10*time.Second, func() error {
			if n := reportsStreams(ansHost, reqHost.ID()); n != 0 {
				return fmt.Errorf("answering side: %d streams open", n)
			}
			return nil
		})
	}
}

// TestCloseEndsIdleStreams: an idle stream does not hold up the server's
// Close.
func TestCloseEndsIdleStreams(t *testing.T) {
	var p *pair
	h := &handler{}
	h.answer = func(ctx context.Context, from peer.ID, req *p2p.Request, w p2p.AnswerWriter) error {
		return answering(t, p.ans, nil, 1).answer(ctx, from, req, w)
	}
	p = newPair(t, h, p2p.ServerConfig{})
	if reply, err := p.client.Ask(context.Background(), p.ans.Member.ID, p.request, signingAcker(t, p)); err != nil || reply.AckOutcome() != nil {
		t.Fatalf("ask: %v", err)
	}
	if n := reportsStreams(p.ansHost, p.reqHost.ID()); n != 1 {
		t.Fatalf("%d streams idle, want 1", n)
	}
	closed := make(chan error, 1)
	go func() { closed <- p.server.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Server.Close waited for an idle stream")
	}
}
