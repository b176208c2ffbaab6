package credit

import (
	"crypto/ed25519"
	"crypto/x509"
	"testing"
	"time"
)

// testCA is an enterprise identity authority for tests: its key, its
// certificate and its ledger record.
type testCA struct {
	key  ed25519.PrivateKey
	auth IdentityAuthority
}

var caFrom = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func newTestCA(t testing.TB, seed byte, region RegionID, divisions ...string) *testCA {
	t.Helper()
	key := testKey(t, seed)
	der, err := NewAuthorityCert("Test authority "+string(rune('A'+seed%26)), key, caFrom, caFrom.AddDate(10, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	a := IdentityAuthority{ID: AuthorityID(der), Name: "test authority", Cert: der, Region: region,
		Divisions: divisions, Status: StatusActive, RegisteredAt: caFrom}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	return &testCA{key: key, auth: a}
}

// issue certifies ent for uscc over [from, until) and returns the chain a
// consent carries.
func (ca *testCA) issue(t testing.TB, uscc USCC, ent ed25519.PrivateKey, from, until time.Time) [][]byte {
	t.Helper()
	der, err := IssueEnterpriseCert(ca.auth.Cert, ca.key, uscc, "Test enterprise", ent.Public(), from, until)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{der}
}

func trustOf(t testing.TB, revs []CertRevocation, cas ...*testCA) *TrustSet {
	t.Helper()
	var auths []IdentityAuthority
	for _, ca := range cas {
		auths = append(auths, ca.auth)
	}
	ts, err := NewTrustSet(auths, revs)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestAuthorityValidate(t *testing.T) {
	ca := newTestCA(t, 21, "440300", "4403")
	leaf := ca.issue(t, "91440300708461136T", testKey(t, 22), caFrom, caFrom.AddDate(1, 0, 0))[0]
	tests := []struct {
		name  string
		edit  func(a *IdentityAuthority)
		field string
	}{
		{"holds", func(*IdentityAuthority) {}, ""},
		{"id of another certificate", func(a *IdentityAuthority) { a.ID = AuthorityID([]byte("x")) }, "id"},
		{"not a CA", func(a *IdentityAuthority) { a.Cert, a.ID = leaf, AuthorityID(leaf) }, "cert"},
		{"garbage certificate", func(a *IdentityAuthority) { a.Cert = []byte("nope") }, "cert"},
		{"no divisions", func(a *IdentityAuthority) { a.Divisions = nil }, "divisions"},
		{"division not digits", func(a *IdentityAuthority) { a.Divisions = []string{"44x3"} }, "divisions"},
		{"bad region", func(a *IdentityAuthority) { a.Region = "Shen Zhen" }, "region"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := ca.auth
			tc.edit(&a)
			err := a.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			fe, ok := err.(*FieldError)
			if !ok || fe.Field != tc.field {
				t.Fatalf("Validate = %v, want a FieldError on %s", err, tc.field)
			}
		})
	}
}

// The revocation id depends on issuer and serial only, and two
// certificates of one authority never share one.
func TestRevocationID(t *testing.T) {
	ca := newTestCA(t, 21, "440300", "4403")
	a := ca.issue(t, "91440300708461136T", testKey(t, 22), caFrom, caFrom.AddDate(1, 0, 0))[0]
	b := ca.issue(t, "91440300708461136T", testKey(t, 22), caFrom, caFrom.AddDate(1, 0, 0))[0]
	ca2, cb := mustParse(t, a), mustParse(t, b)
	if RevocationID(ca2) == RevocationID(cb) {
		t.Fatal("two certificates share a revocation id")
	}
	if err := ValidateRevocationID(RevocationID(ca2)); err != nil {
		t.Fatal(err)
	}
	if err := ValidateRevocationID("91440300708461136T"); err == nil {
		t.Fatal("a USCC passed as a revocation id")
	}
}

func mustParse(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
