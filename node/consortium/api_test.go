package consortium

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network/ledgerfault"
	"github.com/prdcredit/ccnode/node"
)

type apiClient struct {
	t      *testing.T
	base   string
	hc     *http.Client
	router routers.Router
	// cover, when set, notes each documented operation answered and its
	// status, under listener's name.
	cover    *coverage
	listener string
}

// htmlDecoder: kin-openapi decodes text/plain bodies only; the report
// page (text/html) and streamed answers (application/x-ndjson), schema
// string, are checked the same way.
var htmlDecoder sync.Once

// newAPIClient calls the API at base (a URL) with hc.
func newAPIClient(t *testing.T, hc *http.Client, base string) *apiClient {
	t.Helper()
	htmlDecoder.Do(func() {
		openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
		openapi3filter.RegisterBodyDecoder("application/x-ndjson", openapi3filter.PlainBodyDecoder)
	})
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(node.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not valid OpenAPI 3: %v", err)
	}
	r, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &apiClient{t: t, base: base, hc: hc, router: r}
}

// do sends a request and validates the real response against the OpenAPI
// document; it returns the status and body.
func (c *apiClient) do(method, path, token string, body any) (int, []byte) {
	c.t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return c.doH(method, path, h, body)
}

// doH is do with the request's headers given.
func (c *apiClient) doH(method, path string, hdr http.Header, body any) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	var raw []byte
	if body != nil {
		if b, ok := body.([]byte); ok {
			raw = b
		} else {
			raw, _ = json.Marshal(body)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)

	vreq, _ := http.NewRequest(method, c.base+path, bytes.NewReader(raw))
	vreq.Header = req.Header.Clone()
	route, params, err := c.router.FindRoute(vreq)
	if err != nil {
		c.t.Fatalf("%s %s: not in openapi.yaml: %v", method, path, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(out)),
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		c.t.Fatalf("%s %s → %d does not match openapi.yaml: %v\n%s", method, path, resp.StatusCode, err, out)
	}
	if resp.StatusCode < 300 {
		// A request the node accepted must be one the document allows.
		vreq.Body = io.NopCloser(bytes.NewReader(raw))
		if err := openapi3filter.ValidateRequest(context.Background(), in.RequestValidationInput); err != nil {
			c.t.Fatalf("%s %s: the request the node accepted does not match openapi.yaml: %v", method, path, err)
		}
	}
	if c.cover != nil {
		c.cover.note(c.listener, method, route.Path, resp.StatusCode)
	}
	return resp.StatusCode, out
}

func TestBankAPIMatchesOpenAPI(t *testing.T) {
	ctx := context.Background()
	faults := ledgerfault.New()
	c, err := Start(ctx, Options{Logger: testkit.LoggerAt(t, slog.LevelWarn), Mocknet: true, WrapLedger: faults.Wrap, Tune: func(cfg *node.Config) {
		fastTune(cfg)
		cfg.HTTP.MaxBodyBytes = 64 << 10
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sz := c.Region("440300")
	mustPut(t, sz, rec(t, testkit.USCC(t, "440300", 3), credit.Tax, 1))
	api := newAPIClient(t, c.HTTPClient(), sz.Node.HTTPURL())
	adm := newAPIClient(t, c.HTTPClient(), "http://"+sz.Node.AdminAddr())
	if !strings.HasPrefix(api.base, "https://") {
		t.Fatalf("the consortium's bank API is %s, want TLS", api.base)
	}
	tok := c.OperatorToken
	bank := c.Banks[0]
	ent := certified(t, c, testkit.USCC(t, "440300", 3))
	grant, _ := ent.Grant(bank.ID, sz.ID, []credit.Category{credit.Tax}, credit.PurposeCreditReview, time.Now(), time.Hour)

	code := func(b []byte) string {
		var e node.APIError
		json.Unmarshal(b, &e)
		return e.Code
	}
	if st, b := adm.do("POST", "/v1/consents", "", grant); st != 401 || code(b) != string(credit.CodeUnauthorized) {
		t.Fatalf("consent without operator token: %d %s", st, b)
	}
	// The bank API serves no admin operation, token or not.
	if st, b := api.do("POST", "/v1/consents", tok, grant); st != 404 || code(b) != string(credit.CodeNotFound) {
		t.Fatalf("consent on the bank API: %d %s", st, b)
	}
	st, b := adm.do("POST", "/v1/consents", tok, grant)
	if st != 201 {
		t.Fatalf("record consent: %d %s", st, b)
	}
	var cr node.ConsentResponse
	if err := json.Unmarshal(b, &cr); err != nil || cr.Consent == nil || len(cr.Consent.RegionSig) == 0 {
		t.Fatalf("countersigned consent: %v %s", err, b)
	}
	if st, b := api.do("GET", "/v1/consents/"+grant.ID, "", nil); st != 200 || !strings.Contains(string(b), `"active"`) {
		t.Fatalf("consent status: %d %s", st, b)
	}
	if st, _ := api.do("GET", "/v1/consents/consent-missing", "", nil); st != 404 {
		t.Fatalf("missing consent: %d", st)
	}

	q, _ := bank.Query(ent.USCC, []credit.Category{credit.Tax}, credit.PurposeCreditReview, cr.Consent, time.Now())
	st, b = api.do("POST", "/v1/query", "", q)
	if st != 200 {
		t.Fatalf("query: %d %s", st, b)
	}
	var res node.Consolidated
	json.Unmarshal(b, &res)
	if res.RecordCount != 1 {
		t.Fatalf("query result: %s", b)
	}
	var rid string
	for _, r := range res.Regions {
		if r.Region == sz.ID {
			rid = r.Receipt.ID
		}
	}
	if st, b := api.do("POST", "/v1/query", "", q); st != 401 || code(b) != string(credit.CodeReplayedNonce) {
		t.Fatalf("replay: %d %s", st, b)
	}
	forged := q
	forged.Nonce, forged.Sig = "n-another-nonce", q.Sig
	if st, b := api.do("POST", "/v1/query", "", forged); st != 401 || code(b) != string(credit.CodeBadSignature) {
		t.Fatalf("forged: %d %s", st, b)
	}
	if st, b := api.do("POST", "/v1/query", "", []byte(`{"v":1,`)); st != 400 || code(b) != string(credit.CodeInvalidQuery) {
		t.Fatalf("malformed: %d %s", st, b)
	}
	if st, b := api.do("POST", "/v1/query", "", bytes.Repeat([]byte(" "), 70<<10)); st != 413 || code(b) != string(credit.CodeTooLarge) {
		t.Fatalf("oversized: %d %s", st, b)
	}

	if st, _ := api.do("GET", "/v1/checkpoint", "", nil); st != 404 {
		t.Fatalf("checkpoint before anchoring: %d", st)
	}
	if st, b := api.do("GET", "/v1/receipts/"+rid, "", nil); st != 401 || code(b) != string(credit.CodeUnauthorized) {
		t.Fatalf("unsigned receipt read: %d %s", st, b)
	}
	if st, b := api.doH("GET", "/v1/receipts/"+rid, signedRead(t, bank, rid), nil); st != 200 || !strings.Contains(string(b), `"checkpoint":null`) {
		t.Fatalf("receipt before anchoring: %d %s", st, b)
	}
	if err := sz.Node.AnchorNow(ctx); err != nil {
		t.Fatal(err)
	}
	if st, b := api.do("GET", "/v1/checkpoint", "", nil); st != 200 {
		t.Fatalf("checkpoint: %d %s", st, b)
	}
	if st, b := api.doH("GET", "/v1/receipts/"+rid, signedRead(t, bank, rid), nil); st != 200 || strings.Contains(string(b), `"checkpoint":null`) {
		t.Fatalf("receipt after anchoring: %d %s", st, b)
	}
	if st, b := adm.do("GET", "/v1/receipts/"+rid, tok, nil); st != 200 || strings.Contains(string(b), `"checkpoint":null`) {
		t.Fatalf("receipt read by an operator: %d %s", st, b)
	}
	if st, _ := api.doH("GET", "/v1/receipts/nope-nope-nope", signedRead(t, bank, "nope-nope-nope"), nil); st != 404 {
		t.Fatalf("missing receipt: %d", st)
	}
	if st, b := api.do("POST", "/v1/consents/"+grant.ID+"/revoke", tok, nil); st != 404 || code(b) != string(credit.CodeNotFound) {
		t.Fatalf("revoke on the bank API: %d %s", st, b)
	}
	if st, b := adm.do("POST", "/v1/consents/"+grant.ID+"/revoke", tok, nil); st != 200 || !strings.Contains(string(b), `"revoked"`) {
		t.Fatalf("revoke: %d %s", st, b)
	}
	newBank := credit.BankMember{ID: "bank-sz-new", Name: "New Bank", PubKey: bank.Key.Public().(ed25519.PublicKey)}
	if st, _ := adm.do("POST", "/v1/banks", "", newBank); st != 401 {
		t.Fatalf("bank registration without token: %d", st)
	}
	if st, b := api.do("POST", "/v1/banks", tok, newBank); st != 404 || code(b) != string(credit.CodeNotFound) {
		t.Fatalf("bank registration on the bank API: %d %s", st, b)
	}
	if st, b := adm.do("POST", "/v1/banks", tok, newBank); st != 200 || !strings.Contains(string(b), `"region":"440300"`) {
		t.Fatalf("bank registration: %d %s", st, b)
	}
	if st, _ := api.do("GET", "/healthz", "", nil); st != 200 {
		t.Fatal("healthz")
	}
	if st, _ := api.do("GET", "/readyz", "", nil); st != 200 {
		t.Fatal("readyz")
	}
	st, b = api.do("GET", "/metrics", "", nil)
	for _, m := range []string{"ccnode_queries_total", "ccnode_denials_total", "ccnode_query_seconds", "ccnode_receipts_total",
		"ccnode_anchor_lag_seconds", "ccnode_ledger_view_age_seconds", "ccnode_peers_connected"} {
		if st != 200 || !strings.Contains(string(b), m) {
			t.Fatalf("metrics lack %s", m)
		}
	}
	faults.SetDown(true)
	poll(t, "unready", func() bool { return sz.Node.Ready() != nil })
	if st, b := api.do("GET", "/readyz", "", nil); st != 503 || !strings.Contains(string(b), string(credit.CodeLedgerViewStale)) {
		t.Fatalf("readyz with stale ledger: %d %s", st, b)
	}
	if st, _ := api.do("POST", "/v1/query", "", q); st != 503 {
		t.Fatalf("query with stale ledger: %d", st)
	}
}

// signedRead is the headers of bank's signed read of receipt id, now.
func signedRead(t *testing.T, bank *Bank, id string) http.Header {
	t.Helper()
	rr := credit.ReceiptRead{Version: 1, Bank: bank.ID, ReceiptID: id, Time: time.Now()}
	if err := rr.Sign(bank.Key); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "/", nil)
	node.SetReceiptReadHeaders(req, &rr)
	return req.Header
}
