package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prdcredit/ccnode/node/bankclient"
)

// Admin calls whose request or answer is a stream: imports, receipt
// exports and ledger snapshots of a running node.

// OpenAdminStream sends an admin call with body (nil for none) and
// returns the response once its status is 2xx; the caller reads and
// closes its body. Another status is returned as a *StatusError.
func (c *Client) OpenAdminStream(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	base := c.Admin
	if base == "" {
		return nil, fmt.Errorf("%s %s: no admin API address (Client.Admin)", method, path)
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.OperatorToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, bankclient.NewError(resp.StatusCode, b)
	}
	return resp, nil
}

// copyStream copies a streamed answer to w and fails if the node said in
// its trailer that the stream is incomplete.
func copyStream(resp *http.Response, w io.Writer) error {
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("reading the node's answer: %w", err)
	}
	if msg := resp.Trailer.Get(TrailerError); msg != "" {
		return fmt.Errorf("the node stopped part way: %s", msg)
	}
	return nil
}

// ExportReceipts writes the running node's receipt export (kind answered
// from leaf from, or received) to w, as `ccnode receipts export` does
// offline (admin).
func (c *Client) ExportReceipts(ctx context.Context, kind string, from uint64, w io.Writer) error {
	q := url.Values{"kind": {kind}, "from": {strconv.FormatUint(from, 10)}}
	resp, err := c.OpenAdminStream(ctx, http.MethodGet, "/v1/receipts/export?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	return copyStream(resp, w)
}

// LedgerSnapshot writes an audit snapshot of the ledger, taken by the
// running node through its ledger client, to w (admin).
func (c *Client) LedgerSnapshot(ctx context.Context, quiet, timeout time.Duration, w io.Writer) error {
	q := url.Values{"quiet": {quiet.String()}, "timeout": {timeout.String()}}
	resp, err := c.OpenAdminStream(ctx, http.MethodGet, "/v1/ledger/snapshot?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	return copyStream(resp, w)
}

// ImportProgress reads where a resumable input's import stands in the
// running node's store (admin).
func (c *Client) ImportProgress(ctx context.Context, input string) (*ImportProgress, error) {
	var out ImportProgress
	if err := c.admin(ctx, http.MethodGet, "/v1/imports/progress?"+url.Values{"input": {input}}.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Imports lists the running node's imports in progress (admin).
func (c *Client) Imports(ctx context.Context) ([]ImportStatus, error) {
	var out []ImportStatus
	if err := c.admin(ctx, http.MethodGet, "/v1/imports", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// ErrImportCut: the node's answer to an import ended before its outcome
// (the connection was lost or the node stopped). Committed batches stay;
// the same import sent again resumes after them.
var ErrImportCut = errors.New("the node's answer ended before the import's outcome")

// Import streams body to the running node as one input (POST /v1/imports
// with params, see handleImport) and calls onEvent for every rejected
// line and progress line of the answer, in order. It returns the outcome.
func (c *Client) Import(ctx context.Context, params url.Values, body io.Reader, onEvent func(ImportEvent) error) (*ImportResult, error) {
	resp, err := c.OpenAdminStream(ctx, http.MethodPost, "/v1/imports?"+params.Encode(), body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var ev ImportEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("import: the node's answer: %w", err)
		}
		if ev.Done != nil {
			return ev.Done, nil
		}
		if err := onEvent(ev); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrImportCut, err)
	}
	return nil, ErrImportCut
}
