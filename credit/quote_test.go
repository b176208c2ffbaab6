package credit_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

func TestQuote(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"short", "abc", `"abc"`},
		{"control characters escaped", "a\nb\x00", `"a\nb\x00"`},
		{"exactly the limit", strings.Repeat("a", credit.QuoteBytes), `"` + strings.Repeat("a", credit.QuoteBytes) + `"`},
		{"long", strings.Repeat("a", 1<<20), `"` + strings.Repeat("a", credit.QuoteBytes) + `"…(1048576 bytes)`},
		{"invalid UTF-8", strings.Repeat("\xff", 1000), `"` + strings.Repeat(`\xff`, credit.QuoteBytes) + `"…(1000 bytes)`},
		// 63 ASCII bytes then a 3-byte character: cut before it, not inside.
		{"no split character", strings.Repeat("a", 63) + strings.Repeat("深", 10), `"` + strings.Repeat("a", 63) + `"…(93 bytes)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := credit.Quote(tt.in); got != tt.want {
				t.Fatalf("Quote = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestValidationErrorsQuoteAShortPrefix: every validator that names its
// input keeps the message short whatever the input's size.
func TestValidationErrorsQuoteAShortPrefix(t *testing.T) {
	huge := strings.Repeat("\xff", 1<<20)
	q := func(edit func(*credit.Query)) func() error {
		return func() error {
			g := credit.ConsentGrant{Version: credit.ConsentVersion, ID: "consent-0001", Subject: "91440300MAA7BU3A4H", Grantee: "bank-a",
				Categories: []credit.Category{credit.Tax}, Purpose: credit.PurposeCreditReview,
				ValidFrom: time.Unix(0, 0), ValidUntil: time.Unix(100, 0), Region: "440300", SignedAt: time.Unix(0, 0), EnterpriseCert: [][]byte{{1}}}
			qq := credit.Query{Version: 1, Bank: "bank-a", Subject: g.Subject, Categories: g.Categories, Purpose: g.Purpose,
				ConsentID: g.ID, Consent: &g, Nonce: "nonce-0001", Time: time.Unix(50, 0)}
			edit(&qq)
			return qq.Validate()
		}
	}
	for name, f := range map[string]func() error{
		"bank id":        func() error { return credit.ValidateBankID(credit.BankID(huge)) },
		"id":             func() error { return credit.ValidateID("nonce", huge) },
		"region":         func() error { return credit.ValidateRegionID(credit.RegionID(huge)) },
		"uscc":           func() error { _, err := credit.ParseUSCC(huge); return err },
		"date":           func() error { _, err := credit.ParseDate(huge); return err },
		"category":       func() error { _, err := credit.ParseCategory(huge); return err },
		"query bank":     q(func(q *credit.Query) { q.Bank = credit.BankID(huge) }),
		"query purpose":  q(func(q *credit.Query) { q.Purpose = credit.Purpose(huge) }),
		"query category": q(func(q *credit.Query) { q.Categories = []credit.Category{credit.Category(huge)} }),
		"consent ids":    q(func(q *credit.Query) { q.Consent.ID = "consent-0002"; q.ConsentID = "consent-0001" + huge }),
		"query nonce":    q(func(q *credit.Query) { q.Nonce = huge }),
	} {
		t.Run(name, func(t *testing.T) {
			err := f()
			if err == nil {
				t.Fatal("accepted")
			}
			if n := len(err.Error()); n > 600 {
				t.Fatalf("message of %d bytes: %.200s", n, err)
			}
			if !strings.Contains(err.Error(), "(1048576 bytes)") && !strings.Contains(err.Error(), "(1048588 bytes)") {
				t.Fatalf("message does not say the input's size: %s", err)
			}
		})
	}
}

func TestBoundError(t *testing.T) {
	var v struct {
		N    int       `json:"n"`
		Time time.Time `json:"time"`
	}
	huge := strings.Repeat("9", 1<<20)
	for name, in := range map[string]string{
		"number":        `{"n":` + huge + `}`,
		"time":          `{"time":"` + huge + `"}`,
		"unknown field": `{"` + huge + `":1}`,
	} {
		t.Run(name, func(t *testing.T) {
			dec := json.NewDecoder(strings.NewReader(in))
			dec.DisallowUnknownFields()
			raw := dec.Decode(&v)
			if raw == nil {
				t.Fatal("decoded")
			}
			err := credit.BoundError(raw)
			if n := len(err.Error()); n > credit.MaxErrorText+32 {
				t.Fatalf("message of %d bytes: %.200s", n, err)
			}
			if !errors.Is(err, raw) {
				t.Fatal("the original error is not wrapped")
			}
			t.Log(err)
		})
	}
	if credit.BoundError(nil) != nil {
		t.Fatal("BoundError(nil) != nil")
	}
}
