// Package p2ptest provides in-memory implementations of the p2p server's
// dependencies and a synthetic consortium (regions, a bank, consents,
// records) for the p2p tests and the p2pbench program. It stands in for
// the node's ledger view and store; nothing here is for production.
package p2ptest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/p2p"
)

// Region is a synthetic region with its key.
type Region struct {
	Member credit.RegionMember
	Key    ed25519.PrivateKey
}

// NewRegion makes a region member record with a fresh key whose peer id
// matches it. division is a city prefix such as "4403".
func NewRegion(id credit.RegionID, division string) (Region, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Region{}, err
	}
	return RegionWithKey(id, division, key, pub)
}

// RegionWithKey makes a region member record for an existing key.
func RegionWithKey(id credit.RegionID, division string, key ed25519.PrivateKey, pub ed25519.PublicKey) (Region, error) {
	pid, err := p2p.PeerID(pub)
	if err != nil {
		return Region{}, err
	}
	return Region{Key: key, Member: credit.RegionMember{
		ID: id, Name: "region " + string(id), Divisions: []string{division},
		PeerID: pid.String(), PubKey: pub, Status: credit.StatusActive,
	}}, nil
}

// Ledger is an in-memory ledger view: regions, banks and consents. It
// implements p2p.Members and p2p.ConsentChecker.
type Ledger struct {
	mu       sync.RWMutex
	regions  map[credit.RegionID]credit.RegionMember
	banks    map[credit.BankID]credit.BankMember
	consents map[string]credit.ConsentCommitment
	// Fail makes every check return this error (a ledger view too old).
	fail error
	// verified remembers consent documents whose enterprise and region
	// signatures held, by commitment and issuer key, as the node's view
	// does: a bank queries many times under one consent, and the benchmark
	// must not charge every answer two verifications the node does not pay.
	verified map[[32 + ed25519.PublicKeySize]byte]bool
}

// NewLedger makes an empty ledger view.
func NewLedger() *Ledger {
	return &Ledger{
		regions: map[credit.RegionID]credit.RegionMember{}, banks: map[credit.BankID]credit.BankMember{},
		consents: map[string]credit.ConsentCommitment{}, verified: map[[32 + ed25519.PublicKeySize]byte]bool{},
	}
}

// PutRegion records a region.
func (l *Ledger) PutRegion(m credit.RegionMember) {
	l.mu.Lock()
	l.regions[m.ID] = m
	l.mu.Unlock()
}

// PutBank records a bank.
func (l *Ledger) PutBank(b credit.BankMember) {
	l.mu.Lock()
	l.banks[b.ID] = b
	l.mu.Unlock()
}

// PutConsent records a consent's commitment.
func (l *Ledger) PutConsent(g *credit.ConsentGrant, recordedAt time.Time) error {
	c, err := g.Commitment()
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.consents[g.ID] = credit.ConsentCommitment{ID: g.ID, Commitment: c[:], Region: g.Region, ValidFrom: g.ValidFrom, ValidUntil: g.ValidUntil, Status: credit.ConsentActive, RecordedAt: recordedAt}
	l.mu.Unlock()
	return nil
}

// Revoke revokes a consent at t.
func (l *Ledger) Revoke(id string, t time.Time) {
	l.mu.Lock()
	c := l.consents[id]
	c.Status, c.RevokedAt = credit.ConsentRevoked, &t
	l.consents[id] = c
	l.mu.Unlock()
}

// SetFail makes every consent check fail with err (nil clears it).
func (l *Ledger) SetFail(err error) {
	l.mu.Lock()
	l.fail = err
	l.mu.Unlock()
}

// Regions lists the region records.
func (l *Ledger) Regions() []credit.RegionMember {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]credit.RegionMember, 0, len(l.regions))
	for _, m := range l.regions {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b credit.RegionMember) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}

// Region implements p2p.Members.
func (l *Ledger) Region(id credit.RegionID) (credit.RegionMember, error) {
	l.mu.RLock()
	m, ok := l.regions[id]
	l.mu.RUnlock()
	if !ok {
		return m, fmt.Errorf("region %s: %w", id, p2p.ErrUnknownMember)
	}
	return m, nil
}

// Bank implements p2p.Members.
func (l *Ledger) Bank(id credit.BankID) (credit.BankMember, error) {
	l.mu.RLock()
	b, ok := l.banks[id]
	l.mu.RUnlock()
	if !ok {
		return b, fmt.Errorf("bank %s: %w", id, p2p.ErrUnknownMember)
	}
	return b, nil
}

// Check implements p2p.ConsentChecker the way the node does against its
// ledger view: commitment, status at the time, grantee, scope, signatures.
func (l *Ledger) Check(_ context.Context, q *credit.Query, at time.Time) error {
	l.mu.RLock()
	c, ok := l.consents[q.ConsentID]
	issuer, issuerOK := l.regions[q.Consent.Region]
	fail := l.fail
	l.mu.RUnlock()
	if fail != nil {
		return fail
	}
	if !ok {
		return p2p.Refuse(p2p.CodeNoConsent, "consent %s is not on the ledger", q.ConsentID)
	}
	g := q.Consent
	want, err := g.Commitment()
	if err != nil || string(want[:]) != string(c.Commitment) {
		return p2p.Refuse(p2p.CodeConsentMismatch, "consent %s does not match its commitment", g.ID)
	}
	switch c.StatusAt(at) {
	case credit.ConsentActive:
	case credit.ConsentRevoked:
		return p2p.Refuse(p2p.CodeConsentRevoked, "consent %s was revoked", g.ID)
	case credit.ConsentNotExists:
		return p2p.Refuse(p2p.CodeNoConsent, "consent %s", g.ID)
	default:
		return p2p.Refuse(p2p.CodeConsentExpired, "consent %s is not valid at %s", g.ID, at.UTC().Format(time.RFC3339))
	}
	if g.Grantee != q.Bank {
		return p2p.Refuse(p2p.CodeConsentWrongGrantee, "consent %s names bank %s", g.ID, g.Grantee)
	}
	if g.Subject != q.Subject || g.Purpose != q.Purpose || !credit.CategoriesSubset(q.Categories, g.Categories) {
		return p2p.Refuse(p2p.CodeConsentOutOfScope, "query is outside consent %s", g.ID)
	}
	if !issuerOK {
		return p2p.Refuse(p2p.CodeConsentMismatch, "issuing region %s unknown", g.Region)
	}
	// A changed document has another commitment and a rotated issuer
	// another key: either is verified afresh.
	var k [32 + ed25519.PublicKeySize]byte
	copy(k[:32], want[:])
	copy(k[32:], issuer.PubKey)
	l.mu.RLock()
	done := l.verified[k]
	l.mu.RUnlock()
	if done {
		return nil
	}
	if err := g.VerifyEnterprise(); err != nil {
		return p2p.Refuse(p2p.CodeConsentMismatch, "%w", err)
	}
	if err := g.VerifyRegion(issuer.PubKey); err != nil {
		return p2p.Refuse(p2p.CodeConsentMismatch, "%w", err)
	}
	l.mu.Lock()
	l.verified[k] = true
	l.mu.Unlock()
	return nil
}

// Store is an in-memory region store: records, receipt log, acks. It
// implements p2p.ReportSource, p2p.ReceiptLog and p2p.AckStore.
type Store struct {
	mu      sync.Mutex
	records map[credit.USCC][]credit.Record
	// receipts are kept by pointer: a benchmark logs tens of thousands,
	// and a slice of receipt values was copied whole on every growth and
	// took a visible share of the answering process's CPU.
	receipts []*credit.Receipt
	byID     map[string]int
	acks     map[string]credit.Ack
	// Panic, when set, makes Report panic (handler recovery tests).
	panicking atomic.Bool
	appendErr error
}

// NewStore makes an empty store.
func NewStore() *Store {
	return &Store{records: map[credit.USCC][]credit.Record{}, byID: map[string]int{}, acks: map[string]credit.Ack{}}
}

// Put stores records (in category, date order).
func (s *Store) Put(u credit.USCC, recs []credit.Record) {
	s.mu.Lock()
	s.records[u] = recs
	s.mu.Unlock()
}

// SetPanic makes Report panic.
func (s *Store) SetPanic(on bool) { s.panicking.Store(on) }

// SetAppendErr makes Append fail.
func (s *Store) SetAppendErr(err error) {
	s.mu.Lock()
	s.appendErr = err
	s.mu.Unlock()
}

// Report implements p2p.ReportSource.
func (s *Store) Report(_ context.Context, u credit.USCC, cats []credit.Category) ([]credit.Record, error) {
	if s.panicking.Load() {
		panic("p2ptest: store panics on purpose")
	}
	s.mu.Lock()
	all := s.records[u]
	s.mu.Unlock()
	out := make([]credit.Record, 0, len(all))
	// Records are in category order: decide once per category.
	keep := false
	for i := range all {
		if i == 0 || all[i].Category != all[i-1].Category {
			keep = slices.Contains(cats, all[i].Category)
		}
		if keep {
			out = append(out, all[i])
		}
	}
	return out, nil
}

// Append implements p2p.ReceiptLog.
func (s *Store) Append(_ context.Context, r *credit.Receipt) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.appendErr != nil {
		return 0, s.appendErr
	}
	if i, ok := s.byID[r.ID]; ok {
		return uint64(i), nil
	}
	rc := *r
	s.receipts = append(s.receipts, &rc)
	s.byID[r.ID] = len(s.receipts) - 1
	return uint64(len(s.receipts) - 1), nil
}

// ErrNoReceipt: no receipt with that id.
var ErrNoReceipt = errors.New("no such receipt")

// Receipt implements p2p.AckStore.
func (s *Store) Receipt(id string) (credit.Receipt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.byID[id]
	if !ok {
		return credit.Receipt{}, fmt.Errorf("%s: %w", id, ErrNoReceipt)
	}
	return *s.receipts[i], nil
}

// PutAck implements p2p.AckStore.
func (s *Store) PutAck(a credit.Ack) error {
	s.mu.Lock()
	s.acks[a.ReceiptID] = a
	s.mu.Unlock()
	return nil
}

// Receipts returns the receipts logged so far.
func (s *Store) Receipts() []credit.Receipt {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]credit.Receipt, len(s.receipts))
	for i, r := range s.receipts {
		out[i] = *r
	}
	return out
}

// Ack returns the stored ack of a receipt.
func (s *Store) Ack(id string) (credit.Ack, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.acks[id]
	return a, ok
}

// Records makes n synthetic normalised records on u, about 220 bytes each
// (183 make the ~40 KB slice of an average enterprise), in report order.
func Records(u credit.USCC, n int) []credit.Record {
	cats := credit.AllCategories()
	out := make([]credit.Record, 0, n)
	for i := 0; i < n; i++ {
		c := cats[i*len(cats)/n]
		attrs, _ := json.Marshal(map[string]any{
			"amount": 1000 + i*37, "authority": "Shenzhen Market Supervision Administration",
			"decision": "DOC-" + strconv.Itoa(100000+i), "note": "synthetic record for protocol tests and benchmarks",
			"status": "closed",
		})
		a, _ := credit.CanonicalAttrs(attrs)
		out = append(out, credit.Record{
			Subject: u, Source: "dept-" + string(c), SourceID: "src-" + strconv.Itoa(i), Category: c,
			Date: credit.Date(fmt.Sprintf("20%02d-%02d-%02d", 10+i%15, 1+i%12, 1+i%28)), Attrs: a,
		})
	}
	// Report order is (category, date).
	slices.SortStableFunc(out, func(a, b credit.Record) int {
		if d := a.Category.Ordinal() - b.Category.Ordinal(); d != 0 {
			return d
		}
		if a.Date < b.Date {
			return -1
		}
		if a.Date > b.Date {
			return 1
		}
		return 0
	})
	return out
}

// Nonces is an in-memory p2p.NonceStore.
type Nonces struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// NewNonces makes an empty nonce store.
func NewNonces() *Nonces { return &Nonces{seen: map[string]time.Time{}} }

// Seen implements p2p.NonceStore.
func (n *Nonces) Seen(bank credit.BankID, nonce string, until time.Time) (bool, error) {
	k := string(bank) + "\x00" + nonce
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.seen[k]; ok {
		return true, nil
	}
	n.seen[k] = until
	return false, nil
}

// Bank is a synthetic bank with its key.
type Bank struct {
	Member credit.BankMember
	Key    ed25519.PrivateKey
}

// NewBank makes an active bank homed in region.
func NewBank(id credit.BankID, region credit.RegionID) (Bank, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Bank{}, err
	}
	return Bank{Key: key, Member: credit.BankMember{ID: id, Name: string(id), Region: region, PubKey: pub, Status: credit.StatusActive}}, nil
}

// Consent makes a consent signed by a fresh enterprise key and
// countersigned by the issuing region, valid from..until.
func Consent(id string, u credit.USCC, bank credit.BankID, cats []credit.Category, issuer Region, from, until time.Time) (*credit.ConsentGrant, error) {
	_, ek, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	g := &credit.ConsentGrant{
		Version: 1, ID: id, Subject: u, Grantee: bank, Categories: cats, Purpose: credit.PurposeLoanApplication,
		ValidFrom: from, ValidUntil: until, Region: issuer.Member.ID,
	}
	if err := g.SignEnterprise(ek); err != nil {
		return nil, err
	}
	if err := g.Countersign(issuer.Key); err != nil {
		return nil, err
	}
	return g, nil
}

var nonceCounter atomic.Uint64

// Query makes a query signed by the bank under consent g at t with a fresh
// nonce.
func Query(b Bank, g *credit.ConsentGrant, cats []credit.Category, t time.Time) (*credit.Query, error) {
	q := &credit.Query{
		Version: 1, Bank: b.Member.ID, Subject: g.Subject, Categories: cats, Purpose: g.Purpose,
		ConsentID: g.ID, Consent: g, Nonce: fmt.Sprintf("n%015d-%d", nonceCounter.Add(1), time.Now().UnixNano()%1e6), Time: t,
	}
	if err := q.Sign(b.Key); err != nil {
		return nil, err
	}
	return q, nil
}
