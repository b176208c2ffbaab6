package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// LedgerView is what the audit reads from the shared ledger. network.Ledger
// satisfies it, and so does a Snapshot.
type LedgerView interface {
	Regions(ctx context.Context) ([]credit.RegionMember, error)
	Banks(ctx context.Context) ([]credit.BankMember, error)
	ConsentAt(ctx context.Context, id string, t time.Time) (credit.ConsentCommitment, credit.ConsentStatus, error)
	CheckpointHistory(ctx context.Context, region credit.RegionID) ([]credit.AnchoredCheckpoint, error)
	// Authorities and Revocations are the ledger's whole record of
	// enterprise identity: every authority ever registered (retired ones
	// with their retirement time) and every revoked certificate.
	Authorities(ctx context.Context) ([]credit.IdentityAuthority, error)
	Revocations(ctx context.Context) ([]credit.CertRevocation, error)
}

// KeyHistory is implemented by a view that knows members' past records, so
// that a signature is checked with the key registered at the document's
// time. A view without it is checked against the members' current keys.
type KeyHistory interface {
	RegionHistory(id credit.RegionID) []credit.RegionMember // oldest first
	BankHistory(id credit.BankID) []credit.BankMember       // oldest first
}

// SnapshotFormat names version 2 of the snapshot file, which carries the
// enterprise identity authorities and certificate revocations. A version
// 1 file lacks them, and every consent would look uncertified: it is
// refused with a request to take the snapshot again.
const SnapshotFormat = "ccnode-ledger-snapshot/2"

// ErrSnapshotFormat is matched by errors about a snapshot file's bytes.
var ErrSnapshotFormat = errors.New("malformed ledger snapshot")

// Snapshot is the part of the ledger an audit needs, taken at one time, so
// that the verification can run on a machine with no ledger access: every
// version of every member record, every consent commitment as last
// recorded (its revocation time tells its status at any earlier time),
// every anchored checkpoint, every enterprise identity authority with its
// registration and retirement times, and every certificate revocation.
type Snapshot struct {
	Format         string                                          `json:"format"`
	TakenAt        time.Time                                       `json:"taken_at"`
	Position       network.Position                                `json:"position"`
	RegionVersions map[credit.RegionID][]credit.RegionMember       `json:"regions"`
	BankVersions   map[credit.BankID][]credit.BankMember           `json:"banks"`
	ConsentRecords map[string]credit.ConsentCommitment             `json:"consents"`
	Anchored       map[credit.RegionID][]credit.AnchoredCheckpoint `json:"checkpoints"`
	// AuthorityRecords and RevocationRecords are keyed by ID; each record
	// carries its own times, so the latest one tells its whole history.
	AuthorityRecords  map[string]credit.IdentityAuthority `json:"authorities"`
	RevocationRecords map[string]credit.CertRevocation    `json:"revocations"`
}

// NewSnapshot returns an empty snapshot.
func NewSnapshot() *Snapshot {
	return &Snapshot{
		Format:         SnapshotFormat,
		RegionVersions: map[credit.RegionID][]credit.RegionMember{},
		BankVersions:   map[credit.BankID][]credit.BankMember{},
		ConsentRecords: map[string]credit.ConsentCommitment{},
		Anchored:       map[credit.RegionID][]credit.AnchoredCheckpoint{},

		AuthorityRecords:  map[string]credit.IdentityAuthority{},
		RevocationRecords: map[string]credit.CertRevocation{},
	}
}

var _ LedgerView = (*Snapshot)(nil)
var _ KeyHistory = (*Snapshot)(nil)

// Regions returns each region's latest record.
func (s *Snapshot) Regions(context.Context) ([]credit.RegionMember, error) {
	out := make([]credit.RegionMember, 0, len(s.RegionVersions))
	for _, v := range s.RegionVersions {
		out = append(out, v[len(v)-1])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Banks returns each bank's latest record.
func (s *Snapshot) Banks(context.Context) ([]credit.BankMember, error) {
	out := make([]credit.BankMember, 0, len(s.BankVersions))
	for _, v := range s.BankVersions {
		out = append(out, v[len(v)-1])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ConsentAt returns the commitment with its status at t.
func (s *Snapshot) ConsentAt(_ context.Context, id string, t time.Time) (credit.ConsentCommitment, credit.ConsentStatus, error) {
	c, ok := s.ConsentRecords[id]
	return consentAt(c, ok, id, t)
}

// consentAt is ConsentAt of the record c filed under id (ok false: none).
func consentAt(c credit.ConsentCommitment, ok bool, id string, t time.Time) (credit.ConsentCommitment, credit.ConsentStatus, error) {
	if !ok {
		return c, credit.ConsentNotExists, &network.Error{Op: "ConsentAt", Kind: network.ErrNotFound, Msg: "consent " + id}
	}
	st := c.StatusAt(t)
	if st == credit.ConsentNotExists {
		return c, st, &network.Error{Op: "ConsentAt", Kind: network.ErrNotFound, Msg: "consent " + id + " not yet recorded"}
	}
	if c.RevokedAt != nil && t.Before(*c.RevokedAt) {
		// As the ledger held it at t: not yet revoked.
		c.Status, c.RevokedAt = credit.ConsentActive, nil
	}
	return c, st, nil
}

// CheckpointHistory returns a region's anchored checkpoints, oldest first.
func (s *Snapshot) CheckpointHistory(_ context.Context, region credit.RegionID) ([]credit.AnchoredCheckpoint, error) {
	return slices.Clone(s.Anchored[region]), nil
}

// Authorities returns every identity authority the ledger registered,
// retired ones included, by ID.
func (s *Snapshot) Authorities(context.Context) ([]credit.IdentityAuthority, error) {
	out := make([]credit.IdentityAuthority, 0, len(s.AuthorityRecords))
	for _, a := range s.AuthorityRecords {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b credit.IdentityAuthority) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Revocations returns every certificate revocation, by ID.
func (s *Snapshot) Revocations(context.Context) ([]credit.CertRevocation, error) {
	out := make([]credit.CertRevocation, 0, len(s.RevocationRecords))
	for _, r := range s.RevocationRecords {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b credit.CertRevocation) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// AddAuthority records an authority, merged with what the snapshot holds
// of it: the earliest registration and the earliest retirement win, so a
// stale read never hides a retirement an event showed.
func (s *Snapshot) AddAuthority(a credit.IdentityAuthority) {
	if prev, ok := s.AuthorityRecords[a.ID]; ok {
		if !prev.RegisteredAt.IsZero() && (a.RegisteredAt.IsZero() || prev.RegisteredAt.Before(a.RegisteredAt)) {
			a.RegisteredAt = prev.RegisteredAt
		}
		if prev.RetiredAt != nil && (a.RetiredAt == nil || prev.RetiredAt.Before(*a.RetiredAt)) {
			a.RetiredAt, a.Status = prev.RetiredAt, prev.Status
		}
	}
	s.AuthorityRecords[a.ID] = a
}

// AddRevocation records a certificate revocation; the earliest wins.
func (s *Snapshot) AddRevocation(r credit.CertRevocation) {
	if prev, ok := s.RevocationRecords[r.ID]; ok && !prev.RevokedAt.After(r.RevokedAt) {
		return
	}
	s.RevocationRecords[r.ID] = r
}

// Trust is the snapshot's record of enterprise identity as the set the
// consent decision judges certificates with.
func (s *Snapshot) Trust() (*credit.TrustSet, error) {
	return trustOf(context.Background(), s)
}

// trustOf builds the consent decision's trust set from a view's history.
func trustOf(ctx context.Context, v LedgerView) (*credit.TrustSet, error) {
	auths, err := v.Authorities(ctx)
	if err != nil {
		return nil, fmt.Errorf("ledger identity authorities: %w", err)
	}
	revs, err := v.Revocations(ctx)
	if err != nil {
		return nil, fmt.Errorf("ledger certificate revocations: %w", err)
	}
	return credit.NewTrustSet(auths, revs)
}

// RegionHistory returns every version of a region's record.
func (s *Snapshot) RegionHistory(id credit.RegionID) []credit.RegionMember {
	return s.RegionVersions[id]
}

// BankHistory returns every version of a bank's record.
func (s *Snapshot) BankHistory(id credit.BankID) []credit.BankMember { return s.BankVersions[id] }

// AddRegion records a version of a region's record, ignoring a repeat.
func (s *Snapshot) AddRegion(m credit.RegionMember) {
	v := s.RegionVersions[m.ID]
	if n := len(v); n > 0 && v[n-1].UpdatedAt.Equal(m.UpdatedAt) {
		v[n-1] = m
		return
	}
	s.RegionVersions[m.ID] = append(v, m)
	slices.SortStableFunc(s.RegionVersions[m.ID], func(a, b credit.RegionMember) int { return a.UpdatedAt.Compare(b.UpdatedAt) })
}

// AddBank records a version of a bank's record, ignoring a repeat.
func (s *Snapshot) AddBank(m credit.BankMember) {
	v := s.BankVersions[m.ID]
	if n := len(v); n > 0 && v[n-1].UpdatedAt.Equal(m.UpdatedAt) {
		v[n-1] = m
		return
	}
	s.BankVersions[m.ID] = append(v, m)
	slices.SortStableFunc(s.BankVersions[m.ID], func(a, b credit.BankMember) int { return a.UpdatedAt.Compare(b.UpdatedAt) })
}

// AddCheckpoint records an anchored checkpoint, ignoring a repeat.
func (s *Snapshot) AddCheckpoint(c credit.AnchoredCheckpoint) {
	v := s.Anchored[c.Region]
	for _, have := range v {
		if have.Size == c.Size && string(have.Root) == string(c.Root) {
			return
		}
	}
	s.Anchored[c.Region] = append(v, c)
}

// Write writes the snapshot as JSON.
func (s *Snapshot) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(s)
}

// ReadSnapshot reads a snapshot file's contents.
func ReadSnapshot(r io.Reader) (*Snapshot, error) { return readSnapshot(r, nil) }

// readSnapshot is ReadSnapshot with the consent records handed to sink
// (snapshotfile.go).
func readSnapshot(r io.Reader, sink consentSink) (*Snapshot, error) {
	s, err := decodeSnapshot(r, sink)
	if err != nil {
		return nil, err
	}
	e := NewSnapshot()
	if s.RegionVersions == nil {
		s.RegionVersions = e.RegionVersions
	}
	if s.BankVersions == nil {
		s.BankVersions = e.BankVersions
	}
	if s.ConsentRecords == nil {
		s.ConsentRecords = e.ConsentRecords
	}
	if s.Anchored == nil {
		s.Anchored = e.Anchored
	}
	if s.AuthorityRecords == nil {
		s.AuthorityRecords = e.AuthorityRecords
	}
	if s.RevocationRecords == nil {
		s.RevocationRecords = e.RevocationRecords
	}
	if s.Format == "ccnode-ledger-snapshot/1" {
		return nil, fmt.Errorf("%w: format %s holds no enterprise identity authorities; take the snapshot again with this ccnode (format %s)",
			ErrSnapshotFormat, s.Format, SnapshotFormat)
	}
	if s.Format != SnapshotFormat {
		return nil, fmt.Errorf("%w: format %s, want %s", ErrSnapshotFormat, credit.Quote(s.Format), SnapshotFormat)
	}
	for id, a := range s.AuthorityRecords {
		if a.ID != id {
			return nil, fmt.Errorf("%w: authority %s is filed under %s", ErrSnapshotFormat, credit.Quote(a.ID), credit.Quote(id))
		}
	}
	for id, r := range s.RevocationRecords {
		if r.ID != id {
			return nil, fmt.Errorf("%w: revocation %s is filed under %s", ErrSnapshotFormat, credit.Quote(r.ID), credit.Quote(id))
		}
	}
	if _, err := s.Trust(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSnapshotFormat, err)
	}
	for id, v := range s.RegionVersions {
		if len(v) == 0 {
			return nil, fmt.Errorf("%w: region %s has no record", ErrSnapshotFormat, id)
		}
	}
	for id, v := range s.BankVersions {
		if len(v) == 0 {
			return nil, fmt.Errorf("%w: bank %s has no record", ErrSnapshotFormat, id)
		}
	}
	return s, nil
}

// SnapshotSource is what TakeSnapshot reads: network.Ledger satisfies it.
type SnapshotSource interface {
	LedgerView
	Subscribe(ctx context.Context, from network.Position) (<-chan network.Event, error)
}

// TakeSnapshot reads the ledger's current state and replays its event
// stream from the start to recover past member records and every consent.
// It stops once the events have caught up with the state it read first and
// no event has come for quiet (the stream never ends by itself: it waits
// for new events).
func TakeSnapshot(ctx context.Context, l SnapshotSource, quiet time.Duration, now time.Time) (*Snapshot, error) {
	if quiet <= 0 {
		quiet = 500 * time.Millisecond
	}
	regions, err := l.Regions(ctx)
	if err != nil {
		return nil, fmt.Errorf("snapshot: regions: %w", err)
	}
	banks, err := l.Banks(ctx)
	if err != nil {
		return nil, fmt.Errorf("snapshot: banks: %w", err)
	}
	// Authority and revocation records carry their own times, so the
	// current state is their whole history; the events add only what
	// happened after this read.
	auths, err := l.Authorities(ctx)
	if err != nil && !errors.Is(err, network.ErrNotFound) {
		return nil, fmt.Errorf("snapshot: identity authorities: %w", err)
	}
	revs, err := l.Revocations(ctx)
	if err != nil && !errors.Is(err, network.ErrNotFound) {
		return nil, fmt.Errorf("snapshot: certificate revocations: %w", err)
	}
	s := NewSnapshot()
	s.TakenAt = now.UTC()
	wantCP := map[credit.RegionID]uint64{}
	for _, r := range regions {
		h, err := l.CheckpointHistory(ctx, r.ID)
		if err != nil && !errors.Is(err, network.ErrNotFound) {
			return nil, fmt.Errorf("snapshot: checkpoints of %s: %w", r.ID, err)
		}
		for _, c := range h {
			s.AddCheckpoint(c)
			wantCP[r.ID] = max(wantCP[r.ID], c.Size)
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := l.Subscribe(sctx, network.Position{})
	if err != nil {
		return nil, fmt.Errorf("snapshot: events: %w", err)
	}
	evCP := map[credit.RegionID]uint64{}
	// Every member the state holds must have shown in the events at its
	// current record: every member write emits an event (the bootstrap's
	// lists all it wrote), and a member taken from the current state alone
	// would have no key before its latest change. strict false tolerates
	// members never shown, for a ledger bootstrapped by an older contract
	// whose event named only its caller.
	caughtUp := func(strict bool) bool {
		for _, r := range regions {
			v := s.RegionVersions[r.ID]
			if len(v) == 0 && strict || len(v) > 0 && v[len(v)-1].UpdatedAt.Before(r.UpdatedAt) {
				return false
			}
		}
		for _, b := range banks {
			v := s.BankVersions[b.ID]
			if len(v) == 0 && strict || len(v) > 0 && v[len(v)-1].UpdatedAt.Before(b.UpdatedAt) {
				return false
			}
		}
		// The latest checkpoints mark how far the ledger had got when
		// its state was read: their events must have come.
		for id, size := range wantCP {
			if evCP[id] < size {
				return false
			}
		}
		return true
	}
	// legacyQuiet is how many quiet periods without any event the
	// snapshot waits before it settles for members never shown.
	const legacyQuiet = 4
	quietRounds := 0
	timer := time.NewTimer(quiet)
	defer timer.Stop()
loop:
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				if err := ctx.Err(); err != nil {
					return nil, fmt.Errorf("snapshot: %w", err)
				}
				break loop
			}
			s.apply(ev)
			if ev.Checkpoint != nil {
				evCP[ev.Checkpoint.Region] = max(evCP[ev.Checkpoint.Region], ev.Checkpoint.Size)
			}
			quietRounds = 0
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(quiet)
		case <-timer.C:
			quietRounds++
			if caughtUp(true) || quietRounds >= legacyQuiet && caughtUp(false) {
				break loop
			}
			timer.Reset(quiet)
		case <-ctx.Done():
			return nil, fmt.Errorf("snapshot: events did not catch up: %w", ctx.Err())
		}
	}
	// Members whose creation the stream did not show (bootstrapped by an
	// older contract) are known by their current record only.
	for _, r := range regions {
		if len(s.RegionVersions[r.ID]) == 0 {
			s.AddRegion(r)
		}
	}
	for _, b := range banks {
		if len(s.BankVersions[b.ID]) == 0 {
			s.AddBank(b)
		}
	}
	for _, a := range auths {
		s.AddAuthority(a)
	}
	for _, r := range revs {
		s.AddRevocation(r)
	}
	return s, nil
}

func (s *Snapshot) apply(ev network.Event) {
	s.Position = ev.Position
	switch {
	case ev.Region != nil:
		m := *ev.Region
		if m.UpdatedAt.IsZero() {
			m.UpdatedAt = ev.Time
		}
		s.AddRegion(m)
	case ev.Bank != nil:
		m := *ev.Bank
		if m.UpdatedAt.IsZero() {
			m.UpdatedAt = ev.Time
		}
		s.AddBank(m)
	case ev.Consent != nil:
		c := *ev.Consent
		if prev, ok := s.ConsentRecords[c.ID]; ok && c.RevokedAt == nil && prev.RevokedAt != nil {
			c.RevokedAt, c.Status = prev.RevokedAt, prev.Status
		}
		if c.RecordedAt.IsZero() {
			c.RecordedAt = ev.Time
		}
		if ev.Kind == network.EventConsentRevoked && c.RevokedAt == nil {
			t := ev.Time
			c.RevokedAt, c.Status = &t, credit.ConsentRevoked
		}
		s.ConsentRecords[c.ID] = c
	case ev.Checkpoint != nil:
		s.AddCheckpoint(*ev.Checkpoint)
	case ev.Authority != nil:
		a := *ev.Authority
		if a.RegisteredAt.IsZero() && a.Status != credit.StatusRetired {
			a.RegisteredAt = ev.Time
		}
		if a.Status == credit.StatusRetired && a.RetiredAt == nil {
			t := ev.Time
			a.RetiredAt = &t
		}
		s.AddAuthority(a)
	case ev.Revocation != nil:
		r := *ev.Revocation
		if r.RevokedAt.IsZero() {
			r.RevokedAt = ev.Time
		}
		s.AddRevocation(r)
	}
}

// keyBook answers "which key did this member have at t".
type keyBook struct {
	regions map[credit.RegionID][]credit.RegionMember
	banks   map[credit.BankID][]credit.BankMember
	// retirementBound is Options.RetirementBound.
	retirementBound time.Duration
}

// ErrNoKey: the member had no active key at the document's time.
var ErrNoKey = errors.New("no key registered at that time")

func newKeyBook(ctx context.Context, v LedgerView) (*keyBook, error) {
	kb := &keyBook{regions: map[credit.RegionID][]credit.RegionMember{}, banks: map[credit.BankID][]credit.BankMember{}}
	regions, err := v.Regions(ctx)
	if err != nil {
		return nil, fmt.Errorf("ledger regions: %w", err)
	}
	banks, err := v.Banks(ctx)
	if err != nil {
		return nil, fmt.Errorf("ledger banks: %w", err)
	}
	kh, hasHistory := v.(KeyHistory)
	for _, r := range regions {
		if hasHistory {
			kb.regions[r.ID] = kh.RegionHistory(r.ID)
		} else {
			r.UpdatedAt = time.Time{} // current key, for all times
			kb.regions[r.ID] = []credit.RegionMember{r}
		}
	}
	for _, b := range banks {
		if hasHistory {
			kb.banks[b.ID] = kh.BankHistory(b.ID)
		} else {
			b.UpdatedAt = time.Time{}
			kb.banks[b.ID] = []credit.BankMember{b}
		}
	}
	return kb, nil
}

func (kb *keyBook) region(id credit.RegionID, t time.Time) ([]byte, error) {
	r, err := kb.regionAt(id, t)
	if err != nil {
		return nil, err
	}
	if r.Status == credit.StatusRetired {
		return nil, fmt.Errorf("region %s retired at %s: %w", id, t.Format(time.RFC3339), ErrNoKey)
	}
	return r.PubKey, nil
}

// receiptKey is the key rc's answerer signed it with. A region answers the
// queries asked while it was a member: a receipt its node signed after
// the retirement (the deciding vote committed while it answered) is
// checked against the key of the query's time when the query came before
// the retirement (plus Options.RetirementBound) and the answer within the
// query window (credit.AnsweredAsMember); any other receipt after it is
// refused.
func (kb *keyBook) receiptKey(rc *credit.Receipt) ([]byte, error) {
	v := kb.regions[rc.Answerer]
	i := kb.regionIndex(rc.Answerer, rc.Time)
	if i < 0 || v[i].Status != credit.StatusRetired {
		return kb.region(rc.Answerer, rc.Time)
	}
	// The retirement is the first of the retired versions in a row.
	for i > 0 && v[i-1].Status == credit.StatusRetired {
		i--
	}
	retired := v[i].UpdatedAt
	if !credit.AnsweredAsMember(rc.Query.Time, rc.Time, retired.Add(kb.retirementBound)) {
		return nil, fmt.Errorf("region %s retired at %s; its receipt signed at %s answers a query of %s, not one asked before the retirement (retirement bound %s) and answered within %s of it: %w",
			rc.Answerer, retired.UTC().Format(time.RFC3339Nano), rc.Time.UTC().Format(time.RFC3339Nano),
			rc.Query.Time.UTC().Format(time.RFC3339Nano), kb.retirementBound, credit.QueryWindow, ErrNoKey)
	}
	if rc.Query.Time.Before(retired) {
		return kb.region(rc.Answerer, rc.Query.Time)
	}
	return v[i].PubKey, nil // asked within the bound: the key it retired with
}

// logKey is region id's key for a checkpoint of its log anchored at t. A
// retired region anchors the rest of its log with the key it retired with:
// the checkpoint proves what the log held, and each receipt in it is still
// checked against the key of its own time, so none issued after the
// retirement passes.
func (kb *keyBook) logKey(id credit.RegionID, t time.Time) ([]byte, error) {
	r, err := kb.regionAt(id, t)
	return r.PubKey, err
}

// regionAt is region id's record as it stood at t.
func (kb *keyBook) regionAt(id credit.RegionID, t time.Time) (credit.RegionMember, error) {
	i := kb.regionIndex(id, t)
	if i < 0 {
		return credit.RegionMember{}, fmt.Errorf("region %s at %s: %w", id, t.Format(time.RFC3339), ErrNoKey)
	}
	return kb.regions[id][i], nil
}

// regionIndex is the index of region id's record at t in its history, -1
// before the first.
func (kb *keyBook) regionIndex(id credit.RegionID, t time.Time) int {
	v := kb.regions[id]
	return sort.Search(len(v), func(i int) bool { return v[i].UpdatedAt.After(t) }) - 1
}

// bankAt is bank id's ledger record at t; false before its first.
func (kb *keyBook) bankAt(id credit.BankID, t time.Time) (credit.BankMember, bool) {
	v := kb.banks[id]
	i := sort.Search(len(v), func(i int) bool { return v[i].UpdatedAt.After(t) }) - 1
	if i < 0 {
		return credit.BankMember{}, false
	}
	return v[i], true
}

func (kb *keyBook) bank(id credit.BankID, t time.Time) ([]byte, error) {
	b, ok := kb.bankAt(id, t)
	if !ok {
		return nil, fmt.Errorf("bank %s at %s: %w", id, t.Format(time.RFC3339), ErrNoKey)
	}
	if b.Status == credit.StatusRetired {
		return nil, fmt.Errorf("bank %s retired at %s: %w", id, t.Format(time.RFC3339), ErrNoKey)
	}
	return b.PubKey, nil
}
