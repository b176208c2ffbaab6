package node

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"net/url"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node/bankclient"
)

// Client is a client of a node: of its bank API (through bankclient, the
// banks' own client) and of its admin API for an operator (consents,
// banks, authorities, OperatorReceipt, with the operator's token). Both
// make their requests with bankclient.Client.Do, one exchange and one
// error type (*StatusError, a *bankclient.Error).
type Client struct {
	// Base is the bank API's URL, such as http://127.0.0.1:8440.
	Base string
	// Admin is the admin API's URL, such as http://127.0.0.1:9440.
	Admin string
	// OperatorToken is the operator's token for admin calls.
	OperatorToken string
	HTTP          *http.Client
}

// Bank is the bankclient of the bank API, signing as bank with key when
// they are given.
func (c *Client) Bank(bank credit.BankID, key ed25519.PrivateKey, opts ...bankclient.Option) *bankclient.Client {
	o := []bankclient.Option{}
	if c.HTTP != nil {
		o = append(o, bankclient.WithHTTPClient(c.HTTP))
	}
	if key != nil {
		o = append(o, bankclient.WithBank(bank, key))
	}
	return bankclient.New(c.Base, append(o, opts...)...)
}

// admin calls the admin API with the operator's token.
func (c *Client) admin(ctx context.Context, method, path string, in, out any) error {
	if c.Admin == "" {
		return fmt.Errorf("%s %s: no admin API address (Client.Admin)", method, path)
	}
	o := []bankclient.Option{}
	if c.HTTP != nil {
		o = append(o, bankclient.WithHTTPClient(c.HTTP))
	}
	h := http.Header{"Authorization": {"Bearer " + c.OperatorToken}}
	return bankclient.New(c.Admin, o...).Do(ctx, method, path, h, in, out)
}

// Query submits a signed query.
func (c *Client) Query(ctx context.Context, q *credit.Query) (*Consolidated, error) {
	return c.Bank("", nil).Send(ctx, q)
}

// Receipt fetches, as bank, a receipt of the bank's own query with its
// inclusion proof: the read is signed with the bank's key at the current
// time and names the receipt.
func (c *Client) Receipt(ctx context.Context, bank credit.BankID, key ed25519.PrivateKey, id string) (*ReceiptProof, error) {
	return c.Bank(bank, key).Receipt(ctx, id)
}

// ConsentStatus reads a consent's status.
func (c *Client) ConsentStatus(ctx context.Context, id string) (*ConsentResponse, error) {
	return c.Bank("", nil).ConsentStatus(ctx, id)
}

// Checkpoint reads the node's latest anchored checkpoint.
func (c *Client) Checkpoint(ctx context.Context) (*credit.AnchoredCheckpoint, error) {
	return c.Bank("", nil).Checkpoint(ctx)
}

// Consistency reads a consistency proof between two of the region's
// anchored checkpoints (sizes from and to).
func (c *Client) Consistency(ctx context.Context, from, to uint64) (*ConsistencyProof, error) {
	return c.Bank("", nil).Consistency(ctx, from, to)
}

// OperatorReceipt fetches any receipt of the node's log with its
// inclusion proof (admin).
func (c *Client) OperatorReceipt(ctx context.Context, id string) (*ReceiptProof, error) {
	var out ReceiptProof
	if err := c.admin(ctx, "GET", "/v1/receipts/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RecordConsent records an enterprise-signed grant (admin).
func (c *Client) RecordConsent(ctx context.Context, g credit.ConsentGrant) (*ConsentResponse, error) {
	var out ConsentResponse
	if err := c.admin(ctx, "POST", "/v1/consents", g, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeConsent revokes a consent (admin).
func (c *Client) RevokeConsent(ctx context.Context, id string) (*ConsentResponse, error) {
	var out ConsentResponse
	if err := c.admin(ctx, "POST", "/v1/consents/"+url.PathEscape(id)+"/revoke", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// VerifyStore has the node check every table and value of its store
// (admin).
func (c *Client) VerifyStore(ctx context.Context) (*VerifyReport, error) {
	var out VerifyReport
	if err := c.admin(ctx, "POST", "/v1/verify", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RegisterBank registers or updates a bank of this region (admin).
func (c *Client) RegisterBank(ctx context.Context, b credit.BankMember) error {
	_, err := c.RegisterBankRecord(ctx, b)
	return err
}

// RegisterBankRecord registers or updates a bank of this region (admin)
// and returns its ledger record.
func (c *Client) RegisterBankRecord(ctx context.Context, b credit.BankMember) (*credit.BankMember, error) {
	var out credit.BankMember
	if err := c.admin(ctx, "POST", "/v1/banks", b, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RotateBankKey changes the key of an active bank of this region (admin)
// and returns its ledger record.
func (c *Client) RotateBankKey(ctx context.Context, id credit.BankID, pub ed25519.PublicKey) (*credit.BankMember, error) {
	var out credit.BankMember
	if err := c.admin(ctx, "POST", "/v1/banks/"+url.PathEscape(string(id))+"/key", BankKeyChange{PubKey: pub}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RetireBank retires a bank of this region (admin) and returns its
// ledger record.
func (c *Client) RetireBank(ctx context.Context, id credit.BankID) (*credit.BankMember, error) {
	var out credit.BankMember
	if err := c.admin(ctx, "POST", "/v1/banks/"+url.PathEscape(string(id))+"/retire", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RegisterAuthority registers an enterprise identity authority of this
// region on the ledger (admin) and returns the ledger's record.
func (c *Client) RegisterAuthority(ctx context.Context, req AuthorityRequest) (*credit.IdentityAuthority, error) {
	var out credit.IdentityAuthority
	if err := c.admin(ctx, "POST", "/v1/authorities", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RetireAuthority retires an identity authority of this region (admin).
func (c *Client) RetireAuthority(ctx context.Context, id string) (*credit.IdentityAuthority, error) {
	var out credit.IdentityAuthority
	if err := c.admin(ctx, "POST", "/v1/authorities/"+url.PathEscape(id)+"/retire", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeCertificate revokes an enterprise certificate issued under one of
// this region's authorities (admin).
func (c *Client) RevokeCertificate(ctx context.Context, req RevocationRequest) (*credit.CertRevocation, error) {
	var out credit.CertRevocation
	if err := c.admin(ctx, "POST", "/v1/revocations", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
