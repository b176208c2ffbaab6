// Package memledger is an in-memory network.Ledger for node tests and for
// running the demo when no embedded ledger is wired: the same facts and
// events as the contract (members, consent commitments with history,
// checkpoints verified by signature and consistency proof), none of its
// persistence. It can be made unavailable to test fail-closed behaviour.
//
// It holds no credit decision: it stores what regions submit and checks
// only what the contract checks.
package memledger

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// Server is the shared ledger state.
type Server struct {
	mu          sync.Mutex
	now         func() time.Time
	down        bool
	regions     map[credit.RegionID]credit.RegionMember
	banks       map[credit.BankID]credit.BankMember
	consents    map[string]credit.ConsentCommitment
	history     map[string][]credit.ConsentCommitment
	checkpoints map[credit.RegionID][]credit.AnchoredCheckpoint
	events      []network.Event
	changed     chan struct{} // closed and replaced on every new event
	txs         int
	delay       time.Duration
}

// SetCommitDelay makes every write wait d before it commits, without
// holding the ledger: a model of an ordering service's batch latency
// (about 260 ms on Fabric at a 250 ms batch timeout), for benchmarks.
func (s *Server) SetCommitDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

func (s *Server) commitDelay(ctx context.Context) error {
	s.mu.Lock()
	d := s.delay
	s.mu.Unlock()
	if d <= 0 {
		return nil
	}
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return &network.Error{Op: "commit", Kind: network.ErrUnavailable, Msg: ctx.Err().Error()}
	}
}

// New makes an empty ledger.
func New(now func() time.Time) *Server {
	if now == nil {
		now = time.Now
	}
	return &Server{
		now:         now,
		regions:     map[credit.RegionID]credit.RegionMember{},
		banks:       map[credit.BankID]credit.BankMember{},
		consents:    map[string]credit.ConsentCommitment{},
		history:     map[string][]credit.ConsentCommitment{},
		checkpoints: map[credit.RegionID][]credit.AnchoredCheckpoint{},
		changed:     make(chan struct{}),
	}
}

// SetAvailable makes every call fail with ErrUnavailable (false) or work
// again (true); subscriptions end while unavailable.
func (s *Server) SetAvailable(up bool) {
	s.mu.Lock()
	s.down = !up
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Transactions counts committed write transactions.
func (s *Server) Transactions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.txs
}

// Client acts as the identity mspID.
func (s *Server) Client(mspID string) network.Ledger { return &client{s: s, msp: mspID} }

type client struct {
	s   *Server
	msp string
}

func errf(op string, kind error, format string, args ...any) error {
	return &network.Error{Op: op, Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// lock takes the lock unless the ledger is down.
func (c *client) lock(op string) error {
	c.s.mu.Lock()
	if c.s.down {
		c.s.mu.Unlock()
		return errf(op, network.ErrUnavailable, "ledger is down")
	}
	return nil
}

func (c *client) unlock() { c.s.mu.Unlock() }

// emit appends an event; the caller holds the lock.
func (s *Server) emit(ev network.Event) {
	s.txs++
	ev.Position = network.Position{Block: uint64(len(s.events) + 1), TxID: fmt.Sprintf("tx%d", len(s.events)+1)}
	ev.Time = s.now().UTC()
	s.events = append(s.events, ev)
	close(s.changed)
	s.changed = make(chan struct{})
}

// callerRegion is the region whose MSP id the client acts as.
func (c *client) callerRegion() (credit.RegionMember, bool) {
	for _, r := range c.s.regions {
		if r.MSPID == c.msp {
			return r, true
		}
	}
	return credit.RegionMember{}, false
}

func (c *client) Identity() string { return c.msp }
func (c *client) Close() error     { return nil }

func (c *client) Bootstrap(_ context.Context, regions []credit.RegionMember, banks []credit.BankMember) error {
	if err := c.lock("Bootstrap"); err != nil {
		return err
	}
	defer c.unlock()
	if len(c.s.regions) > 0 {
		return errf("Bootstrap", network.ErrConflict, "ledger already has members")
	}
	now := c.s.now().UTC()
	for _, r := range regions {
		r.UpdatedAt = now
		c.s.regions[r.ID] = r
		c.s.emit(network.Event{Kind: network.EventMemberChanged, Region: &r})
	}
	for _, b := range banks {
		b.UpdatedAt = now
		c.s.banks[b.ID] = b
		c.s.emit(network.Event{Kind: network.EventMemberChanged, Bank: &b})
	}
	return nil
}

func (c *client) Regions(context.Context) ([]credit.RegionMember, error) {
	if err := c.lock("Regions"); err != nil {
		return nil, err
	}
	defer c.unlock()
	out := make([]credit.RegionMember, 0, len(c.s.regions))
	for _, r := range c.s.regions {
		out = append(out, r)
	}
	return out, nil
}

func (c *client) Region(_ context.Context, id credit.RegionID) (credit.RegionMember, error) {
	if err := c.lock("Region"); err != nil {
		return credit.RegionMember{}, err
	}
	defer c.unlock()
	r, ok := c.s.regions[id]
	if !ok {
		return r, errf("Region", network.ErrNotFound, "region %s", id)
	}
	return r, nil
}

func (c *client) UpdateRegion(ctx context.Context, r credit.RegionMember) error {
	if err := c.s.commitDelay(ctx); err != nil {
		return err
	}
	if err := c.lock("UpdateRegion"); err != nil {
		return err
	}
	defer c.unlock()
	me, ok := c.callerRegion()
	if !ok || me.ID != r.ID {
		return errf("UpdateRegion", network.ErrDenied, "%s may not update region %s", c.msp, r.ID)
	}
	r.MSPID, r.UpdatedAt = me.MSPID, c.s.now().UTC()
	c.s.regions[r.ID] = r
	c.s.emit(network.Event{Kind: network.EventMemberChanged, Region: &r})
	return nil
}

func (c *client) Banks(context.Context) ([]credit.BankMember, error) {
	if err := c.lock("Banks"); err != nil {
		return nil, err
	}
	defer c.unlock()
	out := make([]credit.BankMember, 0, len(c.s.banks))
	for _, b := range c.s.banks {
		out = append(out, b)
	}
	return out, nil
}

func (c *client) Bank(_ context.Context, id credit.BankID) (credit.BankMember, error) {
	if err := c.lock("Bank"); err != nil {
		return credit.BankMember{}, err
	}
	defer c.unlock()
	b, ok := c.s.banks[id]
	if !ok {
		return b, errf("Bank", network.ErrNotFound, "bank %s", id)
	}
	return b, nil
}

func (c *client) RegisterBank(ctx context.Context, b credit.BankMember) error {
	if err := c.s.commitDelay(ctx); err != nil {
		return err
	}
	if err := c.lock("RegisterBank"); err != nil {
		return err
	}
	defer c.unlock()
	me, ok := c.callerRegion()
	if !ok || me.ID != b.Region {
		return errf("RegisterBank", network.ErrDenied, "%s may not register banks of %s", c.msp, b.Region)
	}
	b.UpdatedAt = c.s.now().UTC()
	c.s.banks[b.ID] = b
	c.s.emit(network.Event{Kind: network.EventMemberChanged, Bank: &b})
	return nil
}

func (c *client) RetireBank(ctx context.Context, id credit.BankID) error {
	if err := c.s.commitDelay(ctx); err != nil {
		return err
	}
	if err := c.lock("RetireBank"); err != nil {
		return err
	}
	defer c.unlock()
	b, ok := c.s.banks[id]
	if !ok {
		return errf("RetireBank", network.ErrNotFound, "bank %s", id)
	}
	me, ok := c.callerRegion()
	if !ok || me.ID != b.Region {
		return errf("RetireBank", network.ErrDenied, "%s may not retire banks of %s", c.msp, b.Region)
	}
	b.Status, b.UpdatedAt = credit.StatusRetired, c.s.now().UTC()
	c.s.banks[id] = b
	c.s.emit(network.Event{Kind: network.EventMemberChanged, Bank: &b})
	return nil
}

func (c *client) RecordConsent(ctx context.Context, cm credit.ConsentCommitment) error {
	if err := c.s.commitDelay(ctx); err != nil {
		return err
	}
	if err := c.lock("RecordConsent"); err != nil {
		return err
	}
	defer c.unlock()
	me, ok := c.callerRegion()
	if !ok || me.ID != cm.Region {
		return errf("RecordConsent", network.ErrDenied, "%s may not record consents of %s", c.msp, cm.Region)
	}
	if old, ok := c.s.consents[cm.ID]; ok {
		if bytes.Equal(old.Commitment, cm.Commitment) {
			return nil
		}
		return errf("RecordConsent", network.ErrConflict, "consent id %s already used", cm.ID)
	}
	cm.Status, cm.RecordedAt, cm.RevokedAt = credit.ConsentActive, c.s.now().UTC(), nil
	c.s.consents[cm.ID] = cm
	c.s.history[cm.ID] = append(c.s.history[cm.ID], cm)
	c.s.emit(network.Event{Kind: network.EventConsentRecorded, Consent: &cm})
	return nil
}

func (c *client) RevokeConsent(ctx context.Context, id string) (credit.ConsentCommitment, error) {
	if err := c.s.commitDelay(ctx); err != nil {
		return credit.ConsentCommitment{}, err
	}
	if err := c.lock("RevokeConsent"); err != nil {
		return credit.ConsentCommitment{}, err
	}
	defer c.unlock()
	cm, ok := c.s.consents[id]
	if !ok {
		return cm, errf("RevokeConsent", network.ErrNotFound, "consent %s", id)
	}
	me, ok := c.callerRegion()
	if !ok || me.ID != cm.Region {
		return cm, errf("RevokeConsent", network.ErrDenied, "%s may not revoke consents of %s", c.msp, cm.Region)
	}
	if cm.Status == credit.ConsentRevoked {
		return cm, nil
	}
	t := c.s.now().UTC()
	cm.Status, cm.RevokedAt = credit.ConsentRevoked, &t
	c.s.consents[id] = cm
	c.s.history[id] = append(c.s.history[id], cm)
	c.s.emit(network.Event{Kind: network.EventConsentRevoked, Consent: &cm})
	return cm, nil
}

func (c *client) Consent(_ context.Context, id string) (credit.ConsentCommitment, error) {
	if err := c.lock("Consent"); err != nil {
		return credit.ConsentCommitment{}, err
	}
	defer c.unlock()
	cm, ok := c.s.consents[id]
	if !ok {
		return cm, errf("Consent", network.ErrNotFound, "consent %s", id)
	}
	return cm, nil
}

func (c *client) ConsentAt(_ context.Context, id string, t time.Time) (credit.ConsentCommitment, credit.ConsentStatus, error) {
	if err := c.lock("ConsentAt"); err != nil {
		return credit.ConsentCommitment{}, "", err
	}
	defer c.unlock()
	var found *credit.ConsentCommitment
	for _, h := range c.s.history[id] {
		ts := h.RecordedAt
		if h.RevokedAt != nil {
			ts = *h.RevokedAt
		}
		if !ts.After(t) {
			h := h
			found = &h
		}
	}
	if found == nil {
		return credit.ConsentCommitment{}, credit.ConsentNotExists, errf("ConsentAt", network.ErrNotFound, "consent %s at %s", id, t)
	}
	return *found, found.StatusAt(t), nil
}

func (c *client) AnchorCheckpoint(ctx context.Context, cp credit.Checkpoint, prf [][]byte) (credit.AnchoredCheckpoint, error) {
	if err := c.s.commitDelay(ctx); err != nil {
		return credit.AnchoredCheckpoint{}, err
	}
	if err := c.lock("AnchorCheckpoint"); err != nil {
		return credit.AnchoredCheckpoint{}, err
	}
	defer c.unlock()
	me, ok := c.callerRegion()
	if !ok || me.ID != cp.Region {
		return credit.AnchoredCheckpoint{}, errf("AnchorCheckpoint", network.ErrDenied, "%s may not anchor for %s", c.msp, cp.Region)
	}
	if err := cp.Verify(me.PubKey); err != nil {
		return credit.AnchoredCheckpoint{}, errf("AnchorCheckpoint", network.ErrDenied, "%v", err)
	}
	hist := c.s.checkpoints[cp.Region]
	var prevSize uint64
	prevRoot := rfc6962.DefaultHasher.EmptyRoot()
	if n := len(hist); n > 0 {
		last := hist[n-1]
		if last.Size == cp.Size && bytes.Equal(last.Root, cp.Root) {
			return last, nil
		}
		prevSize, prevRoot = last.Size, last.Root
	}
	if cp.Size < prevSize {
		return credit.AnchoredCheckpoint{}, errf("AnchorCheckpoint", network.ErrConflict, "size %d below anchored %d", cp.Size, prevSize)
	}
	if prevSize > 0 {
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, prevSize, cp.Size, prf, prevRoot, cp.Root); err != nil {
			return credit.AnchoredCheckpoint{}, errf("AnchorCheckpoint", network.ErrConflict, "consistency from %d: %v", prevSize, err)
		}
	}
	ac := credit.AnchoredCheckpoint{Checkpoint: cp, AnchoredAt: c.s.now().UTC(), TxID: fmt.Sprintf("tx%d", len(c.s.events)+1)}
	c.s.checkpoints[cp.Region] = append(hist, ac)
	c.s.emit(network.Event{Kind: network.EventCheckpointAnchored, Checkpoint: &ac})
	return ac, nil
}

func (c *client) LatestCheckpoint(_ context.Context, region credit.RegionID) (credit.AnchoredCheckpoint, error) {
	if err := c.lock("LatestCheckpoint"); err != nil {
		return credit.AnchoredCheckpoint{}, err
	}
	defer c.unlock()
	hist := c.s.checkpoints[region]
	if len(hist) == 0 {
		return credit.AnchoredCheckpoint{}, errf("LatestCheckpoint", network.ErrNotFound, "no checkpoint of %s", region)
	}
	return hist[len(hist)-1], nil
}

func (c *client) CheckpointHistory(_ context.Context, region credit.RegionID) ([]credit.AnchoredCheckpoint, error) {
	if err := c.lock("CheckpointHistory"); err != nil {
		return nil, err
	}
	defer c.unlock()
	return append([]credit.AnchoredCheckpoint(nil), c.s.checkpoints[region]...), nil
}

// Subscribe replays events after from and follows new ones; the channel
// closes when ctx ends or the ledger goes down.
func (c *client) Subscribe(ctx context.Context, from network.Position) (<-chan network.Event, error) {
	if err := c.lock("Subscribe"); err != nil {
		return nil, err
	}
	c.unlock()
	out := make(chan network.Event)
	go func() {
		defer close(out)
		next := from.Block // events[next] is block next+1
		for {
			c.s.mu.Lock()
			if c.s.down {
				c.s.mu.Unlock()
				return
			}
			pending := append([]network.Event(nil), c.s.events[min(next, uint64(len(c.s.events))):]...)
			changed := c.s.changed
			c.s.mu.Unlock()
			for _, ev := range pending {
				select {
				case out <- ev:
					next = ev.Position.Block
				case <-ctx.Done():
					return
				}
			}
			if len(pending) > 0 {
				continue
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// Submit commits an empty write transaction after the commit delay: the
// cost of one ledger transaction, for benchmarks that model a design
// submitting one transaction per receipt.
func (s *Server) Submit(ctx context.Context) error {
	if err := s.commitDelay(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return &network.Error{Op: "Submit", Kind: network.ErrUnavailable, Msg: "ledger is down"}
	}
	s.txs++
	return nil
}
