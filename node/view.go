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
	"sync/atomic"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// ViewStore persists the cached ledger view across restarts
// (receipts.Outbox implements it).
type ViewStore interface {
	SaveView(v any) error
	LoadView(v any) (bool, error)
}

// View is the node's local view of the ledger's members, consent
// commitments, enterprise identity authorities and certificate
// revocations, fed by ledger events from a persisted position. Misses fall
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

	// auths and revs are the ledger's identity records, from which trust
	// is rebuilt on every change.
	auths map[string]credit.IdentityAuthority
	revs  map[string]credit.CertRevocation

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	docs verifiedDocs
	// trust is the immutable TrustSet of auths and revs, swapped whole so
	// that a decision reads one consistent set without the lock; nil
	// until loaded, which refuses every consent (fail closed).
	trust atomic.Pointer[credit.TrustSet]
	certs certifiedKeys
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

// certifiedKeys remembers credit.VerifyEnterpriseChain's outcome by the
// consent document's commitment (which covers its certificate chain and
// signature), so a consent pays for x509 once, not on every query. An
// outcome counts only under the TrustSet it was computed with: a trust
// change clears the cache, and an entry computed concurrently with the
// change, under the old set, never answers for the new one.
type certifiedKeys struct {
	mu sync.Mutex
	m  map[[32]byte]certifiedEntry
}

type certifiedEntry struct {
	trust *credit.TrustSet
	ck    credit.CertifiedKey
}

func (c *certifiedKeys) get(commitment [32]byte, trust *credit.TrustSet) (credit.CertifiedKey, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[commitment]
	if !ok || e.trust != trust {
		return credit.CertifiedKey{}, false
	}
	return e.ck, true
}

func (c *certifiedKeys) put(commitment [32]byte, trust *credit.TrustSet, ck credit.CertifiedKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxVerifiedDocs {
		c.m = make(map[[32]byte]certifiedEntry)
	}
	c.m[commitment] = certifiedEntry{trust: trust, ck: ck}
}

func (c *certifiedKeys) clear() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}

func (c *certifiedKeys) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
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
		auths:    map[string]credit.IdentityAuthority{},
		revs:     map[string]credit.CertRevocation{},
	}
}

// Start loads the cached view, reads the members, the identity
// authorities and the revocations, and follows ledger events until Close.
// It fails if the ledger cannot be read at all.
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
	if err := v.loadTrust(ctx); err != nil {
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

// loadTrust reads every identity authority and revocation; events keep
// them current from then on.
func (v *View) loadTrust(ctx context.Context) error {
	auths, err := v.ledger.Authorities(ctx)
	if err != nil {
		return fmt.Errorf("identity authorities: %w", err)
	}
	revs, err := v.ledger.Revocations(ctx)
	if err != nil {
		return fmt.Errorf("certificate revocations: %w", err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, a := range auths {
		v.mergeAuthority(a)
	}
	for _, r := range revs {
		v.mergeRevocation(r)
	}
	v.rebuildTrust()
	return nil
}

// mergeAuthority keeps a retirement once seen: the events replayed from an
// older position than the last read must not bring a retired authority
// back. Called with mu held.
func (v *View) mergeAuthority(a credit.IdentityAuthority) {
	if old, ok := v.auths[a.ID]; ok && old.RetiredAt != nil && a.RetiredAt == nil {
		return
	}
	v.auths[a.ID] = a
}

// mergeRevocation keeps the earliest revocation of a certificate. Called
// with mu held.
func (v *View) mergeRevocation(r credit.CertRevocation) {
	if old, ok := v.revs[r.ID]; ok && !r.RevokedAt.Before(old.RevokedAt) {
		return
	}
	v.revs[r.ID] = r
}

// rebuildTrust swaps in a TrustSet of auths and revs and forgets every
// verified chain. A set that cannot be built leaves no trust at all: every
// consent is refused until the ledger's records are readable again.
// Called with mu held.
func (v *View) rebuildTrust() {
	auths := make([]credit.IdentityAuthority, 0, len(v.auths))
	for _, a := range v.auths {
		auths = append(auths, a)
	}
	revs := make([]credit.CertRevocation, 0, len(v.revs))
	for _, r := range v.revs {
		revs = append(revs, r)
	}
	ts, err := credit.NewTrustSet(auths, revs)
	if err != nil {
		v.log.Error("identity authorities on the ledger do not form a trust set; refusing every consent", "err", err)
		ts = nil
	}
	v.trust.Store(ts)
	v.certs.clear()
}

// Trust is the current TrustSet (nil: none, every consent refused).
func (v *View) Trust() *credit.TrustSet { return v.trust.Load() }

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
	case network.EventAuthorityChanged:
		if ev.Authority != nil {
			v.mergeAuthority(*ev.Authority)
			v.rebuildTrust()
		}
	case network.EventCertRevoked:
		if ev.Revocation != nil {
			v.mergeRevocation(*ev.Revocation)
			v.rebuildTrust()
		}
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
		return credit.Refuse(credit.CodeLedgerViewStale, "ledger view not yet synchronised (last error: %v)", last)
	}
	return credit.Refuse(credit.CodeLedgerViewStale, "ledger view is %s old, grace period %s (last error: %v)", age.Round(time.Millisecond), v.grace, last)
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

// Retired lists the retired regions by id: a consolidated report names
// them, so a bank knows why their slices are absent.
func (v *View) Retired() []credit.RegionMember {
	v.mu.RLock()
	out := make([]credit.RegionMember, 0)
	for _, r := range v.regions {
		if r.Status == credit.StatusRetired {
			out = append(out, r)
		}
	}
	v.mu.RUnlock()
	slices.SortFunc(out, func(a, b credit.RegionMember) int { return strings.Compare(string(a.ID), string(b.ID)) })
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

// ConsentFacts gathers what the view says of q's consent at time at, for
// credit.DecideConsent: the ledger's commitment, the issuer's key, the
// identity authorities (Trust) and the document's verified chain
// (Certified, cached by commitment). commitment is the document's
// commitment when the caller has it (nil: computed when needed). A ledger
// that cannot be read is a refusal (fail closed).
func (v *View) ConsentFacts(ctx context.Context, q *credit.Query, at time.Time, commitment *[32]byte) (credit.ConsentFacts, error) {
	f := credit.ConsentFacts{Query: q, At: at, Commitment: commitment, Trust: v.trust.Load()}
	doc := q.Consent
	if doc == nil || doc.ID != q.ConsentID {
		return f, nil // DecideConsent refuses it as it is
	}
	cm, err := v.Consent(ctx, q.ConsentID)
	switch {
	case errors.Is(err, network.ErrNotFound):
		return f, nil
	case err != nil:
		return f, credit.Refuse(credit.CodeLedgerUnavailable, "consent %s: %w", q.ConsentID, err)
	}
	f.Ledger, f.Status = &cm, cm.StatusAt(at)
	if issuer, ok := v.Region(doc.Region); ok {
		// Countersigned when recorded: the key of that time (a rotation
		// since keeps the consent valid).
		f.IssuerKey = issuer.KeyAt(cm.RecordedAt)
	}
	if f.IssuerKey != nil && f.Commitment != nil {
		f.SignaturesVerified = v.docs.has(docKey(*f.Commitment, f.IssuerKey))
	}
	// Only a document the ledger commits to is worth the x509 work (and a
	// cache entry); DecideConsent refuses any other before it looks.
	if f.Commitment != nil && bytes.Equal(f.Commitment[:], cm.Commitment) {
		f.Certified = v.certified(doc, *f.Commitment, f.Trust)
	}
	return f, nil
}

// certified is VerifyEnterpriseChain(doc, trust), from the cache when the
// document (by its commitment) was verified under this very trust set.
func (v *View) certified(doc *credit.ConsentGrant, commitment [32]byte, trust *credit.TrustSet) *credit.CertifiedKey {
	if ck, ok := v.certs.get(commitment, trust); ok {
		return &ck
	}
	ck := credit.VerifyEnterpriseChain(doc, trust)
	v.certs.put(commitment, trust, ck)
	return &ck
}

// DecideConsent applies credit.DecideConsent to q's consent at time at and
// returns its first refusal, or nil; a document whose signatures verified
// is remembered so that they are not verified again.
func (v *View) DecideConsent(ctx context.Context, q *credit.Query, at time.Time, commitment *[32]byte) error {
	if commitment == nil && q.Consent != nil {
		c, err := q.Consent.Commitment()
		if err != nil {
			return credit.Refuse(credit.CodeConsentMismatch, "consent %s: %w", q.ConsentID, err)
		}
		commitment = &c
	}
	f, err := v.ConsentFacts(ctx, q, at, commitment)
	if err != nil {
		return err
	}
	if rs := credit.DecideConsent(f); len(rs) > 0 {
		return rs[0]
	}
	if !f.SignaturesVerified {
		v.docs.add(docKey(*f.Commitment, f.IssuerKey))
	}
	return nil
}
