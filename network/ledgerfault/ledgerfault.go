// Package ledgerfault wraps any network.Ledger and injects the faults a
// node must survive: a ledger that is down, writes that take as long as an
// ordering service's batch, errors on chosen operations, and a stale view
// (events held back, then delivered in order). Tests run the embedded
// ledger in memory behind it; with no fault set it passes every call
// through unchanged, and it runs under network/ledgertest to prove it.
//
// It changes only whether and when a call reaches the wrapped ledger, never
// what the ledger answers, and owns no ledger state: what has committed is
// the wrapped ledger's to say (the embedded Server's Height counts its
// transactions).
package ledgerfault

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prdcredit/ccnode/chaincode"
	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// ops are the operations SetError names — network.Ledger's method names —
// and whether each writes (SetCommitDelay delays writes). They come from
// the contract's table: a read's method is its function's name without
// "Get" (GetRegions: Regions), a write's is the same name.
var ops = func() map[string]bool {
	m := map[string]bool{"Subscribe": false}
	for _, f := range chaincode.Funcs() {
		m[strings.TrimPrefix(f.Name, "Get")] = f.Submit
	}
	return m
}()

// Faults is one fault controller, shared by every client it wraps: setting
// a fault affects them all at once, as an outage of the shared ledger would.
// Its methods are safe for concurrent use. Make one with New.
type Faults struct {
	mu    sync.Mutex
	moved *sync.Cond // a pump has seen a new generation, or ended
	down  bool
	hold  bool
	delay time.Duration
	errs  map[string]error // op ("" = every op) -> injected error
	// gen counts changes of down, hold and errors; changed is closed and
	// replaced at each, waking pumps and delayed writes to see the change.
	gen     uint64
	changed chan struct{}
	pumps   map[*pump]struct{}
}

// New returns a controller with no fault set.
func New() *Faults {
	f := &Faults{errs: map[string]error{}, changed: make(chan struct{}), pumps: map[*pump]struct{}{}}
	f.moved = sync.NewCond(&f.mu)
	return f
}

// Wrap returns l behind the controller's faults. Closing the result closes l.
func (f *Faults) Wrap(l network.Ledger) network.Ledger { return &ledger{f: f, l: l} }

// SetDown makes every call fail with an error wrapping
// network.ErrUnavailable (true), or reach the ledger again (false). Going
// down ends every live subscription: its channel closes, and the subscriber
// resubscribes from its last position once the ledger is back. When
// SetDown(true) returns, no subscription delivers another event.
func (f *Faults) SetDown(down bool) {
	f.set(func() { f.down = down })
}

// SetCommitDelay makes every write wait d before it is submitted to the
// wrapped ledger, without holding other calls back: a model of Fabric's
// commit latency (the ordering service's batch timeout plus validation).
// A write whose context ends during the wait fails as unavailable and is
// not submitted. Reads are not delayed; 0 turns the delay off.
func (f *Faults) SetCommitDelay(d time.Duration) {
	f.mu.Lock()
	f.delay = d
	f.mu.Unlock()
}

// SetError makes the operation op (a network.Ledger method name, such as
// "AnchorCheckpoint" or "Subscribe"; "" for every operation) fail with a
// *network.Error whose Kind is err, without reaching the ledger; nil clears
// it. An error set for op wins over one set for "". It panics on an
// unknown op, which would otherwise inject nothing and pass silently.
func (f *Faults) SetError(op string, err error) {
	if _, ok := ops[op]; !ok && op != "" {
		panic(fmt.Sprintf("ledgerfault: SetError: %q is not a network.Ledger operation", op))
	}
	f.set(func() {
		if err == nil {
			delete(f.errs, op)
			return
		}
		f.errs[op] = err
	})
}

// HoldEvents makes every subscription deliver nothing while hold is true —
// the view of a node whose event stream lags — and then resume, in order,
// from the first event held; nothing is lost or repeated. Reads still see
// the current state. When HoldEvents(true) returns, no subscription
// delivers another event until HoldEvents(false).
func (f *Faults) HoldEvents(hold bool) {
	f.set(func() { f.hold = hold })
}

// set changes down, hold or errors, wakes every pump and waits until each has seen
// the change (or ended), so no event slips out after the setter returns.
func (f *Faults) set(change func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change()
	f.gen++
	close(f.changed)
	f.changed = make(chan struct{})
	for {
		behind := false
		for p := range f.pumps {
			if p.seen < f.gen {
				behind = true
				break
			}
		}
		if !behind {
			return
		}
		f.moved.Wait()
	}
}

// state is what a call or a pump needs to know of the faults.
type state struct {
	down, hold bool
	delay      time.Duration
	err        error
	changed    <-chan struct{}
}

func (f *Faults) state(op string) state {
	f.mu.Lock()
	defer f.mu.Unlock()
	err, ok := f.errs[op]
	if !ok {
		err = f.errs[""]
	}
	return state{down: f.down, hold: f.hold, delay: f.delay, err: err, changed: f.changed}
}

// check returns the fault op meets now, if any.
func (f *Faults) check(op string) error {
	s := f.state(op)
	switch {
	case s.down:
		return &network.Error{Op: op, Kind: network.ErrUnavailable, Msg: "ledger down (injected fault)"}
	case s.err != nil:
		return &network.Error{Op: op, Kind: s.err, Msg: "injected fault"}
	}
	return nil
}

// before runs the faults of op: for a write, the commit delay too, failing
// if the ledger goes down or the op is made to fail meanwhile.
func (f *Faults) before(ctx context.Context, op string) error {
	if err := f.check(op); err != nil {
		return err
	}
	s := f.state(op)
	if !ops[op] || s.delay <= 0 {
		return nil
	}
	t := time.NewTimer(s.delay)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return f.check(op)
		case <-ctx.Done():
			return &network.Error{Op: op, Kind: network.ErrUnavailable, Msg: "commit delay: " + ctx.Err().Error()}
		case <-s.changed:
			// A ledger that goes down fails the waiting write at once.
			if err := f.check(op); err != nil {
				return err
			}
			s = f.state(op)
		}
	}
}

// pump forwards one subscription's events while the faults allow.
type pump struct {
	seen uint64 // the generation of faults it has acted on; under Faults.mu
}

// observe records that p acts on the current faults and returns them.
func (f *Faults) observe(p *pump) state {
	f.mu.Lock()
	defer f.mu.Unlock()
	p.seen = f.gen
	f.moved.Broadcast()
	return state{down: f.down, hold: f.hold, changed: f.changed}
}

func (f *Faults) subscribe(ctx context.Context, l network.Ledger, from network.Position) (<-chan network.Event, error) {
	if err := f.check("Subscribe"); err != nil {
		return nil, err
	}
	ictx, cancel := context.WithCancel(ctx)
	in, err := l.Subscribe(ictx, from)
	if err != nil {
		cancel()
		return nil, err
	}
	p := &pump{}
	f.mu.Lock()
	p.seen = f.gen
	f.pumps[p] = struct{}{}
	f.mu.Unlock()
	out := make(chan network.Event)
	go func() {
		defer func() {
			cancel() // ends the inner subscription, which may be blocked sending
			f.mu.Lock()
			delete(f.pumps, p)
			f.moved.Broadcast()
			f.mu.Unlock()
			close(out)
		}()
		var pending *network.Event // taken from in, not yet delivered
		for {
			s := f.observe(p)
			if s.down {
				return
			}
			if s.hold {
				select {
				case <-s.changed:
				case <-ctx.Done():
					return
				}
				continue
			}
			if pending == nil {
				select {
				case ev, ok := <-in:
					if !ok {
						return
					}
					pending = &ev
				case <-s.changed:
				case <-ctx.Done():
					return
				}
				// Look at the faults again before delivering: they may have
				// changed while the event arrived.
				continue
			}
			select {
			case out <- *pending:
				pending = nil
			case <-s.changed:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// ledger is one wrapped client.
type ledger struct {
	f *Faults
	l network.Ledger
}

func (w *ledger) Identity() string { return w.l.Identity() }
func (w *ledger) Close() error     { return w.l.Close() }

func (w *ledger) Bootstrap(ctx context.Context, regions []credit.RegionMember, banks []credit.BankMember) error {
	if err := w.f.before(ctx, "Bootstrap"); err != nil {
		return err
	}
	return w.l.Bootstrap(ctx, regions, banks)
}

func (w *ledger) Regions(ctx context.Context) ([]credit.RegionMember, error) {
	if err := w.f.before(ctx, "Regions"); err != nil {
		return nil, err
	}
	return w.l.Regions(ctx)
}

func (w *ledger) Region(ctx context.Context, id credit.RegionID) (credit.RegionMember, error) {
	if err := w.f.before(ctx, "Region"); err != nil {
		return credit.RegionMember{}, err
	}
	return w.l.Region(ctx, id)
}

func (w *ledger) UpdateRegion(ctx context.Context, r credit.RegionMember) error {
	if err := w.f.before(ctx, "UpdateRegion"); err != nil {
		return err
	}
	return w.l.UpdateRegion(ctx, r)
}

func (w *ledger) ProposeRegion(ctx context.Context, r credit.RegionMember) (credit.RegionProposal, error) {
	if err := w.f.before(ctx, "ProposeRegion"); err != nil {
		return credit.RegionProposal{}, err
	}
	return w.l.ProposeRegion(ctx, r)
}

func (w *ledger) ApproveRegion(ctx context.Context, id credit.RegionID) (credit.RegionVote, error) {
	if err := w.f.before(ctx, "ApproveRegion"); err != nil {
		return credit.RegionVote{}, err
	}
	return w.l.ApproveRegion(ctx, id)
}

func (w *ledger) RetireRegion(ctx context.Context, id credit.RegionID) (credit.RegionVote, error) {
	if err := w.f.before(ctx, "RetireRegion"); err != nil {
		return credit.RegionVote{}, err
	}
	return w.l.RetireRegion(ctx, id)
}

func (w *ledger) RegionProposals(ctx context.Context) ([]credit.RegionProposal, error) {
	if err := w.f.before(ctx, "RegionProposals"); err != nil {
		return nil, err
	}
	return w.l.RegionProposals(ctx)
}

func (w *ledger) Banks(ctx context.Context) ([]credit.BankMember, error) {
	if err := w.f.before(ctx, "Banks"); err != nil {
		return nil, err
	}
	return w.l.Banks(ctx)
}

func (w *ledger) Bank(ctx context.Context, id credit.BankID) (credit.BankMember, error) {
	if err := w.f.before(ctx, "Bank"); err != nil {
		return credit.BankMember{}, err
	}
	return w.l.Bank(ctx, id)
}

func (w *ledger) RegisterBank(ctx context.Context, b credit.BankMember) error {
	if err := w.f.before(ctx, "RegisterBank"); err != nil {
		return err
	}
	return w.l.RegisterBank(ctx, b)
}

func (w *ledger) RetireBank(ctx context.Context, id credit.BankID) error {
	if err := w.f.before(ctx, "RetireBank"); err != nil {
		return err
	}
	return w.l.RetireBank(ctx, id)
}

func (w *ledger) RecordConsent(ctx context.Context, c credit.ConsentCommitment) error {
	if err := w.f.before(ctx, "RecordConsent"); err != nil {
		return err
	}
	return w.l.RecordConsent(ctx, c)
}

func (w *ledger) RevokeConsent(ctx context.Context, id string) (credit.ConsentCommitment, error) {
	if err := w.f.before(ctx, "RevokeConsent"); err != nil {
		return credit.ConsentCommitment{}, err
	}
	return w.l.RevokeConsent(ctx, id)
}

func (w *ledger) Consent(ctx context.Context, id string) (credit.ConsentCommitment, error) {
	if err := w.f.before(ctx, "Consent"); err != nil {
		return credit.ConsentCommitment{}, err
	}
	return w.l.Consent(ctx, id)
}

func (w *ledger) ConsentAt(ctx context.Context, id string, t time.Time) (credit.ConsentCommitment, credit.ConsentStatus, error) {
	if err := w.f.before(ctx, "ConsentAt"); err != nil {
		return credit.ConsentCommitment{}, "", err
	}
	return w.l.ConsentAt(ctx, id, t)
}

func (w *ledger) RegisterAuthority(ctx context.Context, a credit.IdentityAuthority) error {
	if err := w.f.before(ctx, "RegisterAuthority"); err != nil {
		return err
	}
	return w.l.RegisterAuthority(ctx, a)
}

func (w *ledger) RetireAuthority(ctx context.Context, id string) (credit.IdentityAuthority, error) {
	if err := w.f.before(ctx, "RetireAuthority"); err != nil {
		return credit.IdentityAuthority{}, err
	}
	return w.l.RetireAuthority(ctx, id)
}

func (w *ledger) Authorities(ctx context.Context) ([]credit.IdentityAuthority, error) {
	if err := w.f.before(ctx, "Authorities"); err != nil {
		return nil, err
	}
	return w.l.Authorities(ctx)
}

func (w *ledger) RevokeCertificate(ctx context.Context, r credit.CertRevocation) (credit.CertRevocation, error) {
	if err := w.f.before(ctx, "RevokeCertificate"); err != nil {
		return credit.CertRevocation{}, err
	}
	return w.l.RevokeCertificate(ctx, r)
}

func (w *ledger) Revocations(ctx context.Context) ([]credit.CertRevocation, error) {
	if err := w.f.before(ctx, "Revocations"); err != nil {
		return nil, err
	}
	return w.l.Revocations(ctx)
}

func (w *ledger) AnchorCheckpoint(ctx context.Context, cp credit.Checkpoint, proof [][]byte) (credit.AnchoredCheckpoint, error) {
	if err := w.f.before(ctx, "AnchorCheckpoint"); err != nil {
		return credit.AnchoredCheckpoint{}, err
	}
	return w.l.AnchorCheckpoint(ctx, cp, proof)
}

func (w *ledger) LatestCheckpoint(ctx context.Context, region credit.RegionID) (credit.AnchoredCheckpoint, error) {
	if err := w.f.before(ctx, "LatestCheckpoint"); err != nil {
		return credit.AnchoredCheckpoint{}, err
	}
	return w.l.LatestCheckpoint(ctx, region)
}

func (w *ledger) CheckpointHistory(ctx context.Context, region credit.RegionID) ([]credit.AnchoredCheckpoint, error) {
	if err := w.f.before(ctx, "CheckpointHistory"); err != nil {
		return nil, err
	}
	return w.l.CheckpointHistory(ctx, region)
}

func (w *ledger) Subscribe(ctx context.Context, from network.Position) (<-chan network.Event, error) {
	return w.f.subscribe(ctx, w.l, from)
}
