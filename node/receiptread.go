package node

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// authorizeReceiptRead checks a bank's signed read of receipt id at now:
// the bank is registered and active, signed this read of this receipt,
// and signed it within the query window. It returns the bank, or a
// *credit.Refusal.
func (n *Node) authorizeReceiptRead(r *http.Request, id string, now time.Time) (credit.BankID, error) {
	bank := r.Header.Get(HeaderBank)
	if bank == "" {
		return "", credit.Refuse(credit.CodeUnauthorized, "reading a receipt needs a bank's signed read (headers %s, %s, %s); operators use the admin API", HeaderBank, HeaderTime, HeaderSignature)
	}
	rr := credit.ReceiptRead{Version: 1, Bank: credit.BankID(bank), ReceiptID: id}
	t, err := time.Parse(time.RFC3339Nano, r.Header.Get(HeaderTime))
	if err != nil {
		return "", credit.Refuse(credit.CodeInvalidQuery, "header %s: want an RFC 3339 time", HeaderTime)
	}
	rr.Time = t
	if rr.Sig, err = base64.StdEncoding.DecodeString(r.Header.Get(HeaderSignature)); err != nil {
		return "", credit.Refuse(credit.CodeInvalidQuery, "header %s: want standard base64", HeaderSignature)
	}
	if err := rr.Validate(); err != nil {
		return "", credit.Refuse(credit.CodeInvalidQuery, "%w", err)
	}
	b, ok := n.view.Bank(rr.Bank)
	if !ok {
		return "", credit.Refuse(credit.CodeBankUnknown, "bank %s is not registered", rr.Bank)
	}
	if b.Status != credit.StatusActive {
		return "", credit.Refuse(credit.CodeBankInactive, "bank %s is %s", rr.Bank, b.Status)
	}
	if len(b.PubKey) != ed25519.PublicKeySize {
		return "", credit.Refuse(credit.CodeBadSignature, "bank %s has no usable key", rr.Bank)
	}
	msg, err := rr.SignedMessage()
	if err != nil {
		return "", credit.Refuse(credit.CodeInvalidQuery, "%w", err)
	}
	if !n.sigs.verify(b.PubKey, msg, rr.Sig) {
		return "", credit.Refuse(credit.CodeBadSignature, "receipt read of bank %s for receipt %s: %w", rr.Bank, id, credit.ErrBadSignature)
	}
	if skew := now.Sub(rr.Time); skew > n.cfg.Query.Window || skew < -n.cfg.Query.Window {
		return "", credit.Refuse(credit.CodeStaleQuery, "receipt read time %s is %s from the node's clock (window %s)",
			rr.Time.UTC().Format(time.RFC3339), skew.Round(time.Millisecond), n.cfg.Query.Window)
	}
	return rr.Bank, nil
}

// BankProof is Proof for a bank: the receipt must answer that bank's own
// query. Another bank's receipt is reported as not found, so a bank
// learns nothing of receipts not its own.
func (n *Node) BankProof(ctx context.Context, bank credit.BankID, receiptID string) (ReceiptProof, error) {
	rp, err := n.Proof(ctx, receiptID)
	if err != nil {
		return rp, err
	}
	if rp.Receipt.Query.Bank != bank {
		return ReceiptProof{}, credit.Refuse(credit.CodeNotFound, "no receipt %s of bank %s on this node", receiptID, bank)
	}
	return rp, nil
}

// handleBankReceipt serves GET /v1/receipts/{id} on the bank API.
func (n *Node) handleBankReceipt(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	bank, err := n.authorizeReceiptRead(r, id, n.now())
	if err != nil {
		n.fail(w, err)
		return
	}
	rp, err := n.BankProof(r.Context(), bank, id)
	if err != nil {
		n.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rp)
}
