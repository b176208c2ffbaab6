package ledgerfault_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/network/embedded"
	"github.com/prdcredit/ccnode/network/ledgerfault"
	"github.com/prdcredit/ccnode/network/ledgertest"
)

// world is the embedded ledger in memory with three regions and an
// outsider, every client behind one Faults.
type world struct {
	srv *embedded.Server
	f   *ledgerfault.Faults
	h   ledgertest.Harness
}

func newWorld(t *testing.T) *world {
	t.Helper()
	s, err := embedded.Open("", embedded.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	w := &world{srv: s, f: ledgerfault.New()}
	for _, r := range []struct{ id, name, msp, div string }{
		{"440300", "Shenzhen", "SZMSP", "4403"}, {"440100", "Guangzhou", "GZMSP", "4401"}, {"440400", "Zhuhai", "ZHMSP", "4404"},
	} {
		m, key := ledgertest.NewRegion(credit.RegionID(r.id), r.name, r.msp, r.div)
		if err := s.AddIdentity(r.msp, m.PubKey); err != nil {
			t.Fatal(err)
		}
		w.h.Regions = append(w.h.Regions, ledgertest.Region{Member: m, Key: key, Ledger: w.f.Wrap(s.Client(r.msp, key))})
	}
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	if err := s.AddIdentity("AuditorMSP", pub); err != nil {
		t.Fatal(err)
	}
	w.h.Outsider = w.f.Wrap(s.Client("AuditorMSP", key))
	return w
}

// bootstrapped is a world whose members are on the ledger.
func bootstrapped(t *testing.T) *world {
	t.Helper()
	w := newWorld(t)
	if err := ledgertest.Bootstrap(t.Context(), w.h.Regions); err != nil {
		t.Fatal(err)
	}
	return w
}

// With no fault set, the wrapper is the ledger: it passes the suite every
// backend passes.
func TestConformance(t *testing.T) {
	w := newWorld(t)
	ledgertest.Run(t, w.h)
	if err := w.srv.VerifyChain(); err != nil {
		t.Fatal(err)
	}
}

// consent is a fresh commitment region r may record.
func consent(r ledgertest.Region) credit.ConsentCommitment {
	var b [6]byte
	_, _ = rand.Read(b[:])
	now := time.Now().UTC()
	return credit.ConsentCommitment{ID: "consent-fault-" + hex.EncodeToString(b[:]), Commitment: make([]byte, 32),
		Region: r.Member.ID, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour)}
}

// calls are one call of every operation, as a region would make them.
func calls(t testing.TB, r ledgertest.Region) map[string]func(context.Context, network.Ledger) error {
	c := consent(r)
	auth, _ := ledgertest.NewAuthority(t, "fault CA", r.Member.ID, r.Member.Divisions...)
	rev := credit.CertRevocation{ID: auth.ID, Authority: auth.ID} // any id of RevocationID's form
	return map[string]func(context.Context, network.Ledger) error{
		"Bootstrap": func(ctx context.Context, l network.Ledger) error {
			return l.Bootstrap(ctx, []credit.RegionMember{r.Member}, nil)
		},
		"Regions":      func(ctx context.Context, l network.Ledger) error { _, err := l.Regions(ctx); return err },
		"Region":       func(ctx context.Context, l network.Ledger) error { _, err := l.Region(ctx, r.Member.ID); return err },
		"UpdateRegion": func(ctx context.Context, l network.Ledger) error { return l.UpdateRegion(ctx, r.Member) },
		"ProposeRegion": func(ctx context.Context, l network.Ledger) error {
			_, err := l.ProposeRegion(ctx, r.Member)
			return err
		},
		"ApproveRegion": func(ctx context.Context, l network.Ledger) error {
			_, err := l.ApproveRegion(ctx, "441900")
			return err
		},
		"RetireRegion": func(ctx context.Context, l network.Ledger) error { _, err := l.RetireRegion(ctx, "441900"); return err },
		"RegionProposals": func(ctx context.Context, l network.Ledger) error {
			_, err := l.RegionProposals(ctx)
			return err
		},
		"Banks": func(ctx context.Context, l network.Ledger) error { _, err := l.Banks(ctx); return err },
		"Bank":  func(ctx context.Context, l network.Ledger) error { _, err := l.Bank(ctx, "bank-x"); return err },
		"RegisterBank": func(ctx context.Context, l network.Ledger) error {
			return l.RegisterBank(ctx, credit.BankMember{ID: "bank-x", Name: "X", Region: r.Member.ID, PubKey: r.Member.PubKey})
		},
		"RetireBank":    func(ctx context.Context, l network.Ledger) error { return l.RetireBank(ctx, "bank-x") },
		"RecordConsent": func(ctx context.Context, l network.Ledger) error { return l.RecordConsent(ctx, c) },
		"RevokeConsent": func(ctx context.Context, l network.Ledger) error { _, err := l.RevokeConsent(ctx, c.ID); return err },
		"Consent":       func(ctx context.Context, l network.Ledger) error { _, err := l.Consent(ctx, c.ID); return err },
		"ConsentAt": func(ctx context.Context, l network.Ledger) error {
			_, _, err := l.ConsentAt(ctx, c.ID, time.Now())
			return err
		},
		"AnchorCheckpoint": func(ctx context.Context, l network.Ledger) error {
			cp := credit.Checkpoint{Region: r.Member.ID, Size: 1, Root: make([]byte, 32)}
			if err := cp.Sign(ledgertest.Network, r.Key); err != nil {
				return err
			}
			_, err := l.AnchorCheckpoint(ctx, cp, nil)
			return err
		},
		"LatestCheckpoint": func(ctx context.Context, l network.Ledger) error {
			_, err := l.LatestCheckpoint(ctx, r.Member.ID)
			return err
		},
		"CheckpointHistory": func(ctx context.Context, l network.Ledger) error {
			_, err := l.CheckpointHistory(ctx, r.Member.ID)
			return err
		},
		"RegisterAuthority": func(ctx context.Context, l network.Ledger) error { return l.RegisterAuthority(ctx, auth) },
		"RetireAuthority": func(ctx context.Context, l network.Ledger) error {
			_, err := l.RetireAuthority(ctx, auth.ID)
			return err
		},
		"Authorities": func(ctx context.Context, l network.Ledger) error { _, err := l.Authorities(ctx); return err },
		"RevokeCertificate": func(ctx context.Context, l network.Ledger) error {
			_, err := l.RevokeCertificate(ctx, rev)
			return err
		},
		"Revocations": func(ctx context.Context, l network.Ledger) error { _, err := l.Revocations(ctx); return err },
		"Subscribe": func(ctx context.Context, l network.Ledger) error {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			_, err := l.Subscribe(ctx, network.Position{})
			return err
		},
	}
}

func wantFault(t *testing.T, err, kind error, op string) {
	t.Helper()
	var ne *network.Error
	if !errors.Is(err, kind) || !errors.As(err, &ne) || ne.Op != op {
		t.Fatalf("%s: got %v, want a *network.Error of %s wrapping %v", op, err, op, kind)
	}
}

// next receives one event or fails after a generous deadline.
func next(t *testing.T, ch <-chan network.Event) network.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("subscription ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	return network.Event{}
}

// ends waits for the subscription's channel to close, draining it.
func ends(t *testing.T, ch <-chan network.Event) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("subscription did not end")
		}
	}
}

// nothing checks no event is waiting; the faults guarantee none can be
// delivered while they hold, so there is nothing to wait for.
func nothing(t *testing.T, ch <-chan network.Event) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		t.Fatalf("delivered %+v (open %v) while faults hold events back", ev, ok)
	default:
	}
}

func TestDown(t *testing.T) {
	w := bootstrapped(t)
	ctx := t.Context()
	a, b := w.h.Regions[0], w.h.Regions[1]
	live, err := b.Ledger.Subscribe(ctx, network.Position{})
	if err != nil {
		t.Fatal(err)
	}
	first := next(t, live)
	height := w.srv.Height()

	w.f.SetDown(true)
	for op, call := range calls(t, a) {
		t.Run(op, func(t *testing.T) {
			for _, l := range []network.Ledger{a.Ledger, b.Ledger, w.h.Outsider} {
				wantFault(t, call(ctx, l), network.ErrUnavailable, op)
			}
		})
	}
	ends(t, live)
	if got := w.srv.Height(); got != height {
		t.Fatalf("a write reached the ledger while it was down: height %d, was %d", got, height)
	}

	w.f.SetDown(false)
	c := consent(a)
	if err := a.Ledger.RecordConsent(ctx, c); err != nil {
		t.Fatalf("write after the ledger came back: %v", err)
	}
	// Resubscribing from the last event processed misses nothing.
	again, err := b.Ledger.Subscribe(ctx, first.Position)
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, again); ev.Kind != network.EventConsentRecorded || ev.Consent.ID != c.ID {
		t.Fatalf("after resubscribing: %+v", ev)
	}
}

func TestSetError(t *testing.T) {
	injected := errors.New("injected")
	for _, tc := range []struct {
		name   string
		set    string   // the op SetError names
		failed []string // ops that must fail
		works  []string // ops that must still reach the ledger
	}{
		{"one read", "Regions", []string{"Regions"}, []string{"Region", "Banks", "Subscribe"}},
		{"one write", "AnchorCheckpoint", []string{"AnchorCheckpoint"}, []string{"RecordConsent", "Regions"}},
		{"authority write", "RegisterAuthority", []string{"RegisterAuthority"}, []string{"Authorities", "Revocations", "RecordConsent"}},
		{"subscribe", "Subscribe", []string{"Subscribe"}, []string{"Regions", "RecordConsent"}},
		{"every op", "", []string{"Bootstrap", "Regions", "Region", "UpdateRegion", "Banks", "Bank", "RegisterBank",
			"RetireBank", "RecordConsent", "RevokeConsent", "Consent", "ConsentAt", "AnchorCheckpoint", "LatestCheckpoint",
			"CheckpointHistory", "RegisterAuthority", "RetireAuthority", "Authorities", "RevokeCertificate", "Revocations",
			"Subscribe"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := bootstrapped(t)
			ctx := t.Context()
			a := w.h.Regions[0]
			w.f.SetError(tc.set, injected)
			cs := calls(t, a)
			height := w.srv.Height()
			for _, op := range tc.failed {
				wantFault(t, cs[op](ctx, a.Ledger), injected, op)
			}
			if got := w.srv.Height(); got != height {
				t.Fatalf("a failed write reached the ledger: height %d, was %d", got, height)
			}
			for _, op := range tc.works {
				if err := cs[op](ctx, a.Ledger); err != nil {
					t.Fatalf("%s with only %q failing: %v", op, tc.set, err)
				}
			}
			w.f.SetError(tc.set, nil)
			for _, op := range tc.failed {
				if err := cs[op](ctx, a.Ledger); errors.Is(err, injected) {
					t.Fatalf("%s after clearing: %v", op, err)
				}
			}
		})
	}
}

// An error set for one op wins over the one set for all; the kind can be
// one of network's sentinels, so callers see what a backend would return.
func TestSetErrorOpWinsOverAll(t *testing.T) {
	w := bootstrapped(t)
	a := w.h.Regions[0]
	w.f.SetError("", network.ErrUnavailable)
	w.f.SetError("Consent", network.ErrNotFound)
	_, err := a.Ledger.Consent(t.Context(), "any")
	wantFault(t, err, network.ErrNotFound, "Consent")
	_, err = a.Ledger.Regions(t.Context())
	wantFault(t, err, network.ErrUnavailable, "Regions")
}

func TestSetErrorUnknownOpPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("SetError of an unknown op did not panic")
		}
	}()
	ledgerfault.New().SetError("GetRegions", errors.New("x"))
}

func TestCommitDelay(t *testing.T) {
	t.Run("writes wait", func(t *testing.T) {
		w := bootstrapped(t)
		a := w.h.Regions[0]
		const d = 30 * time.Millisecond
		w.f.SetCommitDelay(d)
		start := time.Now()
		if err := a.Ledger.RecordConsent(t.Context(), consent(a)); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < d {
			t.Fatalf("write took %s, less than the %s commit delay", took, d)
		}
	})
	t.Run("reads do not", func(t *testing.T) {
		w := bootstrapped(t)
		a := w.h.Regions[0]
		// A delay no test outlives: any read it applied to would hang.
		w.f.SetCommitDelay(time.Hour)
		cs := calls(t, a)
		for _, op := range []string{"Regions", "Region", "Banks", "LatestCheckpoint", "CheckpointHistory", "Authorities", "Revocations", "Subscribe"} {
			if err := cs[op](t.Context(), a.Ledger); err != nil && !errors.Is(err, network.ErrNotFound) {
				t.Fatalf("%s: %v", op, err)
			}
		}
	})
	t.Run("context ends the wait", func(t *testing.T) {
		w := bootstrapped(t)
		a := w.h.Regions[0]
		w.f.SetCommitDelay(time.Hour)
		height := w.srv.Height()
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() { errc <- a.Ledger.RecordConsent(ctx, consent(a)) }()
		cancel()
		wantFault(t, <-errc, network.ErrUnavailable, "RecordConsent")
		if got := w.srv.Height(); got != height {
			t.Fatalf("a cancelled write was submitted: height %d, was %d", got, height)
		}
	})
	t.Run("down during the wait", func(t *testing.T) {
		w := bootstrapped(t)
		a := w.h.Regions[0]
		w.f.SetCommitDelay(time.Hour)
		height := w.srv.Height()
		errc := make(chan error, 1)
		go func() { errc <- a.Ledger.RecordConsent(t.Context(), consent(a)) }()
		w.f.SetDown(true)
		wantFault(t, <-errc, network.ErrUnavailable, "RecordConsent")
		if got := w.srv.Height(); got != height {
			t.Fatalf("a write was submitted to a down ledger: height %d, was %d", got, height)
		}
	})
}

func TestHoldEvents(t *testing.T) {
	w := bootstrapped(t)
	ctx := t.Context()
	a, b := w.h.Regions[0], w.h.Regions[1]
	held, err := b.Ledger.Subscribe(ctx, network.Position{})
	if err != nil {
		t.Fatal(err)
	}
	boot := next(t, held)
	// The bootstrap gives one event per member it wrote, at one Position.
	regions, err := a.Ledger.Regions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	banks, err := a.Ledger.Banks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range len(regions) + len(banks) - 1 {
		if ev := next(t, held); ev.Position != boot.Position {
			t.Fatalf("bootstrap event at %+v, want %+v", ev.Position, boot.Position)
		}
	}

	w.f.HoldEvents(true)
	var ids []string
	for range 3 {
		c := consent(a)
		if err := a.Ledger.RecordConsent(ctx, c); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	// The events are committed (a subscription past the wrapper sees
	// them) and reads see the new state; only the wrapped stream lags.
	direct, err := w.srv.Client(a.Member.MSPID, a.Key).Subscribe(ctx, boot.Position)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if ev := next(t, direct); ev.Consent == nil || ev.Consent.ID != id {
			t.Fatalf("unwrapped subscription: %+v, want consent %s", ev, id)
		}
	}
	if _, err := b.Ledger.Consent(ctx, ids[2]); err != nil {
		t.Fatalf("read while events are held: %v", err)
	}
	nothing(t, held)
	// A subscription made while held is held too.
	late, err := b.Ledger.Subscribe(ctx, boot.Position)
	if err != nil {
		t.Fatal(err)
	}
	nothing(t, late)

	w.f.HoldEvents(false)
	for _, ch := range []<-chan network.Event{held, late} {
		for _, id := range ids {
			if ev := next(t, ch); ev.Consent == nil || ev.Consent.ID != id {
				t.Fatalf("after release: %+v, want consent %s in order", ev, id)
			}
		}
	}

	// Going down while held ends the subscription.
	w.f.HoldEvents(true)
	w.f.SetDown(true)
	ends(t, held)
	ends(t, late)
}

// A subscription that ends through its own context, or because the wrapped
// ledger closed, closes its channel as the wrapped one would.
func TestSubscriptionEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(cancel context.CancelFunc, w *world)
	}{
		{"context cancelled", func(cancel context.CancelFunc, _ *world) { cancel() }},
		{"context cancelled while held", func(cancel context.CancelFunc, w *world) { w.f.HoldEvents(true); cancel() }},
		{"ledger closed", func(_ context.CancelFunc, w *world) { w.srv.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := bootstrapped(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			ch, err := w.h.Regions[0].Ledger.Subscribe(ctx, network.Position{})
			if err != nil {
				t.Fatal(err)
			}
			next(t, ch)
			tc.end(cancel, w)
			ends(t, ch)
		})
	}
}

// Every operation of network.Ledger can be faulted and is exercised by the
// tests above: a method added to the interface without a fault would pass
// through an outage unnoticed.
func TestEveryOperationCovered(t *testing.T) {
	w := newWorld(t)
	cs := calls(t, w.h.Regions[0])
	lt := reflect.TypeFor[network.Ledger]()
	for i := range lt.NumMethod() {
		op := lt.Method(i).Name
		if op == "Identity" || op == "Close" {
			continue
		}
		if _, ok := cs[op]; !ok {
			t.Errorf("%s has no call in calls()", op)
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("SetError(%q) panics: the op is unknown to ledgerfault", op)
				}
			}()
			w.f.SetError(op, nil)
		}()
	}
	if len(cs) != lt.NumMethod()-2 {
		t.Errorf("calls() has %d ops, network.Ledger %d", len(cs), lt.NumMethod()-2)
	}
}
