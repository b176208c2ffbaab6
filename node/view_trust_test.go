package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network"
)

// trustFixture is a view with one region, one bank and one recorded
// consent certified by ca, which the view has not learnt of yet.
type trustFixture struct {
	v       *View
	ca      *testkit.Authority
	doc     credit.ConsentGrant
	bankKey ed25519.PrivateKey
	now     time.Time
	nonce   int
}

func newTrustFixture(t *testing.T) *trustFixture {
	t.Helper()
	now := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	_, bankKey, _ := ed25519.GenerateKey(rand.Reader)
	_, regionKey, _ := ed25519.GenerateKey(rand.Reader)
	x := &trustFixture{ca: testkit.NewAuthority(t, "440300", "4403"), bankKey: bankKey, now: now}
	x.doc = credit.ConsentGrant{Version: credit.ConsentVersion, ID: "consent-trust-1", Subject: testkit.USCC(t, "440300", 5),
		Grantee: "bank-a", Categories: []credit.Category{credit.Tax}, Purpose: credit.PurposeLoanApplication,
		ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(24 * time.Hour), Region: "440300"}
	x.ca.SignConsent(t, &x.doc, now.Add(-time.Hour))
	if err := x.doc.Countersign(regionKey); err != nil {
		t.Fatal(err)
	}
	x.v = NewView(nil, nil, time.Minute, func() time.Time { return now }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	x.v.synced = now
	x.v.regions["440300"] = credit.RegionMember{ID: "440300", PubKey: regionKey.Public().(ed25519.PublicKey), Status: credit.StatusActive}
	x.v.banks["bank-a"] = credit.BankMember{ID: "bank-a", Region: "440300", PubKey: bankKey.Public().(ed25519.PublicKey), Status: credit.StatusActive}
	c, err := x.doc.Commitment()
	if err != nil {
		t.Fatal(err)
	}
	x.v.consents[x.doc.ID] = credit.ConsentCommitment{ID: x.doc.ID, Commitment: c[:], Region: x.doc.Region,
		ValidFrom: x.doc.ValidFrom, ValidUntil: x.doc.ValidUntil, Status: credit.ConsentActive, RecordedAt: now.Add(-time.Hour)}
	return x
}

// decide runs the view's consent decision on a fresh query under the
// fixture's consent and returns its refusal code ("" when it holds).
func (x *trustFixture) decide(t *testing.T) credit.Code {
	t.Helper()
	x.nonce++
	q := &credit.Query{Version: 1, Bank: "bank-a", Subject: x.doc.Subject, Categories: x.doc.Categories, Purpose: x.doc.Purpose,
		ConsentID: x.doc.ID, Consent: &x.doc, Nonce: fmt.Sprintf("nonce-%08d", x.nonce), Time: x.now}
	if err := q.Sign(x.bankKey); err != nil {
		t.Fatal(err)
	}
	return credit.CodeOf(x.v.DecideConsent(context.Background(), q, x.now, nil))
}

func (x *trustFixture) authority(a credit.IdentityAuthority) {
	x.v.apply(network.Event{Kind: network.EventAuthorityChanged, Authority: &a})
}

// The view fails closed without authorities, trusts one from its event on,
// pays for x509 once per consent, and forgets what it verified whenever
// the ledger's identity records change.
func TestViewTrustFollowsAuthorityEvents(t *testing.T) {
	x := newTrustFixture(t)
	if got := x.decide(t); got != credit.CodeConsentUncertified {
		t.Fatalf("no authority registered: %q, want %s", got, credit.CodeConsentUncertified)
	}
	x.authority(x.ca.Record)
	for range 2 {
		if got := x.decide(t); got != "" {
			t.Fatalf("registered authority: refused %s", got)
		}
	}
	if n := x.v.certs.len(); n != 1 {
		t.Fatalf("%d verified chains cached, want 1", n)
	}

	// Another authority's registration changes the trust set: the cache
	// starts over, and the consent still holds.
	other := testkit.NewAuthority(t, "440100", "4401")
	x.authority(other.Record)
	if n := x.v.certs.len(); n != 0 {
		t.Fatalf("%d verified chains cached after a trust change, want 0", n)
	}
	if got := x.decide(t); got != "" {
		t.Fatalf("after another authority's registration: refused %s", got)
	}

	// Retired (an hour before now, after the recording): refused.
	retired, at := x.ca.Record, x.now.Add(-time.Minute)
	retired.Status, retired.RetiredAt = credit.StatusRetired, &at
	x.authority(retired)
	if got := x.decide(t); got != credit.CodeConsentUncertified {
		t.Fatalf("retired authority: %q, want %s", got, credit.CodeConsentUncertified)
	}
	// An older event replayed (a resubscription from an earlier position)
	// does not bring the retired authority back.
	x.authority(x.ca.Record)
	if got := x.decide(t); got != credit.CodeConsentUncertified {
		t.Fatalf("retired authority after a replayed registration: %q, want %s", got, credit.CodeConsentUncertified)
	}
}

// A certificate revoked at or before the consent's recording makes the
// consent uncertified from the revocation's event on; one revoked after
// the recording leaves it standing.
func TestViewTrustFollowsRevocations(t *testing.T) {
	for _, tc := range []struct {
		name      string
		revokedAt time.Duration // from the recording
		want      credit.Code
	}{
		{"revoked before recording", -time.Minute, credit.CodeConsentUncertified},
		{"revoked after recording", time.Minute, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newTrustFixture(t)
			x.authority(x.ca.Record)
			if got := x.decide(t); got != "" {
				t.Fatalf("before revocation: refused %s", got)
			}
			ck := credit.VerifyEnterpriseChain(&x.doc, x.v.Trust())
			x.v.apply(network.Event{Kind: network.EventCertRevoked, Revocation: &credit.CertRevocation{
				ID: ck.Revocation, Authority: x.ca.Record.ID, Region: "440300", RevokedAt: x.v.consents[x.doc.ID].RecordedAt.Add(tc.revokedAt)}})
			if got := x.decide(t); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
