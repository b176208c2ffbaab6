package ledgertest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// NewAuthority makes an identity authority record for region with a fresh
// self-signed CA certificate, and the CA's key.
func NewAuthority(t testing.TB, name string, region credit.RegionID, divisions ...string) (credit.IdentityAuthority, ed25519.PrivateKey) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	der, err := credit.NewAuthorityCert(name, key, now.Add(-time.Hour), now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return credit.IdentityAuthority{ID: credit.AuthorityID(der), Name: name, Cert: der, Region: region, Divisions: divisions}, key
}

// newRevocationID is a fresh id of RevocationID's form.
func newRevocationID() string {
	h := sha256.Sum256([]byte(uniq("certificate")))
	return hex.EncodeToString(h[:])
}

// nearNow checks a ledger-stamped time: the transaction's, so now give or
// take the clock skew a Fabric peer tolerates.
func nearNow(t *testing.T, what string, got, before time.Time) {
	t.Helper()
	if got.Before(before.Add(-5*time.Minute)) || got.After(time.Now().Add(5*time.Minute)) {
		t.Fatalf("%s at %s, but it happened around %s", what, got, before)
	}
}

func findAuthority(as []credit.IdentityAuthority, id string) (credit.IdentityAuthority, bool) {
	for _, a := range as {
		if a.ID == id {
			return a, true
		}
	}
	return credit.IdentityAuthority{}, false
}

func testAuthorities(ctx context.Context, t *testing.T, h Harness) {
	a, b := h.Regions[0], h.Regions[1]
	auth, _ := NewAuthority(t, uniq("authority"), a.Member.ID, a.Member.Divisions...)

	// Registration: only the region whose divisions the authority covers.
	foreign := auth
	foreign.Region = b.Member.ID
	wantKind(t, b.Ledger.RegisterAuthority(ctx, foreign), network.ErrDenied, "region registering an authority for another region's divisions")
	wantKind(t, b.Ledger.RegisterAuthority(ctx, auth), network.ErrDenied, "region registering an authority in another region's name")
	if h.Outsider != nil {
		wantKind(t, h.Outsider.RegisterAuthority(ctx, auth), network.ErrDenied, "outsider registering an authority")
	}
	forged := auth
	forged.ID = newRevocationID()
	wantKind(t, a.Ledger.RegisterAuthority(ctx, forged), network.ErrInvalid, "authority id that is not its certificate's hash")

	// The ledger keeps its own status and time, not the client's.
	past := time.Now().Add(-24 * time.Hour)
	claimed := auth
	claimed.Status, claimed.RegisteredAt, claimed.RetiredAt = credit.StatusRetired, past, &past
	before := time.Now()
	if err := a.Ledger.RegisterAuthority(ctx, claimed); err != nil {
		t.Fatalf("register: %v", err)
	}
	if err := a.Ledger.RegisterAuthority(ctx, auth); err != nil {
		t.Fatalf("registering the identical authority again must be a no-op: %v", err)
	}
	renamed := auth
	renamed.Name = uniq("renamed")
	wantKind(t, a.Ledger.RegisterAuthority(ctx, renamed), network.ErrConflict, "same authority id, other content")

	var reg credit.IdentityAuthority
	eventually(t, h, "authority visible to another region", func() error {
		as, err := b.Ledger.Authorities(ctx)
		if err != nil {
			return err
		}
		got, ok := findAuthority(as, auth.ID)
		if !ok || got.Status != credit.StatusActive || got.RetiredAt != nil || got.Name != auth.Name || got.Region != a.Member.ID {
			return fmt.Errorf("authority %s: %+v (found %v)", auth.ID, got, ok)
		}
		reg = got
		return nil
	})
	nearNow(t, "registered", reg.RegisteredAt, before)
	if _, err := credit.NewTrustSet([]credit.IdentityAuthority{reg}, nil); err != nil {
		t.Fatalf("the stored authority does not make a trust set: %v", err)
	}

	// Revocations: under an authority of the caller's region only.
	certID := newRevocationID()
	_, err := b.Ledger.RevokeCertificate(ctx, credit.CertRevocation{ID: certID, Authority: auth.ID})
	wantKind(t, err, network.ErrDenied, "revocation under another region's authority")
	_, err = a.Ledger.RevokeCertificate(ctx, credit.CertRevocation{ID: certID, Authority: newRevocationID()})
	wantKind(t, err, network.ErrNotFound, "revocation under an unregistered authority")
	_, err = a.Ledger.RevokeCertificate(ctx, credit.CertRevocation{ID: "91440300MA5G00000X", Authority: auth.ID})
	wantKind(t, err, network.ErrInvalid, "revocation id that is not a hash")
	before = time.Now()
	rev, err := a.Ledger.RevokeCertificate(ctx, credit.CertRevocation{ID: certID, Authority: auth.ID, RevokedAt: past})
	if err != nil || rev.ID != certID || rev.Authority != auth.ID || rev.Region != a.Member.ID {
		t.Fatalf("revoke: %+v, %v", rev, err)
	}
	nearNow(t, "revoked", rev.RevokedAt, before)
	again, err := a.Ledger.RevokeCertificate(ctx, credit.CertRevocation{ID: certID, Authority: auth.ID})
	if err != nil || again != rev {
		t.Fatalf("second revocation must return the first %+v: %+v, %v", rev, again, err)
	}
	eventually(t, h, "revocation visible to another region", func() error {
		rs, err := b.Ledger.Revocations(ctx)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.ID == certID {
				if !r.RevokedAt.Equal(rev.RevokedAt) || r.Authority != auth.ID {
					return fmt.Errorf("revocation %+v, want %+v", r, rev)
				}
				return nil
			}
		}
		return fmt.Errorf("revocation %s not among %d", certID, len(rs))
	})

	// Retirement: by the authority's region only; twice returns the first.
	_, err = b.Ledger.RetireAuthority(ctx, auth.ID)
	wantKind(t, err, network.ErrDenied, "retiring another region's authority")
	_, err = a.Ledger.RetireAuthority(ctx, newRevocationID())
	wantKind(t, err, network.ErrNotFound, "retiring an unregistered authority")
	before = time.Now()
	ret, err := a.Ledger.RetireAuthority(ctx, auth.ID)
	if err != nil || ret.Status != credit.StatusRetired || ret.RetiredAt == nil || !ret.RegisteredAt.Equal(reg.RegisteredAt) {
		t.Fatalf("retire: %+v, %v", ret, err)
	}
	nearNow(t, "retired", *ret.RetiredAt, before)
	ret2, err := a.Ledger.RetireAuthority(ctx, auth.ID)
	if err != nil || ret2.RetiredAt == nil || !ret2.RetiredAt.Equal(*ret.RetiredAt) {
		t.Fatalf("second retirement must return the first: %+v, %v", ret2, err)
	}
	// A retried registration does not bring a retired authority back.
	if err := a.Ledger.RegisterAuthority(ctx, auth); err != nil {
		t.Fatalf("re-registering a retired authority: %v", err)
	}
	eventually(t, h, "retirement visible to another region", func() error {
		as, err := b.Ledger.Authorities(ctx)
		if err != nil {
			return err
		}
		got, ok := findAuthority(as, auth.ID)
		if !ok || got.Status != credit.StatusRetired || got.RetiredAt == nil || !got.RetiredAt.Equal(*ret.RetiredAt) {
			return fmt.Errorf("authority %+v (found %v)", got, ok)
		}
		return nil
	})
}

// payloadMatches checks that an event carries the record of its kind, and
// that the record's ledger time is the event's.
func payloadMatches(ev network.Event) error {
	switch ev.Kind {
	case network.EventAuthorityChanged:
		if ev.Authority == nil {
			return fmt.Errorf("%s without an authority", ev.Kind)
		}
		t := ev.Authority.RegisteredAt
		if ev.Authority.RetiredAt != nil {
			t = *ev.Authority.RetiredAt
		}
		if !ev.Time.Equal(t) {
			return fmt.Errorf("%s at %s, the record says %s", ev.Kind, ev.Time, t)
		}
	case network.EventCertRevoked:
		if ev.Revocation == nil {
			return fmt.Errorf("%s without a revocation", ev.Kind)
		}
		if !ev.Time.Equal(ev.Revocation.RevokedAt) {
			return fmt.Errorf("%s at %s, the record says %s", ev.Kind, ev.Time, ev.Revocation.RevokedAt)
		}
	}
	if ev.Kind != network.EventAuthorityChanged && ev.Authority != nil || ev.Kind != network.EventCertRevoked && ev.Revocation != nil {
		return fmt.Errorf("%s carries an authority or revocation", ev.Kind)
	}
	return nil
}
