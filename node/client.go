package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// Client is a client of a node: of its bank API for banks (Query,
// Receipt) and of its admin API for an operator (consents, banks,
// OperatorReceipt, with the operator's token).
type Client struct {
	// Base is the bank API's URL, such as http://127.0.0.1:8440.
	Base string
	// Admin is the admin API's URL, such as http://127.0.0.1:9440.
	Admin string
	// OperatorToken is the operator's token for admin calls.
	OperatorToken string
	HTTP          *http.Client
}

// StatusError is an error response of the API.
type StatusError struct {
	Status int
	APIError
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// Reason returns the refusal code an error response carries.
func (e *StatusError) Reason() credit.Code { return credit.Code(e.Code) }

// do calls the bank API, or the admin API with the operator's token when
// admin is set; sign, when set, adds a bank's signed headers.
func (c *Client) do(ctx context.Context, method, path string, admin bool, in, out any) error {
	return c.call(ctx, method, path, admin, nil, in, out)
}

func (c *Client) call(ctx context.Context, method, path string, admin bool, sign func(*http.Request), in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	base := c.Base
	if admin {
		if base = c.Admin; base == "" {
			return fmt.Errorf("%s %s: no admin API address (Client.Admin)", method, path)
		}
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if admin {
		req.Header.Set("Authorization", "Bearer "+c.OperatorToken)
	}
	if sign != nil {
		sign(req)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	// A TLS listener answers a plain HTTP request 400 and resets the
	// connection while a body is still coming: say what to do.
	hint := func(err error) error {
		if strings.HasPrefix(base, "http://") && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)) {
			return fmt.Errorf("%w (if the node serves TLS, http.tls_cert_file, use https://)", err)
		}
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return hint(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return hint(err)
	}
	if resp.StatusCode >= 300 {
		se := &StatusError{Status: resp.StatusCode}
		if json.Unmarshal(b, &se.APIError) != nil || se.Code == "" {
			se.Code, se.Message = "http_"+resp.Status, strings.TrimSpace(string(b))
		}
		return se
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode response: %w", method, path, err)
		}
	}
	return nil
}

// Query submits a signed query.
func (c *Client) Query(ctx context.Context, q *credit.Query) (*Consolidated, error) {
	var out Consolidated
	if err := c.do(ctx, "POST", "/v1/query", false, q, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Receipt fetches, as bank, a receipt of the bank's own query with its
// inclusion proof: the read is signed with the bank's key at the current
// time and names the receipt.
func (c *Client) Receipt(ctx context.Context, bank credit.BankID, key ed25519.PrivateKey, id string) (*ReceiptProof, error) {
	rr := credit.ReceiptRead{Version: 1, Bank: bank, ReceiptID: id, Time: time.Now().UTC()}
	if err := rr.Sign(key); err != nil {
		return nil, err
	}
	var out ReceiptProof
	sign := func(req *http.Request) { SetReceiptReadHeaders(req, &rr) }
	if err := c.call(ctx, "GET", "/v1/receipts/"+url.PathEscape(id), false, sign, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// OperatorReceipt fetches any receipt of the node's log with its
// inclusion proof (admin).
func (c *Client) OperatorReceipt(ctx context.Context, id string) (*ReceiptProof, error) {
	var out ReceiptProof
	if err := c.do(ctx, "GET", "/v1/receipts/"+url.PathEscape(id), true, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RecordConsent records an enterprise-signed grant (admin).
func (c *Client) RecordConsent(ctx context.Context, g credit.ConsentGrant) (*ConsentResponse, error) {
	var out ConsentResponse
	if err := c.do(ctx, "POST", "/v1/consents", true, g, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeConsent revokes a consent (admin).
func (c *Client) RevokeConsent(ctx context.Context, id string) (*ConsentResponse, error) {
	var out ConsentResponse
	if err := c.do(ctx, "POST", "/v1/consents/"+url.PathEscape(id)+"/revoke", true, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ConsentStatus reads a consent's status.
func (c *Client) ConsentStatus(ctx context.Context, id string) (*ConsentResponse, error) {
	var out ConsentResponse
	if err := c.do(ctx, "GET", "/v1/consents/"+url.PathEscape(id), false, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// VerifyStore has the node check every table and value of its store
// (admin).
func (c *Client) VerifyStore(ctx context.Context) (*VerifyReport, error) {
	var out VerifyReport
	if err := c.do(ctx, "POST", "/v1/verify", true, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Checkpoint reads the node's latest anchored checkpoint.
func (c *Client) Checkpoint(ctx context.Context) (*credit.AnchoredCheckpoint, error) {
	var out credit.AnchoredCheckpoint
	if err := c.do(ctx, "GET", "/v1/checkpoint", false, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Consistency reads a consistency proof between two of the region's
// anchored checkpoints (sizes from and to).
func (c *Client) Consistency(ctx context.Context, from, to uint64) (*ConsistencyProof, error) {
	var out ConsistencyProof
	path := "/v1/proofs/consistency?from=" + strconv.FormatUint(from, 10) + "&to=" + strconv.FormatUint(to, 10)
	if err := c.do(ctx, "GET", path, false, nil, &out); err != nil {
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
	if err := c.do(ctx, "POST", "/v1/banks", true, b, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RetireBank retires a bank of this region (admin) and returns its
// ledger record.
func (c *Client) RetireBank(ctx context.Context, id credit.BankID) (*credit.BankMember, error) {
	var out credit.BankMember
	if err := c.do(ctx, "POST", "/v1/banks/"+url.PathEscape(string(id))+"/retire", true, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RegisterAuthority registers an enterprise identity authority of this
// region on the ledger (admin) and returns the ledger's record.
func (c *Client) RegisterAuthority(ctx context.Context, req AuthorityRequest) (*credit.IdentityAuthority, error) {
	var out credit.IdentityAuthority
	if err := c.do(ctx, "POST", "/v1/authorities", true, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RetireAuthority retires an identity authority of this region (admin).
func (c *Client) RetireAuthority(ctx context.Context, id string) (*credit.IdentityAuthority, error) {
	var out credit.IdentityAuthority
	if err := c.do(ctx, "POST", "/v1/authorities/"+url.PathEscape(id)+"/retire", true, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeCertificate revokes an enterprise certificate issued under one of
// this region's authorities (admin).
func (c *Client) RevokeCertificate(ctx context.Context, req RevocationRequest) (*credit.CertRevocation, error) {
	var out credit.CertRevocation
	if err := c.do(ctx, "POST", "/v1/revocations", true, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
