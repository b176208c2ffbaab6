package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// Reason is the stable code of a refusal, shown to banks and counted in
// metrics.
type Reason string

// Refusal reasons.
const (
	ReasonInvalidQuery     Reason = "invalid_query"
	ReasonBankUnknown      Reason = "bank_unknown"
	ReasonBankInactive     Reason = "bank_inactive"
	ReasonWrongHomeRegion  Reason = "wrong_home_region"
	ReasonBadSignature     Reason = "bad_signature"
	ReasonStaleQuery       Reason = "stale_query"
	ReasonReplay           Reason = "replayed_nonce"
	ReasonNoConsent        Reason = "consent_not_found"
	ReasonConsentMismatch  Reason = "consent_mismatch"
	ReasonConsentRevoked   Reason = "consent_revoked"
	ReasonConsentExpired   Reason = "consent_expired"
	ReasonConsentNotYet    Reason = "consent_not_yet_valid"
	ReasonWrongGrantee     Reason = "consent_other_bank"
	ReasonCategoryScope    Reason = "category_out_of_scope"
	ReasonPurposeMismatch  Reason = "purpose_mismatch"
	ReasonSubjectMismatch  Reason = "subject_mismatch"
	ReasonConsentSignature Reason = "consent_signature_invalid"
	ReasonLedgerStale      Reason = "ledger_view_stale"
	ReasonLedgerUnavail    Reason = "ledger_unavailable"
)

// Denial is a refusal of a query; its Reason is stable, its Detail is for
// humans.
type Denial struct {
	Reason Reason
	Detail string
}

func (d *Denial) Error() string { return string(d.Reason) + ": " + d.Detail }

func deny(r Reason, format string, args ...any) error {
	return &Denial{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the refusal reason of err, or "" if err is no Denial.
func ReasonOf(err error) Reason {
	var d *Denial
	if errors.As(err, &d) {
		return d.Reason
	}
	return ""
}

// ViewStore persists the cached ledger view across restarts
// (receipts.Outbox implements it).
type ViewStore interface {
	SaveView(v any) error
	LoadView(v any) (bool, error)
}

// View is the node's local view of the ledger's members and consent
// commitments, fed by ledger events from a persisted position. Misses fall
// through to a ledger read; a view that has not been confirmed current
// within the grace period refuses every check (fail closed).
type View struct {
	ledger network.Ledger
	store  ViewStore
	now    func() time.Time
	log    *slog.Logger
	grace  time.Duration

	mu       sync.RWMutex
	consents map[string]credit.ConsentCommitment
	banks    map[credit.BankID]credit.BankMember
	regions  map[credit.RegionID]credit.RegionMember
	pos      network.Position
	synced   time.Time // when the view was last confirmed current
	subUp    bool
	lastErr  error
	dirty    bool
	// onRegions is told the region records after every refresh (the p2p
	// membership gater follows the ledger this way).
	onRegions func([]credit.RegionMember)

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	docs verifiedDocs
}

// verifiedDocs remembers consent documents whose enterprise signature and
// issuing-region countersignature have verified, keyed by the SHA-256 of
// the document's commitment (which covers both signatures) and the issuer
// key used. Every query carries the same document for the life of a
// consent, and the two ed25519 verifications were a third of an answer's
// CPU; what is remembered is exactly what was verified, so a changed
// document or a rotated issuer key misses and is verified afresh.
type verifiedDocs struct {
	mu sync.Mutex
	m  map[[32]byte]struct{}
}

// maxVerifiedDocs bounds the memory: at the bound the set starts over.
const maxVerifiedDocs = 1 << 16

func docKey(commitment [32]byte, issuerPub []byte) [32]byte {
	h := sha256.New()
	h.Write(commitment[:])
	h.Write(issuerPub)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func (d *verifiedDocs) has(k [32]byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.m[k]
	return ok
}

func (d *verifiedDocs) add(k [32]byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil || len(d.m) >= maxVerifiedDocs {
		d.m = make(map[[32]byte]struct{})
	}
	d.m[k] = struct{}{}
}

type savedView struct {
	Position network.Position                    `json:"position"`
	Consents map[string]credit.ConsentCommitment `json:"consents"`
}

// NewView builds a view; Start fills and follows it.
func NewView(l network.Ledger, store ViewStore, grace time.Duration, now func() time.Time, log *slog.Logger) *View {
	return &View{
		ledger: l, store: store, grace: grace, now: now, log: log,
		consents: map[string]credit.ConsentCommitment{},
		banks:    map[credit.BankID]credit.BankMember{},
		regions:  map[credit.RegionID]credit.RegionMember{},
	}
}

// Start loads the cached view, reads the members, and follows ledger
// events until Close. It fails if the ledger cannot be read at all.
func (v *View) Start(ctx context.Context) error {
	var sv savedView
	if v.store != nil {
		if ok, err := v.store.LoadView(&sv); err != nil {
			return fmt.Errorf("ledger view: %w", err)
		} else if ok {
			v.pos = sv.Position
			for id, c := range sv.Consents {
				v.consents[id] = c
			}
		}
	}
	if err := v.refreshMembers(ctx); err != nil {
		return fmt.Errorf("ledger view: %w", err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	v.cancel, v.done = cancel, make(chan struct{})
	go v.run(rctx)
	return nil
}

// Close stops following the ledger and saves the view. Safe twice.
func (v *View) Close() error {
	v.once.Do(func() {
		if v.cancel != nil {
			v.cancel()
			<-v.done
		}
		v.save()
	})
	return nil
}

func (v *View) refreshMembers(ctx context.Context) error {
	regions, err := v.ledger.Regions(ctx)
	if err != nil {
		return err
	}
	banks, err := v.ledger.Banks(ctx)
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	clear(v.regions)
	for _, r := range regions {
		v.regions[r.ID] = r
	}
	clear(v.banks)
	for _, b := range banks {
		v.banks[b.ID] = b
	}
	if v.onRegions != nil {
		v.onRegions(regions)
	}
	return nil
}

// run follows events and confirms currency every grace/4 with a read.
func (v *View) run(ctx context.Context) {
	defer close(v.done)
	tick := time.NewTicker(max(v.grace/4, 50*time.Millisecond))
	defer tick.Stop()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		v.mu.RLock()
		from := v.pos
		v.mu.RUnlock()
		events, err := v.ledger.Subscribe(ctx, from)
		if err != nil {
			v.setErr(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		v.mu.Lock()
		v.subUp = true
		v.mu.Unlock()
		v.confirm(ctx)
	follow:
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-events:
				if !ok {
					break follow
				}
				v.apply(ev)
			case <-tick.C:
				v.confirm(ctx)
				v.save()
			}
		}
		v.mu.Lock()
		v.subUp = false
		v.mu.Unlock()
		v.log.Warn("ledger event stream ended; resubscribing", "from", v.pos.Block)
	}
}

// confirm marks the view current if the subscription is live and the
// ledger answers a read now: events committed before the read are then
// at most one delivery behind.
func (v *View) confirm(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, max(v.grace/2, time.Second))
	defer cancel()
	err := v.refreshMembers(rctx)
	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil {
		v.lastErr = err
		return
	}
	if v.subUp {
		v.synced, v.lastErr = v.now(), nil
	}
}

func (v *View) setErr(err error) {
	v.mu.Lock()
	v.lastErr = err
	v.mu.Unlock()
	v.log.Warn("ledger subscription failed", "err", err)
}

func (v *View) apply(ev network.Event) {
	v.mu.Lock()
	var regions []credit.RegionMember // set when a region record changed
	switch ev.Kind {
	case network.EventConsentRecorded, network.EventConsentRevoked:
		if ev.Consent != nil {
			v.consents[ev.Consent.ID] = *ev.Consent
		}
	case network.EventMemberChanged:
		if ev.Bank != nil {
			v.banks[ev.Bank.ID] = *ev.Bank
		}
		if ev.Region != nil {
			v.regions[ev.Region.ID] = *ev.Region
			if v.onRegions != nil {
				regions = make([]credit.RegionMember, 0, len(v.regions))
				for _, r := range v.regions {
					regions = append(regions, r)
				}
			}
		}
	}
	v.pos = ev.Position
	v.dirty = true
	// Receiving an event proves the stream is live up to its commit.
	if v.subUp {
		v.synced = v.now()
	}
	v.mu.Unlock()
	// A region's new addresses or status reach the p2p membership at
	// once, not at the next periodic refresh (grace/4 later).
	if regions != nil {
		slices.SortFunc(regions, func(a, b credit.RegionMember) int { return strings.Compare(string(a.ID), string(b.ID)) })
		v.onRegions(regions)
	}
}

func (v *View) save() {
	if v.store == nil {
		return
	}
	v.mu.Lock()
	if !v.dirty {
		v.mu.Unlock()
		return
	}
	sv := savedView{Position: v.pos, Consents: make(map[string]credit.ConsentCommitment, len(v.consents))}
	for id, c := range v.consents {
		sv.Consents[id] = c
	}
	v.dirty = false
	v.mu.Unlock()
	if err := v.store.SaveView(sv); err != nil {
		v.log.Warn("saving ledger view", "err", err)
	}
}

// Age is how long ago the view was last confirmed current; a view never
// confirmed is infinitely old.
func (v *View) Age() time.Duration {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.synced.IsZero() {
		return time.Duration(1<<63 - 1)
	}
	return v.now().Sub(v.synced)
}

// Fresh returns nil if the view is within the grace period, else why not.
func (v *View) Fresh() error {
	age := v.Age()
	if age <= v.grace {
		return nil
	}
	v.mu.RLock()
	last, never := v.lastErr, v.synced.IsZero()
	v.mu.RUnlock()
	if never {
		return deny(ReasonLedgerStale, "ledger view not yet synchronised (last error: %v)", last)
	}
	return deny(ReasonLedgerStale, "ledger view is %s old, grace period %s (last error: %v)", age.Round(time.Millisecond), v.grace, last)
}

// Region returns a region member.
func (v *View) Region(id credit.RegionID) (credit.RegionMember, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	r, ok := v.regions[id]
	return r, ok
}

// Regions lists the active regions.
func (v *View) Regions() []credit.RegionMember {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]credit.RegionMember, 0, len(v.regions))
	for _, r := range v.regions {
		if r.Status == credit.StatusActive {
			out = append(out, r)
		}
	}
	return out
}

// Bank returns a bank member.
func (v *View) Bank(id credit.BankID) (credit.BankMember, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	b, ok := v.banks[id]
	return b, ok
}

// Consent returns a commitment from the view, or from the ledger when the
// view has not seen it yet (just recorded elsewhere).
func (v *View) Consent(ctx context.Context, id string) (credit.ConsentCommitment, error) {
	v.mu.RLock()
	c, ok := v.consents[id]
	v.mu.RUnlock()
	if ok {
		return c, nil
	}
	c, err := v.ledger.Consent(ctx, id)
	if err != nil {
		return c, err
	}
	v.mu.Lock()
	// An event may have arrived meanwhile; it is at least as new.
	if _, seen := v.consents[id]; !seen {
		v.consents[id] = c
	}
	v.mu.Unlock()
	return c, nil
}

// AuthenticateBank checks that the query's bank is registered and active
// and that the query carries its valid signature.
func (v *View) AuthenticateBank(q *credit.Query) (credit.BankMember, error) {
	b, ok := v.Bank(q.Bank)
	if !ok {
		return b, deny(ReasonBankUnknown, "bank %s is not registered", q.Bank)
	}
	if b.Status != credit.StatusActive {
		return b, deny(ReasonBankInactive, "bank %s is %s", q.Bank, b.Status)
	}
	if err := q.Verify(b.PubKey); err != nil {
		return b, deny(ReasonBadSignature, "%v", err)
	}
	return b, nil
}

// CheckQuery decides whether q may be answered at now: the view is
// fresh, the bank is authentic, and the consent document it carries is
// recorded on the ledger, matches its commitment, is active and inside
// its window, names this bank, covers the categories and the purpose,
// and carries valid enterprise and issuing-region signatures. Anything
// that cannot be checked is a denial.
func (v *View) CheckQuery(ctx context.Context, q *credit.Query, now time.Time) error {
	if err := v.Fresh(); err != nil {
		return err
	}
	if err := q.Validate(); err != nil {
		return deny(ReasonInvalidQuery, "%v", err)
	}
	if _, err := v.AuthenticateBank(q); err != nil {
		return err
	}
	return v.checkConsent(ctx, q, now)
}

// CheckConsent is CheckQuery for a caller that has already authenticated
// the bank's signature on the validated q against this view's bank record
// (the p2p server does, before it spends the nonce), so the answer path
// pays for that ed25519 verification once. The view's freshness and the
// consent are checked as in CheckQuery.
func (v *View) CheckConsent(ctx context.Context, q *credit.Query, now time.Time) error {
	if err := v.Fresh(); err != nil {
		return err
	}
	return v.checkConsent(ctx, q, now)
}

func (v *View) checkConsent(ctx context.Context, q *credit.Query, now time.Time) error {
	doc := q.Consent
	cm, err := v.Consent(ctx, q.ConsentID)
	if errors.Is(err, network.ErrNotFound) {
		return deny(ReasonNoConsent, "consent %s is not on the ledger", q.ConsentID)
	}
	if err != nil {
		return deny(ReasonLedgerUnavail, "consent %s: %v", q.ConsentID, err)
	}
	want, err := doc.Commitment()
	if err != nil || !bytes.Equal(want[:], cm.Commitment) || cm.Region != doc.Region {
		return deny(ReasonConsentMismatch, "consent %s document does not match its ledger commitment", q.ConsentID)
	}
	switch st := cm.StatusAt(now); st {
	case credit.ConsentActive:
	case credit.ConsentRevoked:
		return deny(ReasonConsentRevoked, "consent %s was revoked", q.ConsentID)
	case credit.ConsentExpired:
		return deny(ReasonConsentExpired, "consent %s expired at %s", q.ConsentID, cm.ValidUntil)
	case credit.ConsentNotYet:
		return deny(ReasonConsentNotYet, "consent %s is valid from %s", q.ConsentID, cm.ValidFrom)
	default:
		return deny(ReasonNoConsent, "consent %s is %s", q.ConsentID, st)
	}
	if !doc.Covers(now) {
		return deny(ReasonConsentExpired, "consent %s window does not cover %s", q.ConsentID, now)
	}
	if doc.Grantee != q.Bank {
		return deny(ReasonWrongGrantee, "consent %s was granted to %s, not %s", q.ConsentID, doc.Grantee, q.Bank)
	}
	if doc.Subject != q.Subject {
		return deny(ReasonSubjectMismatch, "consent %s is about another enterprise", q.ConsentID)
	}
	if doc.Purpose != q.Purpose {
		return deny(ReasonPurposeMismatch, "consent %s is for %s, not %s", q.ConsentID, doc.Purpose, q.Purpose)
	}
	if !credit.CategoriesSubset(q.Categories, doc.Categories) {
		return deny(ReasonCategoryScope, "consent %s covers %v, query asks %v", q.ConsentID, doc.Categories, q.Categories)
	}
	issuer, ok := v.Region(doc.Region)
	if !ok {
		return deny(ReasonConsentSignature, "issuing region %s is not a member", doc.Region)
	}
	key := docKey(want, issuer.PubKey)
	if v.docs.has(key) {
		return nil
	}
	if err := doc.VerifyEnterprise(); err != nil {
		return deny(ReasonConsentSignature, "%v", err)
	}
	if err := doc.VerifyRegion(issuer.PubKey); err != nil {
		return deny(ReasonConsentSignature, "%v", err)
	}
	v.docs.add(key)
	return nil
}
