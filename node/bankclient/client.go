// Package bankclient is a bank's client of a ccnode node's bank API: it
// builds and signs queries (credit's canonical encoding and signing tags,
// see credit/SPEC.md), sends them, and verifies what comes back: each
// region's receipt and the home node's ack, and a receipt's inclusion
// proof against the region's signed checkpoint. Refusals come back as
// *Error carrying the code from the closed list in credit/refusal.go.
//
// It imports only package credit and the standard library, so a bank
// links it without the node. It owns the bank API's wire types, which the
// node answers with; it must not hold any decision the node makes.
package bankclient

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
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

// Client is a client of one node's bank API. Build it with New.
type Client struct {
	base  string
	hc    *http.Client
	bank  credit.BankID
	key   ed25519.PrivateKey
	trust *Trust
	now   func() time.Time
	rand  io.Reader
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sends requests with hc (its transport carries the TLS
// configuration, see TLSConfig); the default is http.DefaultClient.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithBank signs queries and receipt reads as bank with key.
func WithBank(bank credit.BankID, key ed25519.PrivateKey) Option {
	return func(c *Client) { c.bank, c.key = bank, key }
}

// WithTrust makes Query, Send and Receipt verify every answer against the
// regions' keys in t before returning it.
func WithTrust(t Trust) Option { return func(c *Client) { c.trust = &t } }

// WithClock sets the clock queries and reads are signed at (tests).
func WithClock(now func() time.Time) Option { return func(c *Client) { c.now = now } }

// WithRand sets the source of nonces (tests).
func WithRand(r io.Reader) Option { return func(c *Client) { c.rand = r } }

// New is a client of the bank API at baseURL, such as
// https://node.example:8440 (no scheme means http://).
func New(baseURL string, opts ...Option) *Client {
	if !strings.Contains(baseURL, "://") {
		baseURL = "http://" + baseURL
	}
	c := &Client{base: strings.TrimRight(baseURL, "/"), hc: http.DefaultClient, now: time.Now, rand: rand.Reader}
	for _, o := range opts {
		o(c)
	}
	return c
}

// QueryRequest is what a bank asks; empty fields default to the consent's.
type QueryRequest struct {
	// Consent is the countersigned consent document the query relies on.
	Consent    *credit.ConsentGrant
	Subject    credit.USCC
	Categories []credit.Category
	Purpose    credit.Purpose
}

// NonceBytes is how many random bytes a nonce carries: "n-" and 24 hex
// digits, inside credit.ValidateID's alphabet and length.
const NonceBytes = 12

// NewQuery builds and signs a query with the client's bank key, at the
// client's clock, with a fresh random nonce.
func (c *Client) NewQuery(r QueryRequest) (*credit.Query, error) {
	if c.key == nil {
		return nil, errors.New("bankclient: no bank key (WithBank)")
	}
	if r.Consent == nil {
		return nil, errors.New("bankclient: a query needs its consent document")
	}
	g := r.Consent
	q := &credit.Query{Version: 1, Bank: c.bank, Subject: g.Subject, Categories: g.Categories, Purpose: g.Purpose,
		ConsentID: g.ID, Consent: g, Time: c.now().UTC()}
	if r.Subject != "" {
		q.Subject = r.Subject
	}
	if len(r.Categories) > 0 {
		q.Categories = r.Categories
	}
	if r.Purpose != "" {
		q.Purpose = r.Purpose
	}
	nb := make([]byte, NonceBytes)
	if _, err := io.ReadFull(c.rand, nb); err != nil {
		return nil, fmt.Errorf("bankclient: nonce: %w", err)
	}
	q.Nonce = "n-" + hex.EncodeToString(nb)
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("bankclient: query: %w", err)
	}
	if err := q.Sign(c.key); err != nil {
		return nil, fmt.Errorf("bankclient: sign query: %w", err)
	}
	return q, nil
}

// Query builds, signs and sends a query; with WithTrust the answer is
// verified before it is returned.
func (c *Client) Query(ctx context.Context, r QueryRequest) (*credit.Query, *Consolidated, error) {
	q, err := c.NewQuery(r)
	if err != nil {
		return nil, nil, err
	}
	res, err := c.Send(ctx, q)
	return q, res, err
}

// Send submits a signed query (POST /v1/query); with WithTrust the answer
// is verified before it is returned.
func (c *Client) Send(ctx context.Context, q *credit.Query) (*Consolidated, error) {
	var out Consolidated
	if err := c.Do(ctx, "POST", "/v1/query", nil, q, &out); err != nil {
		return nil, err
	}
	if c.trust != nil {
		if err := c.trust.VerifyAnswer(q, &out); err != nil {
			return &out, err
		}
	}
	return &out, nil
}

// SendHTML submits a signed query and returns the node's printable page
// of the answer (Accept: text/html); lang is "zh" (the default) or "en".
func (c *Client) SendHTML(ctx context.Context, q *credit.Query, lang string) ([]byte, error) {
	h := http.Header{"Accept": {"text/html"}}
	if lang != "" {
		h.Set("Accept-Language", lang)
	}
	return c.exchange(ctx, "POST", "/v1/query", h, q)
}

// Receipt fetches a receipt of the bank's own query with its inclusion
// proof (GET /v1/receipts/{id}), the read signed with the bank's key at
// the client's clock; with WithTrust the proof is verified.
func (c *Client) Receipt(ctx context.Context, id string) (*ReceiptProof, error) {
	if c.key == nil {
		return nil, errors.New("bankclient: no bank key (WithBank)")
	}
	rr := credit.ReceiptRead{Version: 1, Bank: c.bank, ReceiptID: id, Time: c.now().UTC()}
	if err := rr.Sign(c.key); err != nil {
		return nil, err
	}
	var out ReceiptProof
	if err := c.Do(ctx, "GET", "/v1/receipts/"+url.PathEscape(id), receiptReadHeader(&rr), nil, &out); err != nil {
		return nil, err
	}
	if c.trust != nil {
		if err := c.trust.VerifyProof(&out); err != nil {
			return &out, err
		}
	}
	return &out, nil
}

// ConsentStatus reads a consent's commitment and status.
func (c *Client) ConsentStatus(ctx context.Context, id string) (*ConsentResponse, error) {
	var out ConsentResponse
	if err := c.Do(ctx, "GET", "/v1/consents/"+url.PathEscape(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Checkpoint reads the node's latest anchored checkpoint.
func (c *Client) Checkpoint(ctx context.Context) (*credit.AnchoredCheckpoint, error) {
	var out credit.AnchoredCheckpoint
	if err := c.Do(ctx, "GET", "/v1/checkpoint", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Consistency reads a consistency proof between two of the region's
// anchored checkpoints (sizes from and to).
func (c *Client) Consistency(ctx context.Context, from, to uint64) (*ConsistencyProof, error) {
	var out ConsistencyProof
	path := "/v1/proofs/consistency?from=" + strconv.FormatUint(from, 10) + "&to=" + strconv.FormatUint(to, 10)
	if err := c.Do(ctx, "GET", path, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Do is one JSON exchange with the node: in (when not nil) as the JSON
// body, hdr added to the request, a 2xx answer decoded into out (when not
// nil), any other answer returned as *Error. Package node's operator
// client makes its admin calls through it.
func (c *Client) Do(ctx context.Context, method, path string, hdr http.Header, in, out any) error {
	b, err := c.exchange(ctx, method, path, hdr, in)
	if err != nil {
		return err
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode response: %w", method, path, err)
		}
	}
	return nil
}

func (c *Client) exchange(ctx context.Context, method, path string, hdr http.Header, in any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	// A TLS listener answers a plain HTTP request 400 and resets the
	// connection while a body is still coming: say what to do.
	hint := func(err error) error {
		if strings.HasPrefix(c.base, "http://") && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)) {
			return fmt.Errorf("%w (if the node serves TLS, http.tls_cert_file, use https://)", err)
		}
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, hint(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, hint(err)
	}
	if resp.StatusCode >= 300 {
		return nil, NewError(resp.StatusCode, b)
	}
	return b, nil
}
