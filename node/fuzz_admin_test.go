package node_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/prdcredit/ccnode/node"
)

// FuzzAdminEndpoints feeds arbitrary bodies and path ids to the admin
// API (consent recording and revocation, bank registration and receipt
// reads, behind an operator's token, which an operator's tooling or a
// stolen token could misuse) and to the bank API's receipt and consent
// lookups. Nothing may crash the node or earn a 5xx other than 503, and
// every refusal is a JSON error with a code.
func FuzzAdminEndpoints(f *testing.F) {
	f.Add(uint8(0), "", []byte(`{"v":1,"id":"consent-01","uscc":"91440300MA0000001L","grantee":"bank-a","categories":["tax"],"purpose":"loan_application","valid_from":"2026-01-01T00:00:00Z","valid_until":"2027-01-01T00:00:00Z","region":"440300","enterprise_key":"AAAA"}`))
	f.Add(uint8(1), "consent-01", []byte(nil))
	f.Add(uint8(2), "", []byte(`{"id":"bank-b","pub_key":"AAE=","status":"retired"}`))
	f.Add(uint8(3), "r-00", []byte(nil))
	f.Add(uint8(4), "r-00", []byte("2026-01-01T00:00:00Z"))
	f.Add(uint8(5), "..%2f", []byte(nil))
	f.Add(uint8(2), "", []byte(`{"id":"","region":"999999"}`))
	c := fuzzConsortium(f)
	n := c.Regions[0].Node
	bank, admin := n.Handler(), n.AdminHandler()
	f.Fuzz(func(t *testing.T, which uint8, id string, body []byte) {
		var req *http.Request
		h := admin
		escaped := url.PathEscape(id)
		switch which % 6 {
		case 0:
			req = httptest.NewRequest(http.MethodPost, "/v1/consents", bytes.NewReader(body))
		case 1:
			req = httptest.NewRequest(http.MethodPost, "/v1/consents/"+escaped+"/revoke", bytes.NewReader(body))
		case 2:
			req = httptest.NewRequest(http.MethodPost, "/v1/banks", bytes.NewReader(body))
		case 3:
			req = httptest.NewRequest(http.MethodGet, "/v1/receipts/"+escaped, nil)
		case 4:
			req, h = httptest.NewRequest(http.MethodGet, "/v1/receipts/"+escaped, nil), bank
			req.Header.Set(node.HeaderBank, "bank-a")
			req.Header.Set(node.HeaderTime, string(body))
			req.Header.Set(node.HeaderSignature, "AAAA")
		default:
			req, h = httptest.NewRequest(http.MethodGet, "/v1/consents/"+escaped, nil), bank
		}
		req.Header.Set("Authorization", "Bearer "+c.OperatorToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s: status %d for %q: %s", req.Method, req.URL, rec.Code, body, rec.Body)
		}
		if rec.Code < 300 {
			return
		}
		if rec.Header().Get("Content-Type") != "application/json" {
			// Only the router itself answers in plain text: a path that
			// matches no route (404, 405) or is not clean (redirect).
			if rec.Code < 400 || rec.Code == http.StatusNotFound || rec.Code == http.StatusMethodNotAllowed {
				return
			}
			t.Fatalf("%s %s: status %d with a %q body: %q", req.Method, req.URL, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
		var e node.APIError
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" {
			t.Fatalf("%s %s: error body %q: %v", req.Method, req.URL, rec.Body, err)
		}
	})
}
