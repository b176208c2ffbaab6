package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// TestCertificateFindings: an answer on a consent whose enterprise key is
// not certified for the consent's enterprise, at the time the rules name,
// is a consent finding with code consent_uncertified that names the
// consent and says why. Each case changes one thing of the fixture's
// otherwise certified world; receipt 5 answers on the consent it makes.
func TestCertificateFindings(t *testing.T) {
	const id = "consent-c-0001"
	recorded := t0.Add(time.Minute)
	otherUSCC, err := credit.CompleteUSCC("91440300MA5F00000")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		// setup makes consent id (and may change the ledger's record).
		setup func(t *testing.T, f *fixture)
		// leaves with a consent_uncertified finding; nil: no finding.
		leaves []int
		reason string
	}{
		{
			name: "certified (control)",
			setup: func(t *testing.T, f *fixture) {
				f.grant(id, bankA, []credit.Category{credit.Penalty}, recorded)
			},
		},
		{
			name: "uncertified enterprise key: a fresh key under a self-signed certificate",
			setup: func(t *testing.T, f *fixture) {
				f.grantSigned(id, bankA, []credit.Category{credit.Penalty}, recorded,
					key("attacker"), [][]byte{selfSigned(t, key("attacker"), subject)}, signedAt)
			},
			leaves: []int{5},
			reason: "does not chain to a registered identity authority",
		},
		{
			name: "chain to an unregistered authority",
			setup: func(t *testing.T, f *fixture) {
				rogue, err := credit.NewAuthorityCert("Rogue Authority", key("rogue"), t0.Add(-time.Hour*24), t0.Add(time.Hour*24*365))
				if err != nil {
					t.Fatal(err)
				}
				leaf := issue(t, rogue, key("rogue"), subject, pub("attacker"), t0.Add(-time.Hour), t0.Add(time.Hour*24*365))
				f.grantSigned(id, bankA, []credit.Category{credit.Penalty}, recorded, key("attacker"), [][]byte{leaf}, signedAt)
			},
			leaves: []int{5},
			reason: "does not chain to a registered identity authority",
		},
		{
			name: "certificate for another USCC",
			setup: func(t *testing.T, f *fixture) {
				leaf := issue(t, f.pki.caDER, key("authority"), otherUSCC, pub("other"), t0.Add(-time.Hour), t0.Add(time.Hour*24*365))
				f.grantSigned(id, bankA, []credit.Category{credit.Penalty}, recorded, key("other"), [][]byte{leaf}, signedAt)
			},
			leaves: []int{5},
			reason: `the enterprise certificate names "` + string(otherUSCC) + `", not ` + string(subject),
		},
		{
			name: "certificate expired at signing time",
			setup: func(t *testing.T, f *fixture) {
				leaf := issue(t, f.pki.caDER, key("authority"), subject, pub("enterprise"), t0.Add(-60*24*time.Hour), t0.Add(-30*24*time.Hour))
				f.grantSigned(id, bankA, []credit.Category{credit.Penalty}, recorded, key("enterprise"), [][]byte{leaf}, signedAt)
			},
			leaves: []int{5},
			reason: "was not valid at signing time",
		},
		{
			name: "certificate not yet valid at signing time",
			setup: func(t *testing.T, f *fixture) {
				leaf := issue(t, f.pki.caDER, key("authority"), subject, pub("enterprise"), signedAt.Add(time.Second), t0.Add(time.Hour*24*365))
				f.grantSigned(id, bankA, []credit.Category{credit.Penalty}, recorded, key("enterprise"), [][]byte{leaf}, signedAt)
			},
			leaves: []int{5},
			reason: "was not valid at signing time",
		},
		{
			name: "certificate revoked before signing",
			setup: func(t *testing.T, f *fixture) {
				leaf := issue(t, f.pki.caDER, key("authority"), subject, pub("enterprise-2"), t0.Add(-time.Hour), t0.Add(time.Hour*24*365))
				f.grantSigned(id, bankA, []credit.Category{credit.Penalty}, recorded, key("enterprise-2"), [][]byte{leaf}, signedAt)
				f.snap.AddRevocation(f.pki.revocation(t, leaf, signedAt.Add(-time.Hour)))
			},
			leaves: []int{5},
			reason: "the enterprise certificate was revoked at " + signedAt.Add(-time.Hour).Format(time.RFC3339) + ", before the consent was recorded",
		},
		{
			// The enterprise's consents recorded before the revocation
			// stand: revoking a lost key ends future consents, not the
			// ones already given.
			name: "certificate revoked after the recording (control)",
			setup: func(t *testing.T, f *fixture) {
				f.grant(id, bankA, []credit.Category{credit.Penalty}, recorded)
				f.snap.AddRevocation(f.pki.revocation(t, f.pki.leafDER, recorded.Add(time.Second)))
			},
		},
		{
			name: "authority registered after the consent was recorded",
			setup: func(t *testing.T, f *fixture) {
				a := f.snap.AuthorityRecords[f.pki.caID]
				a.RegisteredAt = recorded.Add(time.Second)
				f.snap.AuthorityRecords[a.ID] = a
				f.grant(id, bankA, []credit.Category{credit.Penalty}, recorded)
				// consent-a-0001 is recorded at the same time: its
				// answers are findings too.
			},
			leaves: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
			reason: "was not registered when the consent was recorded",
		},
		{
			name: "authority retired before the answer",
			setup: func(t *testing.T, f *fixture) {
				a := f.snap.AuthorityRecords[f.pki.caID]
				retired := f.when(10).Add(-time.Second)
				a.RetiredAt, a.Status = &retired, credit.StatusRetired
				f.snap.AuthorityRecords[a.ID] = a
				f.grant(id, bankA, []credit.Category{credit.Penalty}, recorded)
			},
			leaves: []int{10, 11},
			reason: "is retired",
		},
		{
			name: "authority of other divisions",
			setup: func(t *testing.T, f *fixture) {
				a := f.pki.authority()
				ca, err := credit.NewAuthorityCert("Guangzhou Authority", key("gz-authority"), t0.Add(-time.Hour*24), t0.Add(time.Hour*24*365))
				if err != nil {
					t.Fatal(err)
				}
				a.ID, a.Cert, a.Region, a.Divisions = credit.AuthorityID(ca), ca, gz, []string{"4401"}
				f.snap.AddAuthority(a)
				leaf := issue(t, ca, key("gz-authority"), subject, pub("enterprise"), t0.Add(-time.Hour), t0.Add(time.Hour*24*365))
				f.grantSigned(id, bankA, []credit.Category{credit.Penalty}, recorded, key("enterprise"), [][]byte{leaf}, signedAt)
			},
			leaves: []int{5},
			reason: "does not vouch for division 440300",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 12)
			tc.setup(t, f)
			f.receipts[5] = f.receipt(5, bankA, id, []credit.Category{credit.Penalty})
			f.resign(5)
			f.anchor()
			rep := runAudit(t, f, f.answeredLines(), f.receivedLines(), testOptions(t))
			var w []want
			var codes []credit.Code
			for _, l := range tc.leaves {
				w = append(w, want{RuleConsent, l})
				codes = append(codes, credit.CodeConsentUncertified)
			}
			checkFindings(t, rep, w)
			checkCodes(t, rep, codes)
			for _, fd := range rep.Findings {
				consent := id
				if *fd.Leaf != 5 {
					consent = "consent-a-0001"
				}
				if !strings.Contains(fd.Detail, "consent "+consent+":") || !strings.Contains(fd.Detail, tc.reason) {
					t.Errorf("finding on leaf %d says %q; want it to name consent %s and say %q", *fd.Leaf, fd.Detail, consent, tc.reason)
				}
			}
		})
	}
}

// revocation is the ledger record revoking an enterprise certificate the
// fixture's authority issued, at the time given.
func (p pki) revocation(t testing.TB, leafDER []byte, at time.Time) credit.CertRevocation {
	t.Helper()
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		t.Fatal(err)
	}
	return credit.CertRevocation{ID: credit.RevocationID(leaf), Authority: p.caID, Region: sz, RevokedAt: at}
}

// selfSigned is a certificate an attacker makes for its own key, naming
// the victim's USCC, signed by nobody but itself.
func selfSigned(t testing.TB, k ed25519.PrivateKey, uscc credit.USCC) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "Victim Enterprise", SerialNumber: string(uscc)},
		NotBefore:    t0.Add(-24 * time.Hour),
		NotAfter:     t0.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
