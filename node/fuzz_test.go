package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/consortium"
)

// fuzzNode is one started region, the production node on an in-memory
// ledger, store and mocknet host.
func fuzzNode(t testing.TB) *node.Node { return fuzzConsortium(t).Regions[0].Node }

// fuzzConsortium is fuzzNode's consortium, for its operator's token.
func fuzzConsortium(t testing.TB) *consortium.Consortium {
	t.Helper()
	c, err := consortium.Start(context.Background(), consortium.Options{
		Regions: consortium.PRD3()[:1], Banks: []consortium.BankSpec{{ID: "bank-a", Name: "A", Region: "440300"}}, Mocknet: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// FuzzQueryEndpoint feeds arbitrary bodies to the bank API's query
// endpoint: a bank's bytes must never crash the node or earn a 5xx, and
// every refusal is a JSON error with a code.
func FuzzQueryEndpoint(f *testing.F) {
	f.Add([]byte(`{"v":1,"bank":"bank-a","uscc":"91440300MA0000001L","categories":["tax"],"purpose":"loan_application","consent_id":"consent-01","nonce":"nonce-0001","time":"2026-01-01T00:00:00Z","sig":"AAAA"}`))
	f.Add([]byte(`{"v":1,"consent":{"v":1,"categories":null}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Add([]byte(`{"v":1,"bank":"bank-a","extra":1}`))
	n := fuzzNode(f)
	h := n.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/query", bytes.NewReader(body)))
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code != http.StatusOK {
			var e node.APIError
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" {
				t.Fatalf("error body %q: %v", rec.Body, err)
			}
		}
	})
}
