package embedded

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/network/ledgertest"
)

func harness(t testing.TB, s *Server) ledgertest.Harness {
	t.Helper()
	var h ledgertest.Harness
	for _, r := range []struct {
		id, name, msp, div string
	}{{"440300", "Shenzhen", "SZMSP", "4403"}, {"440100", "Guangzhou", "GZMSP", "4401"}, {"440400", "Zhuhai", "ZHMSP", "4404"}} {
		m, key := ledgertest.NewRegion(credit.RegionID(r.id), r.name, r.msp, r.div)
		// On the embedded ledger the MSP identity key is the region's key.
		if err := s.AddIdentity(r.msp, m.PubKey); err != nil {
			t.Fatal(err)
		}
		h.Regions = append(h.Regions, ledgertest.Region{Member: m, Key: key, Ledger: s.Client(r.msp, key)})
	}
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	if err := s.AddIdentity("AuditorMSP", pub); err != nil {
		t.Fatal(err)
	}
	h.Outsider = s.Client("AuditorMSP", key)
	return h
}

func TestConformance(t *testing.T) {
	for _, mode := range []string{"memory", "disk"} {
		t.Run(mode, func(t *testing.T) {
			s, err := Open(t.TempDir(), Options{InMemory: mode == "memory"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			ledgertest.Run(t, harness(t, s))
			if err := s.VerifyChain(); err != nil {
				t.Fatalf("chain after the suite: %v", err)
			}
		})
	}
}

func TestUnsignedAndUnknownCallersDenied(t *testing.T) {
	s, err := Open("", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := harness(t, s)
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	// A registered MSP id with the wrong key: the proposal signature fails.
	impostor := s.Client("SZMSP", stranger)
	_, err = impostor.Regions(context.Background())
	if !errors.Is(err, network.ErrDenied) {
		t.Fatalf("impostor read: %v", err)
	}
	err = s.Client("NoSuchMSP", stranger).Bootstrap(context.Background(), []credit.RegionMember{h.Regions[0].Member}, nil)
	if !errors.Is(err, network.ErrDenied) {
		t.Fatalf("unknown identity: %v", err)
	}
	if err := s.AddIdentity("SZMSP", stranger.Public().(ed25519.PublicKey)); !errors.Is(err, network.ErrConflict) {
		t.Fatalf("re-registering an MSP id with another key: %v", err)
	}
}

func TestRestartKeepsStateHistoryAndEvents(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := harness(t, s)
	a := h.Regions[0]
	var members []credit.RegionMember
	for _, r := range h.Regions {
		members = append(members, r.Member)
	}
	if err := a.Ledger.Bootstrap(ctx, members, nil); err != nil {
		t.Fatal(err)
	}
	c := credit.ConsentCommitment{ID: "consent-restart-1", Commitment: make([]byte, 32), Region: a.Member.ID,
		ValidFrom: s.now().Add(-1e9), ValidUntil: s.now().Add(1e15)}
	if err := a.Ledger.RecordConsent(ctx, c); err != nil {
		t.Fatal(err)
	}
	rev, err := a.Ledger.RevokeConsent(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	height := s.Height()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Height() != height {
		t.Fatalf("height %d after restart, want %d", s2.Height(), height)
	}
	l := s2.Client("SZMSP", a.Key)
	got, err := l.Consent(ctx, c.ID)
	if err != nil || got.Status != credit.ConsentRevoked {
		t.Fatalf("consent after restart: %+v, %v", got, err)
	}
	_, st, err := l.ConsentAt(ctx, c.ID, rev.RevokedAt.Add(-1))
	if err != nil || st != credit.ConsentActive {
		t.Fatalf("history after restart: %s, %v", st, err)
	}
	if err := a.Ledger.Bootstrap(ctx, members, nil); err == nil {
		t.Fatal("old client still works on a closed server")
	}
	if err := l.Bootstrap(ctx, members, nil); !errors.Is(err, network.ErrConflict) {
		t.Fatalf("bootstrap after restart: %v", err)
	}
	// New blocks continue the chain.
	if err := l.RecordConsent(ctx, credit.ConsentCommitment{ID: "consent-restart-2", Commitment: make([]byte, 32), Region: a.Member.ID,
		ValidFrom: s2.now(), ValidUntil: s2.now().Add(1e12)}); err != nil {
		t.Fatal(err)
	}
	if err := s2.VerifyChain(); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyChainFindsTampering(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(*Server) error
	}{
		{"block contents", func(s *Server) error { return s.TamperBlockForTest(2, "RevokeConsent") }},
		{"state value", func(s *Server) error {
			return s.TamperStateForTest("consent/consent-tamper-1", []byte(`{"status":"active"}`))
		}},
		{"key history", func(s *Server) error {
			return s.TamperHistoryForTest("consent/consent-tamper-1", 3, []byte(`{"status":"active"}`))
		}},
		{"state key no block wrote", func(s *Server) error { return s.TamperStateForTest("consent/consent-forged", []byte(`{}`)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			h := harness(t, s)
			a := h.Regions[0]
			if err := ledgertest.Bootstrap(t.Context(), h.Regions); err != nil {
				t.Fatal(err)
			}
			c := credit.ConsentCommitment{ID: "consent-tamper-1", Commitment: make([]byte, 32), Region: a.Member.ID,
				ValidFrom: s.now().Add(-time.Hour), ValidUntil: s.now().Add(time.Hour)}
			if err := a.Ledger.RecordConsent(t.Context(), c); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Ledger.RevokeConsent(t.Context(), c.ID); err != nil {
				t.Fatal(err)
			}
			if err := s.VerifyChain(); err != nil {
				t.Fatalf("untouched ledger: %v", err)
			}
			if err := tc.tamper(s); err != nil {
				t.Fatal(err)
			}
			s.Close()
			// An auditor opens the folder afresh.
			s2, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			if err := s2.VerifyChain(); !errors.Is(err, ErrChainBroken) {
				t.Fatalf("tampered ledger: VerifyChain = %v", err)
			}
		})
	}
}

// A subscription ends when its context does or when the server closes:
// the channel closes, so the subscriber knows to resubscribe.
func TestSubscriptionEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(cancel context.CancelFunc, s *Server)
	}{
		{"context cancelled", func(cancel context.CancelFunc, _ *Server) { cancel() }},
		{"server closed", func(_ context.CancelFunc, s *Server) { s.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open("", Options{InMemory: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			h := harness(t, s)
			if err := ledgertest.Bootstrap(t.Context(), h.Regions); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			ch, err := h.Regions[0].Ledger.Subscribe(ctx, network.Position{})
			if err != nil {
				t.Fatal(err)
			}
			if ev := <-ch; ev.Kind != network.EventMemberChanged || ev.Position.Block != 1 {
				t.Fatalf("first event %+v", ev)
			}
			tc.end(cancel, s)
			deadline := time.After(10 * time.Second)
			for {
				select {
				case _, ok := <-ch:
					if !ok {
						return
					}
				case <-deadline:
					t.Fatal("the event channel did not close")
				}
			}
		})
	}
}

func TestIdentitiesAtOpening(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	dir := t.TempDir()
	s, err := Open(dir, Options{Identities: map[string]ed25519.PublicKey{"SZMSP": pub}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client("SZMSP", key).Regions(t.Context()); err != nil {
		t.Fatalf("identity given at opening: %v", err)
	}
	s.Close()
	// The registry is persisted: a different key for the same MSP id is
	// refused on the next opening.
	if s, err := Open(dir, Options{Identities: map[string]ed25519.PublicKey{"SZMSP": other}}); !errors.Is(err, network.ErrConflict) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("reopening with another key for SZMSP: %v", err)
	}
}

// A ledger folder can reach an auditor from anywhere: garbage in it is
// reported as an error, never a panic.
func TestCorruptFolderIsAnError(t *testing.T) {
	for _, tc := range []struct {
		name       string
		key, value []byte
	}{
		{"short height", []byte(keyHeight), []byte{1, 2}},
		{"height past the chain", []byte(keyHeight), []byte{0, 0, 0, 0, 0, 0, 0, 99}},
		{"head block not JSON", blockKey(2), []byte("\x00garbage")},
		{"block not JSON", blockKey(1), []byte("\x00garbage")},
		{"block with another number", blockKey(1), []byte(`{"number":7}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			h := harness(t, s)
			if err := ledgertest.Bootstrap(t.Context(), h.Regions); err != nil {
				t.Fatal(err)
			}
			if err := h.Regions[1].Ledger.UpdateRegion(t.Context(), h.Regions[1].Member); err != nil {
				t.Fatal(err)
			}
			if err := s.TamperRawForTest(tc.key, tc.value); err != nil {
				t.Fatal(err)
			}
			s.Close()
			// Either opening or verifying must refuse it.
			s2, err := Open(dir, Options{})
			if err != nil {
				t.Logf("Open: %v", err)
				return
			}
			defer s2.Close()
			if err := s2.VerifyChain(); err == nil {
				t.Fatal("VerifyChain accepted a corrupt block")
			}
		})
	}
}

// Closing while clients read and subscribe is safe: reads then fail as
// unavailable, and the subscription ends.
func TestCloseDuringReads(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := harness(t, s)
	if err := ledgertest.Bootstrap(t.Context(), h.Regions); err != nil {
		t.Fatal(err)
	}
	ch, err := h.Regions[0].Ledger.Subscribe(t.Context(), network.Position{})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, len(h.Regions))
	started := make(chan struct{}, len(h.Regions))
	for _, r := range h.Regions {
		go func() {
			for i := 0; ; i++ {
				if _, err := r.Ledger.Regions(t.Context()); err != nil {
					errs <- err
					return
				}
				if i == 0 {
					started <- struct{}{}
				}
			}
		}()
	}
	for range h.Regions {
		<-started
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range h.Regions {
		if err := <-errs; !errors.Is(err, network.ErrUnavailable) {
			t.Fatalf("read after close: %v", err)
		}
	}
	for range ch {
	}
}

// A test moves the ledger's clock: transactions, their events and consent
// history carry its time, and a clock set back never makes a block older
// than the one before.
func TestClock(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(t time.Time) { mu.Lock(); defer mu.Unlock(); now = t }
	s, err := Open("", Options{InMemory: true, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := harness(t, s)
	a := h.Regions[0]
	if err := ledgertest.Bootstrap(t.Context(), h.Regions); err != nil {
		t.Fatal(err)
	}
	recorded := now.Add(time.Hour)
	set(recorded)
	c := credit.ConsentCommitment{ID: "consent-clock-1", Commitment: make([]byte, 32), Region: a.Member.ID,
		ValidFrom: recorded, ValidUntil: recorded.Add(24 * time.Hour)}
	if err := a.Ledger.RecordConsent(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	set(recorded.Add(-time.Minute)) // set back
	rev, err := a.Ledger.RevokeConsent(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := recorded.Add(time.Microsecond); !rev.RevokedAt.Equal(want) {
		t.Fatalf("revoked at %s under a clock set back, want %s", rev.RevokedAt, want)
	}
	got, st, err := a.Ledger.ConsentAt(t.Context(), c.ID, recorded)
	if err != nil || st != credit.ConsentActive || !got.RecordedAt.Equal(recorded) {
		t.Fatalf("ConsentAt(recorded) = %s %+v, %v; want active, recorded at %s", st, got, err, recorded)
	}
	ch, err := a.Ledger.Subscribe(t.Context(), network.Position{Block: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []time.Time{recorded, recorded.Add(time.Microsecond)} {
		if ev := <-ch; !ev.Time.Equal(want) {
			t.Fatalf("event %s at %s, want %s", ev.Kind, ev.Time, want)
		}
	}
}
