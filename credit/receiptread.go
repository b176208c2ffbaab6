package credit

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"
)

// tagReceiptRead is the domain of a bank's signed receipt read, so that a
// signature over a query or any other document never passes for one.
const tagReceiptRead = "ccnode/receipt-read/v1"

// ReceiptRead is a bank's signed request to read one receipt (with the
// subject's USCC and the consent document in it) from the node that
// issued it. It names the receipt, so a signature made for one receipt
// reads no other, and carries its time, which the node holds within its
// query window, so a captured request stops working minutes later.
type ReceiptRead struct {
	Version   int       `json:"v"`
	Bank      BankID    `json:"bank"`
	ReceiptID string    `json:"receipt_id"`
	Time      time.Time `json:"time"`
	Sig       []byte    `json:"sig,omitempty"`
}

// ErrReceiptRead: a receipt read lacks a field it needs.
var ErrReceiptRead = errors.New("receipt read")

// Validate checks the fields a node needs before it verifies anything.
func (r *ReceiptRead) Validate() error {
	switch {
	case r.Version != 1:
		return fmt.Errorf("%w: version %d, want 1", ErrReceiptRead, r.Version)
	case r.ReceiptID == "":
		return fmt.Errorf("%w: no receipt id", ErrReceiptRead)
	case r.Time.IsZero():
		return fmt.Errorf("%w: no time", ErrReceiptRead)
	}
	if err := ValidateBankID(r.Bank); err != nil {
		return fmt.Errorf("%w: %w", ErrReceiptRead, err)
	}
	return nil
}

// SignedMessage is what the bank's signature on the read covers: the
// domain tag, then the canonical JSON of the read without its signature
// and with its time in UTC.
func (r *ReceiptRead) SignedMessage() ([]byte, error) {
	n := *r
	n.Time, n.Sig = utc(n.Time), nil
	return signingMessage(tagReceiptRead, n)
}

// Sign signs the read with the bank's key.
func (r *ReceiptRead) Sign(bankKey ed25519.PrivateKey) error {
	if len(bankKey) != ed25519.PrivateKeySize {
		return fmt.Errorf("signing key: want %d bytes, got %d", ed25519.PrivateKeySize, len(bankKey))
	}
	msg, err := r.SignedMessage()
	if err != nil {
		return err
	}
	r.Sig = signMessage(bankKey, msg)
	return nil
}

// VerifyWith checks the bank's signature with check.
func (r *ReceiptRead) VerifyWith(bankPub []byte, check SigCheck) error {
	msg, err := r.SignedMessage()
	if err == nil {
		err = checkSigned(check, bankPub, msg, r.Sig)
	}
	if err != nil {
		return fmt.Errorf("receipt read of bank %s: %w", r.Bank, err)
	}
	return nil
}

// Verify checks the bank's signature.
func (r *ReceiptRead) Verify(bankPub []byte) error { return r.VerifyWith(bankPub, verifyMessage) }
