package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	"github.com/prdcredit/ccnode/credit"
)

// Client is a client of the bank API, for banks (Query, Receipt) and for
// a region's operator (consents, with the admin token).
type Client struct {
	// Base is the node's URL, such as http://127.0.0.1:8440.
	Base       string
	AdminToken string
	HTTP       *http.Client
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

func (c *Client) do(ctx context.Context, method, path string, admin bool, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	base := c.Base
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
		req.Header.Set("Authorization", "Bearer "+c.AdminToken)
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

// Receipt fetches a receipt with its inclusion proof.
func (c *Client) Receipt(ctx context.Context, id string) (*ReceiptProof, error) {
	var out ReceiptProof
	if err := c.do(ctx, "GET", "/v1/receipts/"+url.PathEscape(id), false, nil, &out); err != nil {
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

// Checkpoint reads the node's latest anchored checkpoint.
func (c *Client) Checkpoint(ctx context.Context) (*credit.AnchoredCheckpoint, error) {
	var out credit.AnchoredCheckpoint
	if err := c.do(ctx, "GET", "/v1/checkpoint", false, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RegisterBank registers or updates a bank of this region (admin).
func (c *Client) RegisterBank(ctx context.Context, b credit.BankMember) error {
	return c.do(ctx, "POST", "/v1/banks", true, b, nil)
}
