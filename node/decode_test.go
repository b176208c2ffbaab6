package node

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
)

// sentQuery is a bank's signed query (with its consent) as bankclient
// sends it: encoding/json's bytes.
func sentQuery(t testing.TB) []byte {
	u := testkit.USCC(t, "440300", 1)
	now := time.Date(2026, 12, 6, 8, 0, 0, 123456789, time.UTC)
	q := credit.Query{Version: 1, Bank: "bank-a", Subject: u, Categories: []credit.Category{credit.Tax, credit.Judicial},
		Purpose: "credit_review", ConsentID: "c-1", Nonce: "n-1", Time: now, Sig: []byte{1, 2, 3},
		Consent: &credit.ConsentGrant{Version: 2, ID: "c-1", Subject: u, Grantee: "bank-a", Categories: []credit.Category{credit.Tax},
			Purpose: "credit_review", ValidFrom: now, ValidUntil: now.Add(time.Hour), Region: "440300", SignedAt: now,
			EnterpriseCert: [][]byte{{4, 5}}, EnterpriseSig: []byte{6}, RegionSig: []byte{7}}}
	sent, err := json.Marshal(q)
	if err != nil {
		t.Fatal(err)
	}
	return sent
}

// BenchmarkDecodeQuery: a bank's query body read by the bank API
// (decodeQuery) and by the generic decode it used before.
func BenchmarkDecodeQuery(b *testing.B) {
	sent := sentQuery(b)
	for _, c := range []struct {
		name string
		fn   func(*http.Request, *credit.Query) error
	}{
		{"decodeQuery", decodeQuery},
		{"encoding-json", func(r *http.Request, q *credit.Query) error { return decode(r, q) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var q credit.Query
				if err := c.fn(httptest.NewRequest("POST", "/v1/query", bytes.NewReader(sent)), &q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDecodeQuery: a bank's query as bankclient sends it (encoding/json's
// bytes, which the one-pass decoder reads) and the same query laid out
// otherwise both decode to what encoding/json gives; an unknown field is
// still refused.
func TestDecodeQuery(t *testing.T) {
	sent := sentQuery(t)
	if _, ok := credit.DecodeCanonicalQuery(sent); !ok {
		t.Fatalf("bankclient's encoding is not read in one pass:\n%s", sent)
	}
	var spaced bytes.Buffer
	if err := json.Indent(&spaced, sent, "", "  "); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"as bankclient sends it": sent, "indented": spaced.Bytes()} {
		t.Run(name, func(t *testing.T) {
			var got, want credit.Query
			if err := decodeQuery(httptest.NewRequest("POST", "/v1/query", bytes.NewReader(body)), &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(body, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded %+v\nencoding/json %+v", got, want)
			}
		})
	}
	unknown := append(bytes.TrimSuffix(sent, []byte("}")), `,"extra":1}`...)
	var got credit.Query
	if err := decodeQuery(httptest.NewRequest("POST", "/v1/query", bytes.NewReader(unknown)), &got); credit.RefusalOf(err) == nil {
		t.Fatalf("a query with an unknown field: %v, want a refusal", err)
	}
}
