package credit

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

// A receipt read's signature covers the bank, the receipt id and the
// time: changing any of them, or presenting the signature of another
// document kind, fails.
func TestReceiptReadSignature(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.FixedZone("CST", 8*3600))
	rr := ReceiptRead{Version: 1, Bank: "bank-a", ReceiptID: "r-1", Time: at}
	if err := rr.Sign(key); err != nil {
		t.Fatal(err)
	}
	if err := rr.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := rr.Verify(pub); err != nil {
		t.Fatalf("own signature: %v", err)
	}
	utc := rr
	utc.Time = at.UTC()
	if err := utc.Verify(pub); err != nil {
		t.Fatalf("the same instant in UTC: %v", err)
	}
	for name, change := range map[string]func(*ReceiptRead){
		"receipt id": func(r *ReceiptRead) { r.ReceiptID = "r-2" },
		"bank":       func(r *ReceiptRead) { r.Bank = "bank-b" },
		"time":       func(r *ReceiptRead) { r.Time = r.Time.Add(time.Second) },
	} {
		c := rr
		change(&c)
		if err := c.Verify(pub); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s changed: %v, want ErrBadSignature", name, err)
		}
	}
	// The same fields signed as another document kind do not pass.
	other, err := signValue(key, tagQuery, ReceiptRead{Version: 1, Bank: "bank-a", ReceiptID: "r-1", Time: at.UTC()})
	if err != nil {
		t.Fatal(err)
	}
	c := rr
	c.Sig = other
	if err := c.Verify(pub); !errors.Is(err, ErrBadSignature) {
		t.Errorf("a query-tagged signature: %v, want ErrBadSignature", err)
	}
	if err := (&ReceiptRead{Version: 1, Bank: "bank-a", Time: at}).Validate(); !errors.Is(err, ErrReceiptRead) {
		t.Errorf("no receipt id: %v", err)
	}
}
