package credit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"slices"
	"testing"
	"time"
)

// consentFixture is a consent that holds: a document signed by the
// enterprise and countersigned by its issuing region, its commitment on the
// ledger, and a query by the grantee inside its scope, answered in the
// middle of its window.
type consentFixture struct {
	facts  ConsentFacts
	ent    ed25519.PrivateKey
	region ed25519.PrivateKey
	ca     *testCA
}

var (
	decideFrom  = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	decideUntil = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	decideAt    = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
)

func newConsentFixture(t testing.TB) *consentFixture {
	t.Helper()
	subject, err := CompleteUSCC("91440300MA0000001")
	if err != nil {
		t.Fatal(err)
	}
	x := &consentFixture{ent: testKey(t, 7), region: testKey(t, 9), ca: newTestCA(t, 13, "440300", "4403")}
	doc := &ConsentGrant{Version: ConsentVersion, ID: "consent-01", Subject: subject, Grantee: "bank-a",
		Categories: []Category{Tax, Penalty, Judicial}, Purpose: PurposeLoanApplication,
		ValidFrom: decideFrom, ValidUntil: decideUntil, Region: "440300",
		SignedAt: decideFrom, EnterpriseCert: x.ca.issue(t, subject, x.ent, caFrom, decideUntil)}
	x.sign(t, doc)
	q := &Query{Version: 1, Bank: "bank-a", Subject: subject, Categories: []Category{Tax, Penalty},
		Purpose: PurposeLoanApplication, ConsentID: doc.ID, Consent: doc, Nonce: "n-1", Time: decideAt}
	x.facts = ConsentFacts{
		Query:     q,
		Ledger:    &ConsentCommitment{ID: doc.ID, Region: doc.Region, ValidFrom: decideFrom, ValidUntil: decideUntil, Status: ConsentActive, RecordedAt: decideFrom},
		Status:    ConsentActive,
		At:        decideAt,
		IssuerKey: x.region.Public().(ed25519.PublicKey),
		Trust:     trustOf(t, nil, x.ca),
	}
	x.record(t)
	return x
}

// sign has the enterprise sign doc and its region countersign it.
func (x *consentFixture) sign(t testing.TB, doc *ConsentGrant) {
	t.Helper()
	if err := doc.SignEnterprise(x.ent, doc.EnterpriseCert, doc.SignedAt); err != nil {
		t.Fatal(err)
	}
	if err := doc.Countersign(x.region); err != nil {
		t.Fatal(err)
	}
}

// record puts the document's commitment, as it is now, on the ledger: a
// ledger that recorded exactly this document.
func (x *consentFixture) record(t testing.TB) {
	t.Helper()
	c, err := x.facts.Query.Consent.Commitment()
	if err != nil {
		t.Fatal(err)
	}
	x.facts.Ledger.Commitment = c[:]
}

// reissue has the enterprise sign the document again with chain at
// signedAt and the ledger record the result.
func (x *consentFixture) reissue(t testing.TB, chain [][]byte, signedAt time.Time) {
	t.Helper()
	doc := x.facts.Query.Consent
	doc.EnterpriseCert, doc.SignedAt = chain, signedAt
	x.sign(t, doc)
	x.record(t)
}

// revoke puts a revocation of the document's leaf certificate at at.
func (x *consentFixture) revoke(t testing.TB, at time.Time) {
	t.Helper()
	leaf := mustParse(t, x.facts.Query.Consent.EnterpriseCert[0])
	x.facts.Trust = trustOf(t, []CertRevocation{{ID: RevocationID(leaf), Authority: x.ca.auth.ID, Region: "440300", RevokedAt: at}}, x.ca)
}

func codesOf(rs []*Refusal) []Code {
	var out []Code
	for _, r := range rs {
		out = append(out, r.Code)
	}
	return out
}

// TestDecideConsent is where the consent rules are written down: one row
// per rule and per ledger status. DecideConsent returns every rule broken,
// in this order: the document is the query's (consent_mismatch) → the
// consent is on the ledger (consent_not_found) → the document matches its
// commitment and issuing region (consent_mismatch) — each of these three
// stops the decision, as nothing else can be judged — then, all reported
// together: the status at the answer's time and the document's own window
// (consent_revoked, consent_expired, consent_not_yet_valid,
// consent_not_found) → the querying bank is the grantee
// (consent_other_bank) → the queried enterprise gave it (subject_mismatch)
// → the purpose is the consent's (purpose_mismatch) → every category asked
// is covered (category_out_of_scope) → the enterprise's signature verifies
// (consent_signature_invalid) under a certificate that a registered
// identity authority, active when the consent was recorded and now,
// issued for this USCC and that was valid at signing time and not revoked
// by the recording (consent_uncertified) → the issuing region is a member
// and its countersignature verifies (consent_signature_invalid).
func TestDecideConsent(t *testing.T) {
	other, err := CompleteUSCC("91440300MA0000002")
	if err != nil {
		t.Fatal(err)
	}
	otherKey := testKey(t, 11).Public().(ed25519.PublicKey)
	tests := []struct {
		name string
		// edit changes the holding fixture; x.record(t) re-records the
		// document when the ledger should hold the edited one.
		edit func(t *testing.T, x *consentFixture)
		want []Code
	}{
		{"holds", func(*testing.T, *consentFixture) {}, nil},
		{"holds: every category of the consent asked", func(_ *testing.T, x *consentFixture) {
			x.facts.Query.Categories = []Category{Judicial, Penalty, Tax}
		}, nil},
		{"holds: the commitment given by the caller", func(t *testing.T, x *consentFixture) {
			c, _ := x.facts.Query.Consent.Commitment()
			x.facts.Commitment = &c
		}, nil},
		{"holds: at the first instant of both windows", func(_ *testing.T, x *consentFixture) { x.facts.At = decideFrom }, nil},
		{"holds: at the last instant before the windows end", func(_ *testing.T, x *consentFixture) {
			x.facts.At = decideUntil.Add(-time.Nanosecond)
		}, nil},

		// The document is the query's.
		{"no document", func(_ *testing.T, x *consentFixture) { x.facts.Query.Consent = nil }, []Code{CodeConsentMismatch}},
		{"the document of another consent", func(_ *testing.T, x *consentFixture) { x.facts.Query.ConsentID = "consent-02" },
			[]Code{CodeConsentMismatch}},

		// The consent is on the ledger.
		{"not on the ledger", func(_ *testing.T, x *consentFixture) { x.facts.Ledger = nil }, []Code{CodeConsentNotFound}},

		// The document matches its commitment and issuing region.
		{"the ledger committed another document", func(_ *testing.T, x *consentFixture) {
			x.facts.Ledger.Commitment = bytes.Repeat([]byte{1}, 32)
		}, []Code{CodeConsentMismatch}},
		{"the ledger holds no commitment bytes", func(_ *testing.T, x *consentFixture) { x.facts.Ledger.Commitment = nil },
			[]Code{CodeConsentMismatch}},
		{"a wrong Commitment given by the caller", func(_ *testing.T, x *consentFixture) {
			x.facts.Commitment = &[32]byte{1}
		}, []Code{CodeConsentMismatch}},
		{"the document was changed after it was recorded", func(_ *testing.T, x *consentFixture) {
			x.facts.Query.Consent.Categories = append(x.facts.Query.Consent.Categories, Customs)
		}, []Code{CodeConsentMismatch}},
		{"the ledger records another issuing region", func(_ *testing.T, x *consentFixture) { x.facts.Ledger.Region = "440100" },
			[]Code{CodeConsentMismatch}},

		// The ledger's status at the answer's time: one row per status.
		{"status revoked", func(_ *testing.T, x *consentFixture) { x.facts.Status = ConsentRevoked }, []Code{CodeConsentRevoked}},
		{"status expired", func(_ *testing.T, x *consentFixture) { x.facts.Status = ConsentExpired }, []Code{CodeConsentExpired}},
		{"status not yet valid", func(_ *testing.T, x *consentFixture) { x.facts.Status = ConsentNotYet }, []Code{CodeConsentNotYetValid}},
		{"status not found (not yet recorded at that time)", func(_ *testing.T, x *consentFixture) { x.facts.Status = ConsentNotExists },
			[]Code{CodeConsentNotFound}},
		{"status unknown fails closed", func(_ *testing.T, x *consentFixture) { x.facts.Status = "" }, []Code{CodeConsentNotFound}},

		// The document's own window (the one the enterprise signed), when
		// the ledger's status says active.
		{"before the document's window", func(_ *testing.T, x *consentFixture) { x.facts.At = decideFrom.Add(-time.Second) },
			[]Code{CodeConsentNotYetValid}},
		{"at the document's end", func(_ *testing.T, x *consentFixture) { x.facts.At = decideUntil }, []Code{CodeConsentExpired}},

		// Bank, enterprise, purpose, categories.
		{"another bank", func(_ *testing.T, x *consentFixture) { x.facts.Query.Bank = "bank-b" }, []Code{CodeConsentOtherBank}},
		{"another enterprise", func(_ *testing.T, x *consentFixture) { x.facts.Query.Subject = other }, []Code{CodeSubjectMismatch}},
		{"another purpose", func(_ *testing.T, x *consentFixture) { x.facts.Query.Purpose = PurposeCreditReview },
			[]Code{CodePurposeMismatch}},
		{"a category outside the consent", func(_ *testing.T, x *consentFixture) {
			x.facts.Query.Categories = []Category{Tax, Customs}
		}, []Code{CodeCategoryOutOfScope}},

		// Signatures.
		{"issuing region not a member (nil IssuerKey)", func(_ *testing.T, x *consentFixture) { x.facts.IssuerKey = nil },
			[]Code{CodeConsentSignature}},
		{"nil IssuerKey even when the caller says it verified", func(_ *testing.T, x *consentFixture) {
			x.facts.IssuerKey, x.facts.SignaturesVerified = nil, true
		}, []Code{CodeConsentSignature}},
		{"countersigned by another key", func(_ *testing.T, x *consentFixture) { x.facts.IssuerKey = otherKey },
			[]Code{CodeConsentSignature}},
		{"enterprise signature broken (the ledger recorded it so)", func(t *testing.T, x *consentFixture) {
			x.facts.Query.Consent.EnterpriseSig[0] ^= 1
			x.record(t)
		}, []Code{CodeConsentSignature}},
		{"countersignature broken (the ledger recorded it so)", func(t *testing.T, x *consentFixture) {
			x.facts.Query.Consent.RegionSig[0] ^= 1
			x.record(t)
		}, []Code{CodeConsentSignature}},
		{"SignaturesVerified skips the countersignature check", func(_ *testing.T, x *consentFixture) {
			// A cache says this document verified: the decision believes
			// it, even with a key under which it would not.
			x.facts.IssuerKey, x.facts.SignaturesVerified = otherKey, true
		}, nil},
		{"SignaturesVerified skips a broken countersignature too", func(t *testing.T, x *consentFixture) {
			x.facts.Query.Consent.RegionSig[0] ^= 1
			x.record(t)
			x.facts.SignaturesVerified = true
		}, nil},
		{"SignaturesVerified does not skip the enterprise signature", func(t *testing.T, x *consentFixture) {
			x.facts.Query.Consent.EnterpriseSig[0] ^= 1
			x.record(t)
			x.facts.SignaturesVerified = true
		}, []Code{CodeConsentSignature}},
		{"a cached Certified is believed (no x509 work)", func(t *testing.T, x *consentFixture) {
			ck := VerifyEnterpriseChain(x.facts.Query.Consent, x.facts.Trust)
			x.facts.Query.Consent.EnterpriseSig[0] ^= 1
			if err := x.facts.Query.Consent.Countersign(x.region); err != nil {
				t.Fatal(err)
			}
			x.record(t)
			x.facts.Certified = &ck
		}, nil},

		// The enterprise's certificate.
		{"no authority registered (nil Trust) fails closed", func(_ *testing.T, x *consentFixture) { x.facts.Trust = nil },
			[]Code{CodeConsentUncertified}},
		{"a fresh key with a certificate from an unregistered authority", func(t *testing.T, x *consentFixture) {
			rogue := newTestCA(t, 31, "440300", "4403")
			x.reissue(t, rogue.issue(t, x.facts.Query.Subject, x.ent, caFrom, decideUntil), decideFrom)
		}, []Code{CodeConsentUncertified}},
		{"a self-signed enterprise certificate", func(t *testing.T, x *consentFixture) {
			self := newTestCA(t, 7, "440300", "4403") // the enterprise's own key as a CA
			x.reissue(t, [][]byte{self.auth.Cert}, decideFrom)
		}, []Code{CodeConsentUncertified}},
		{"a certificate for another USCC", func(t *testing.T, x *consentFixture) {
			x.reissue(t, x.ca.issue(t, other, x.ent, caFrom, decideUntil), decideFrom)
		}, []Code{CodeConsentUncertified}},
		{"a certificate that expired before signing", func(t *testing.T, x *consentFixture) {
			x.reissue(t, x.ca.issue(t, x.facts.Query.Subject, x.ent, caFrom, decideFrom.Add(-time.Hour)), decideFrom)
		}, []Code{CodeConsentUncertified}},
		{"a certificate not yet valid at signing", func(t *testing.T, x *consentFixture) {
			x.reissue(t, x.ca.issue(t, x.facts.Query.Subject, x.ent, decideFrom.Add(time.Hour), decideUntil), decideFrom)
		}, []Code{CodeConsentUncertified}},
		{"the certificate's key did not sign", func(t *testing.T, x *consentFixture) {
			chain := x.ca.issue(t, x.facts.Query.Subject, testKey(t, 41), caFrom, decideUntil)
			x.reissue(t, chain, decideFrom) // signed by x.ent, certifying another key
		}, []Code{CodeConsentSignature}},
		{"revoked before the recording", func(t *testing.T, x *consentFixture) {
			x.revoke(t, decideFrom.Add(-time.Second))
		}, []Code{CodeConsentUncertified}},
		{"revoked at the recording", func(t *testing.T, x *consentFixture) { x.revoke(t, decideFrom) }, []Code{CodeConsentUncertified}},
		{"holds: revoked after the recording", func(t *testing.T, x *consentFixture) { x.revoke(t, decideFrom.Add(time.Second)) }, nil},
		{"an authority for other divisions", func(t *testing.T, x *consentFixture) {
			x.ca.auth.Divisions = []string{"4401"}
			x.facts.Trust = trustOf(t, nil, x.ca)
		}, []Code{CodeConsentUncertified}},
		{"holds: a hundred look-alikes of the authority registered for other divisions", func(t *testing.T, x *consentFixture) {
			// Another region's authorities with this one's subject and key
			// id, keys of their own, listed first: only the authorities of
			// the subject's division are tried, so they cost nothing.
			ca := mustParse(t, x.ca.auth.Cert)
			var cas []*testCA
			for i := range 101 {
				key := testKey(t, byte(100+i))
				tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 1)), RawSubject: ca.RawSubject, SubjectKeyId: ca.SubjectKeyId,
					NotBefore: caFrom, NotAfter: caFrom.AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true,
					KeyUsage: x509.KeyUsageCertSign}
				der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
				if err != nil {
					t.Fatal(err)
				}
				cas = append(cas, &testCA{key: key, auth: IdentityAuthority{ID: AuthorityID(der), Name: "look-alike", Cert: der,
					Region: "440100", Divisions: []string{"4401"}, Status: StatusActive, RegisteredAt: caFrom}})
			}
			x.facts.Trust = trustOf(t, nil, append(cas, x.ca)...)
		}, nil},
		{"an authority retired before the answer", func(t *testing.T, x *consentFixture) {
			at := decideAt.Add(-time.Hour)
			x.ca.auth.RetiredAt, x.ca.auth.Status = &at, StatusRetired
			x.facts.Trust = trustOf(t, nil, x.ca)
		}, []Code{CodeConsentUncertified}},
		{"holds: an authority retired after the answer", func(t *testing.T, x *consentFixture) {
			at := decideAt.Add(time.Hour)
			x.ca.auth.RetiredAt = &at
			x.facts.Trust = trustOf(t, nil, x.ca)
		}, nil},
		{"an authority registered after the recording", func(t *testing.T, x *consentFixture) {
			x.ca.auth.RegisteredAt = decideFrom.Add(time.Second)
			x.facts.Trust = trustOf(t, nil, x.ca)
		}, []Code{CodeConsentUncertified}},
		{"signed after its recording (beyond the skew)", func(t *testing.T, x *consentFixture) {
			x.reissue(t, x.facts.Query.Consent.EnterpriseCert, decideFrom.Add(MaxSigningSkew+time.Second))
		}, []Code{CodeConsentUncertified}},
		{"holds: signed within the skew after its recording", func(t *testing.T, x *consentFixture) {
			x.reissue(t, x.facts.Query.Consent.EnterpriseCert, decideFrom.Add(MaxSigningSkew))
		}, nil},

		// Several rules broken: all reported, in order.
		{"every rule after the commitment broken", func(t *testing.T, x *consentFixture) {
			x.facts.Status = ConsentRevoked
			x.facts.Query.Bank = "bank-b"
			x.facts.Query.Subject = other
			x.facts.Query.Purpose = PurposeGuarantee
			x.facts.Query.Categories = []Category{Customs}
			x.facts.IssuerKey = otherKey
		}, []Code{CodeConsentRevoked, CodeConsentOtherBank, CodeSubjectMismatch, CodePurposeMismatch, CodeCategoryOutOfScope, CodeConsentSignature}},
		{"the ledger's status first, then the document's window is not judged", func(_ *testing.T, x *consentFixture) {
			x.facts.Status, x.facts.At = ConsentExpired, decideUntil.Add(time.Hour)
		}, []Code{CodeConsentExpired}},
		{"a stop rule hides the others: not on the ledger", func(_ *testing.T, x *consentFixture) {
			x.facts.Ledger = nil
			x.facts.Query.Bank = "bank-b"
			x.facts.IssuerKey = nil
		}, []Code{CodeConsentNotFound}},
		{"a stop rule hides the others: wrong commitment", func(_ *testing.T, x *consentFixture) {
			x.facts.Commitment = &[32]byte{1}
			x.facts.Status = ConsentRevoked
			x.facts.Query.Purpose = PurposeGuarantee
		}, []Code{CodeConsentMismatch}},
		{"a stop rule hides the others: no document before not on the ledger", func(_ *testing.T, x *consentFixture) {
			x.facts.Query.Consent = nil
			x.facts.Ledger = nil
		}, []Code{CodeConsentMismatch}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := newConsentFixture(t)
			tc.edit(t, x)
			got := DecideConsent(x.facts)
			if !slices.Equal(codesOf(got), tc.want) {
				t.Fatalf("DecideConsent = %v, want %v", got, tc.want)
			}
			for _, r := range got {
				if !r.Code.Known() || r.Msg == "" {
					t.Errorf("refusal %#v: want a known code and a message", r)
				}
			}
		})
	}
}

// The facts are the caller's: deciding changes none of them.
func TestDecideConsentLeavesFactsAlone(t *testing.T) {
	x := newConsentFixture(t)
	x.facts.Query.Bank = "bank-b"
	before := *x.facts.Query
	doc := *x.facts.Query.Consent
	DecideConsent(x.facts)
	if before.Bank != x.facts.Query.Bank || !slices.Equal(before.Categories, x.facts.Query.Categories) ||
		!bytes.Equal(doc.EnterpriseSig, x.facts.Query.Consent.EnterpriseSig) || x.facts.Commitment != nil {
		t.Fatal("DecideConsent changed its input")
	}
}

// A node decides on every query: with its caches (Commitment,
// SignaturesVerified, Certified) a consent that holds costs no allocation.
func TestDecideConsentHoldsWithoutAllocating(t *testing.T) {
	x := newConsentFixture(t)
	c, _ := x.facts.Query.Consent.Commitment()
	ck := VerifyEnterpriseChain(x.facts.Query.Consent, x.facts.Trust)
	x.facts.Commitment, x.facts.SignaturesVerified, x.facts.Certified = &c, true, &ck
	if got := DecideConsent(x.facts); got != nil {
		t.Fatalf("fixture does not hold: %v", got)
	}
	if n := testing.AllocsPerRun(100, func() { DecideConsent(x.facts) }); n != 0 {
		t.Fatalf("DecideConsent allocates %v times on a consent that holds", n)
	}
}

func BenchmarkDecideConsent(b *testing.B) {
	x := newConsentFixture(b)
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			DecideConsent(x.facts)
		}
	})
	c, _ := x.facts.Query.Consent.Commitment()
	f := x.facts
	f.Commitment, f.SignaturesVerified = &c, true
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			DecideConsent(f)
		}
	})
}
