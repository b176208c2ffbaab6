package testkit

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// CertValidFrom and CertValidUntil bound every certificate Authority makes
// unless told otherwise: wide enough for tests on a fixed clock and on the
// real one alike.
var (
	CertValidFrom  = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	CertValidUntil = time.Date(2060, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Authority is a development enterprise identity authority for tests: a CA
// key and certificate, and the ledger record a region registers for it.
// It is the one way tests make "a certified enterprise".
type Authority struct {
	Key ed25519.PrivateKey
	// Record is what RegisterAuthority takes: ID, name, certificate,
	// region and divisions; Status active and RegisteredAt zero, so that a
	// TrustSet built from it (Trust) holds at any time.
	Record credit.IdentityAuthority
}

// NewAuthority makes an authority that region registers for divisions
// (division-code prefixes such as "4403").
func NewAuthority(t testing.TB, region credit.RegionID, divisions ...string) *Authority {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	name := "Test identity authority of " + string(region)
	der, err := credit.NewAuthorityCert(name, key, CertValidFrom, CertValidUntil)
	if err != nil {
		t.Fatal(err)
	}
	a := &Authority{Key: key, Record: credit.IdentityAuthority{ID: credit.AuthorityID(der), Name: name, Cert: der,
		Region: region, Divisions: divisions, Status: credit.StatusActive}}
	if err := a.Record.Validate(); err != nil {
		t.Fatal(err)
	}
	return a
}

// Issue certifies a fresh signing key for the enterprise u and returns the
// key and the chain (leaf only) a consent carries.
func (a *Authority) Issue(t testing.TB, u credit.USCC) (ed25519.PrivateKey, [][]byte) {
	t.Helper()
	return a.IssueValid(t, u, CertValidFrom, CertValidUntil)
}

// IssueValid is Issue with a certificate valid over [from, until].
func (a *Authority) IssueValid(t testing.TB, u credit.USCC, from, until time.Time) (ed25519.PrivateKey, [][]byte) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := credit.IssueEnterpriseCert(a.Record.Cert, a.Key, u, "Test enterprise "+string(u), key.Public(), from, until)
	if err != nil {
		t.Fatal(err)
	}
	return key, [][]byte{der}
}

// Trust is a TrustSet in which every one of auths is registered (as its
// Record says) and no certificate is revoked.
func Trust(t testing.TB, auths ...*Authority) *credit.TrustSet {
	t.Helper()
	recs := make([]credit.IdentityAuthority, len(auths))
	for i, a := range auths {
		recs[i] = a.Record
	}
	ts, err := credit.NewTrustSet(recs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// SignConsent has g's subject, with a key a certifies, sign g at signedAt.
func (a *Authority) SignConsent(t testing.TB, g *credit.ConsentGrant, signedAt time.Time) {
	t.Helper()
	key, chain := a.Issue(t, g.Subject)
	if err := g.SignEnterprise(key, chain, signedAt); err != nil {
		t.Fatal(err)
	}
}
