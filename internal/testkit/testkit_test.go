package testkit

import (
	"errors"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

func TestPoll(t *testing.T) {
	calls := 0
	if err := Poll(time.Minute, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || calls != 3 {
		t.Fatalf("Poll = %v after %d calls, want nil after 3", err, calls)
	}
	errLast := errors.New("last")
	if err := Poll(10*time.Millisecond, func() error { return errLast }); !errors.Is(err, errLast) {
		t.Fatalf("Poll past its timeout = %v, want the condition's last error", err)
	}
}

func TestUSCC(t *testing.T) {
	u := USCC(t, "440100", 42)
	if _, err := credit.ParseUSCC(string(u)); err != nil || u.Division() != "440100" {
		t.Fatalf("USCC = %q (%v), division %q", u, err, u.Division())
	}
}

func TestLogger(t *testing.T) {
	Logger(t).Info("shows with -v")
}

// A consent signed through Authority is certified under Trust, and not
// under a trust set of another authority.
func TestAuthorityCertifiesItsDivisions(t *testing.T) {
	now := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	sz := NewAuthority(t, "440300", "4403")
	u := USCC(t, "440300", 1)
	g := credit.ConsentGrant{Version: credit.ConsentVersion, ID: "consent-1", Subject: u, Grantee: "bank-a",
		Categories: []credit.Category{credit.Tax}, Purpose: credit.PurposeLoanApplication,
		ValidFrom: now, ValidUntil: now.Add(time.Hour), Region: "440300"}
	sz.SignConsent(t, &g, now)
	if ck := credit.VerifyEnterpriseChain(&g, Trust(t, sz)); ck.Refusal != nil {
		t.Fatalf("certified by its own authority: %v", ck.Refusal)
	}
	if ck := credit.VerifyEnterpriseChain(&g, Trust(t, NewAuthority(t, "440300", "4403"))); ck.Refusal == nil {
		t.Fatal("certified under an authority that did not issue it")
	}
	gz := NewAuthority(t, "440100", "4401")
	gz.SignConsent(t, &g, now)
	if ck := credit.VerifyEnterpriseChain(&g, Trust(t, sz, gz)); ck.Refusal == nil {
		t.Fatal("Guangzhou's authority certified a Shenzhen enterprise")
	}
}
