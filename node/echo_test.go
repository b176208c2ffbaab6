package node_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRefusalsQuoteAShortPrefix: whatever field of a bank's request is
// bad, and however large, the bank API's refusal quotes a short prefix of
// it, not the field: a refusal that echoed whole fields let each hostile
// request cost the node several times its size.
func TestRefusalsQuoteAShortPrefix(t *testing.T) {
	h := fuzzNode(t).Handler()
	big := strings.Repeat("\xff", 512<<10)
	digits := strings.Repeat("9", 512<<10)
	for _, tt := range []struct{ name, method, path, body string }{
		{"bank id", "POST", "/v1/query", `{"v":1,"bank":"` + big + `"}`},
		{"unknown field", "POST", "/v1/query", `{"` + big + `":1}`},
		{"number", "POST", "/v1/query", `{"v":` + digits + `}`},
		{"time", "POST", "/v1/query", `{"time":"` + digits + `"}`},
		{"subject", "POST", "/v1/query", `{"v":1,"bank":"bank-a","uscc":"` + big + `"}`},
		{"purpose", "POST", "/v1/query", `{"v":1,"bank":"bank-a","uscc":"91440300MA0000001L","categories":["tax"],"purpose":"` + big + `"}`},
		{"category", "POST", "/v1/query", `{"v":1,"bank":"bank-a","uscc":"91440300MA0000001L","categories":["` + big + `"]}`},
		{"consent id in the path", "GET", "/v1/consents/" + strings.Repeat("c", 64<<10), ""},
		{"receipt id in the path", "GET", "/v1/receipts/" + strings.Repeat("r", 64<<10), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, bytes.NewReader([]byte(tt.body))))
			if rec.Code < 400 || rec.Code >= 500 || rec.Body.Len() > 2<<10 {
				t.Fatalf("HTTP %d, %d bytes: %.300s", rec.Code, rec.Body.Len(), rec.Body)
			}
			// A path may be refused before it is read (401 for a read that
			// needs authentication); a body's bad field is a 400.
			if tt.method == "POST" && rec.Code != http.StatusBadRequest {
				t.Fatalf("HTTP %d, want 400: %s", rec.Code, rec.Body)
			}
		})
	}
}
