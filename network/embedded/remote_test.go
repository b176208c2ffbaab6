package embedded

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"

	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/network/ledgertest"
)

// remoteHarness is harness with every client reaching s over HTTP, as the
// nodes of other processes do.
func remoteHarness(t *testing.T, s *Server) ledgertest.Harness {
	h := harness(t, s)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	for i := range h.Regions {
		r := &h.Regions[i]
		rc, err := Dial(srv.URL, r.Ledger.Identity(), r.Key)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rc.Close() })
		r.Ledger = rc
	}
	out := h.Outsider.(*Client)
	rc, err := Dial(srv.URL, out.msp, out.key)
	if err != nil {
		t.Fatal(err)
	}
	h.Outsider = rc
	return h
}

// The served ledger passes the same conformance suite as the in-process
// client and the Fabric backend.
func TestRemoteConformance(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ledgertest.Run(t, remoteHarness(t, s))
	if err := s.VerifyChain(); err != nil {
		t.Fatalf("chain after the suite: %v", err)
	}
}

// A remote caller cannot act as another identity: the hosting server
// authenticates every transaction by its signature.
func TestRemoteWrongKeyDenied(t *testing.T) {
	s, err := Open("", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := remoteHarness(t, s)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	rc, err := Dial(srv.URL, h.Regions[0].Ledger.Identity(), stranger)
	if err != nil {
		t.Fatal(err)
	}
	err = rc.Bootstrap(t.Context(), nil, nil)
	if !errors.Is(err, network.ErrDenied) {
		t.Fatalf("bootstrap signed by a stranger's key for %s: %v, want ErrDenied", h.Regions[0].Ledger.Identity(), err)
	}
	if _, err := Dial("ftp://x", "SZMSP", stranger); !errors.Is(err, network.ErrInvalid) {
		t.Fatalf("dial of a non-HTTP address: %v", err)
	}
}

// The event stream reveals every transaction's effects, so a subscription
// must be a proposal signed by a registered identity, fresh and never seen
// before, as a transaction is: an unsigned request, one signed by a key
// not the identity's, and a copied subscription get no stream.
func TestRemoteEventsNeedAuthentication(t *testing.T) {
	s, err := Open("", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := harness(t, s)
	ctx := t.Context()
	var members []credit.RegionMember
	for _, r := range h.Regions {
		members = append(members, r.Member)
	}
	if err := h.Regions[0].Ledger.Bootstrap(ctx, members, nil); err != nil {
		t.Fatal(err)
	}
	// Capture the subscription bodies a caller sends.
	var mu sync.Mutex
	var subs [][]byte
	inner := s.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/events" && r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			subs = append(subs, body)
			mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		inner.ServeHTTP(w, r)
	}))
	defer srv.Close()

	// No stream without a signed subscription.
	for _, req := range []struct{ method, body string }{
		{http.MethodGet, ""},
		{http.MethodPost, ""},
		{http.MethodPost, `{"caller":"` + h.Regions[0].Ledger.Identity() + `","function":"Events","args":["0",""],"nonce":"00"}`},
	} {
		r, _ := http.NewRequestWithContext(ctx, req.method, srv.URL+"/v1/events?block=0", strings.NewReader(req.body))
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || bytes.Contains(b, []byte(`"position"`)) {
			t.Fatalf("%s /v1/events with body %q: status %d, %s; want no stream", req.method, req.body, resp.StatusCode, b)
		}
	}

	// A key that is not the identity's is denied.
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	forged, err := Dial(srv.URL, h.Regions[0].Ledger.Identity(), stranger)
	if err != nil {
		t.Fatal(err)
	}
	defer forged.Close()
	if ch, err := forged.Subscribe(ctx, network.Position{}); !errors.Is(err, network.ErrDenied) {
		if ch != nil {
			for range ch {
			}
		}
		t.Fatalf("subscription signed by a stranger for %s: %v, want ErrDenied", h.Regions[0].Ledger.Identity(), err)
	}

	// The identity's own subscription streams the ledger's events.
	sz := h.Regions[0]
	rc, err := Dial(srv.URL, sz.Ledger.Identity(), sz.Key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	sctx, cancel := context.WithCancel(ctx)
	ch, err := rc.Subscribe(sctx, network.Position{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the stream closed before its first event")
		}
		if ev.Position.Block == 0 {
			t.Fatalf("first event %+v has no block", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s on an authenticated subscription")
	}
	cancel()
	for range ch {
	}

	// Its subscription copied off the wire and sent again is refused.
	mu.Lock()
	copied := subs[len(subs)-1]
	mu.Unlock()
	resp, err := http.Post(srv.URL+"/v1/events", "application/json", bytes.NewReader(copied))
	if err != nil {
		t.Fatal(err)
	}
	var refusal remoteError
	_ = json.NewDecoder(resp.Body).Decode(&refusal)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK || refusal.Kind != network.ErrDenied.Error() || !strings.Contains(refusal.Msg, "replayed") {
		t.Fatalf("replayed subscription: status %d, %+v; want it denied as replayed", resp.StatusCode, refusal)
	}
}

// TestRemoteCandidateProposesItself: an identity the served ledger does
// not know may call ProposeRegion only, signed by the key its own
// descriptor names; it is registered when the proposal is accepted.
func TestRemoteCandidateProposesItself(t *testing.T) {
	s, err := Open("", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	h := harness(t, s)
	ctx := context.Background()
	var members []credit.RegionMember
	for _, r := range h.Regions {
		members = append(members, r.Member)
	}
	if err := h.Regions[0].Ledger.Bootstrap(ctx, members, nil); err != nil {
		t.Fatal(err)
	}
	cand, key := ledgertest.NewRegion("441900", "Dongguan", "DGMSP", "4419")
	dial := func(msp string, k ed25519.PrivateKey) *Remote {
		r, err := Dial(srv.URL, msp, k)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	self := dial("DGMSP", key)
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)

	// Before acceptance: every other function is refused, reads included.
	if _, err := self.Regions(ctx); !errors.Is(err, network.ErrDenied) {
		t.Fatalf("a candidate's read before acceptance: %v, want denied", err)
	}
	if err := self.UpdateRegion(ctx, cand); !errors.Is(err, network.ErrDenied) {
		t.Fatalf("a candidate's UpdateRegion before acceptance: %v, want denied", err)
	}
	// Signed by another key than the descriptor's, or for another MSP id.
	if _, err := dial("DGMSP", stranger).ProposeRegion(ctx, cand); !errors.Is(err, network.ErrDenied) {
		t.Fatalf("a proposal not signed by the descriptor's key: %v, want denied", err)
	}
	if _, err := dial("OtherMSP", key).ProposeRegion(ctx, cand); !errors.Is(err, network.ErrDenied) {
		t.Fatalf("a proposal by an MSP id other than the descriptor's: %v, want denied", err)
	}
	p, err := self.ProposeRegion(ctx, cand)
	if err != nil || p.Status != credit.ProposalOpen {
		t.Fatalf("the candidate's own proposal: %+v %v", p, err)
	}
	if _, err := self.Regions(ctx); !errors.Is(err, network.ErrDenied) {
		t.Fatalf("a candidate's read after proposing: %v, want denied until acceptance", err)
	}
	for _, r := range h.Regions[:2] {
		if _, err := r.Ledger.ApproveRegion(ctx, cand.ID); err != nil {
			t.Fatal(err)
		}
	}
	// Accepted: the identity acts as the member it now is.
	m, err := self.Region(ctx, cand.ID)
	if err != nil || m.Status != credit.StatusActive {
		t.Fatalf("the admitted region reads its record: %+v %v", m, err)
	}
	m.Addrs = []string{"/ip4/127.0.0.1/tcp/4409"}
	if err := self.UpdateRegion(ctx, m); err != nil {
		t.Fatalf("the admitted region updates its record: %v", err)
	}
	if err := s.VerifyChain(); err != nil {
		t.Fatal(err)
	}
}
