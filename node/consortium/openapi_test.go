package consortium

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network/ledgerfault"
	"github.com/prdcredit/ccnode/node"
)

// coverage is which documented operations answered, on which listener,
// with which statuses.
type coverage struct {
	mu   sync.Mutex
	seen map[string]map[int]bool // "bank GET /v1/checkpoint" → statuses
}

func (c *coverage) note(listener, method, path string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := listener + " " + method + " " + path
	if c.seen[k] == nil {
		c.seen[k] = map[int]bool{}
	}
	c.seen[k][status] = true
}

// routeLine is a route registration in the node's handlers:
// mux.HandleFunc("GET /v1/checkpoint", ...).
var routeLine = regexp.MustCompile(`mux\.Handle(?:Func)?\("([A-Z]+) (/[^"]*)"`)

// handlerFunc is the start of a method of Node.
var handlerFunc = regexp.MustCompile(`^func \(n \*Node\) ([A-Za-z]+)\(`)

// servedRoutes reads every route the node registers from its source:
// "bank" for Handler's, "admin" for AdminHandler's. A route registered
// anywhere else is returned under that function's name, which the test
// refuses: every route belongs to one listener.
func servedRoutes(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("../*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fn := ""
		for _, line := range strings.Split(string(b), "\n") {
			if m := handlerFunc.FindStringSubmatch(line); m != nil {
				fn = m[1]
			}
			m := routeLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			listener := map[string]string{"Handler": "bank", "AdminHandler": "admin"}[fn]
			if listener == "" {
				listener = filepath.Base(f) + ":" + fn
			}
			out[listener+" "+m[1]+" "+m[2]] = true
		}
	}
	if len(out) < 10 {
		t.Fatalf("found only %d routes in the node's source: is the route pattern stale?", len(out))
	}
	return out
}

// documented lists the document's operations with whether each lists an
// error response; an operation tagged admin is on the admin listener, one
// tagged bank or public on the bank listener.
func documented(t *testing.T) (ops map[string]bool, withErrors map[string]bool) {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(node.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	ops, withErrors = map[string]bool{}, map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if len(op.Tags) == 0 {
				t.Errorf("%s %s has no tag saying which listener serves it (bank, public or admin)", method, path)
			}
			for _, tag := range op.Tags {
				listener := map[string]string{"bank": "bank", "public": "bank", "admin": "admin"}[tag]
				if listener == "" {
					t.Errorf("%s %s: tag %q is not bank, public or admin", method, path, tag)
					continue
				}
				k := listener + " " + method + " " + path
				ops[k] = true
				for code := range op.Responses.Map() {
					if code >= "400" {
						withErrors[k] = true
					}
				}
			}
		}
	}
	return ops, withErrors
}

// TestOpenAPICoversEveryRoute: the document lists exactly the routes the
// node's two handlers register, each on its listener.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	served := servedRoutes(t)
	ops, _ := documented(t)
	for r := range served {
		if !ops[r] {
			t.Errorf("the node serves %s, which node/openapi.yaml does not document", r)
		}
	}
	for op := range ops {
		if !served[op] {
			t.Errorf("node/openapi.yaml documents %s, which the node does not serve", op)
		}
	}
}

// TestEveryEndpointMatchesOpenAPI drives every route of both listeners of
// a real node (node.New behind consortium.Start, TLS on the bank API) to
// a success and, where the document lists errors, an error, and holds
// every real response (and every request the node accepted) to
// node/openapi.yaml under OpenAPI 3.1's JSON Schema rules: a receipt's
// null checkpoint, a text/html report, a checkpoint's text/plain note,
// metrics and the admin calls included.
func TestEveryEndpointMatchesOpenAPI(t *testing.T) {
	ctx := context.Background()
	faults := ledgerfault.New()
	// TCP hosts, not the mocknet: a candidate region joins on the way.
	c, err := Start(ctx, Options{Logger: testkit.LoggerAt(t, slog.LevelError), WrapLedger: faults.Wrap, Tune: func(cfg *node.Config) {
		fastTune(cfg)
		cfg.HTTP.MaxBodyBytes = 64 << 10
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cover := &coverage{seen: map[string]map[int]bool{}}
	sz := c.Region("440300")
	api := newAPIClient(t, c.HTTPClient(), sz.Node.HTTPURL())
	adm := newAPIClient(t, c.HTTPClient(), "http://"+sz.Node.AdminAddr())
	api.cover, api.listener = cover, "bank"
	adm.cover, adm.listener = cover, "admin"
	tok, bank := c.OperatorToken, c.Banks[0]
	u := testkit.USCC(t, "440300", 11)
	mustPut(t, sz, rec(t, u, credit.Tax, 1), rec(t, u, credit.Penalty, 2))
	ent := certified(t, c, u)
	grant, _ := ent.Grant(bank.ID, sz.ID, []credit.Category{credit.Tax, credit.Penalty}, credit.PurposeLoanApplication, time.Now(), time.Hour)
	want := func(what string, got, want int, body []byte) {
		t.Helper()
		if got != want {
			t.Fatalf("%s: HTTP %d, want %d: %s", what, got, want, body)
		}
	}

	// Admin: consents.
	st, b := adm.do("POST", "/v1/consents", "", grant)
	want("consent without a token", st, 401, b)
	st, b = adm.do("POST", "/v1/consents", tok, []byte(`{"v":2}`))
	want("an invalid consent", st, 400, b)
	st, b = adm.do("POST", "/v1/consents", tok, grant)
	want("record consent", st, 201, b)
	var cr node.ConsentResponse
	if err := json.Unmarshal(b, &cr); err != nil {
		t.Fatal(err)
	}
	st, b = api.do("GET", "/v1/consents/"+grant.ID, "", nil)
	want("consent status", st, 200, b)
	st, b = api.do("GET", "/v1/consents/consent-missing", "", nil)
	want("a missing consent", st, 404, b)

	// Bank: queries, JSON and the printable page.
	q, _ := bank.Query(u, grant.Categories, grant.Purpose, cr.Consent, time.Now())
	st, b = api.do("POST", "/v1/query", "", q)
	want("query", st, 200, b)
	var res node.Consolidated
	json.Unmarshal(b, &res)
	rid := ""
	for _, r := range res.Regions {
		if r.Region == sz.ID && r.Receipt != nil {
			rid = r.Receipt.ID
		}
	}
	if rid == "" {
		t.Fatalf("no receipt of Shenzhen: %s", b)
	}
	q2, _ := bank.Query(u, grant.Categories, grant.Purpose, cr.Consent, time.Now())
	st, b = api.doH("POST", "/v1/query?lang=en", map[string][]string{"Accept": {"text/html"}}, q2)
	want("query as a page", st, 200, b)
	if rid2, _ := credit.ReceiptID(sz.ID, &q2); !strings.Contains(string(b), "<html") || !strings.Contains(string(b), rid2) {
		t.Fatalf("the page lacks Shenzhen's receipt %s:\n%s", rid2, b)
	}
	st, b = api.do("POST", "/v1/query", "", q)
	want("a replayed query", st, 401, b)
	st, b = api.do("POST", "/v1/query", "", []byte(`{"v":1,`))
	want("a malformed query", st, 400, b)
	st, b = api.do("POST", "/v1/query", "", []byte(strings.Repeat(" ", 70<<10)))
	want("an oversized query", st, 413, b)
	other, _ := ent.Grant(bank.ID, sz.ID, []credit.Category{credit.Tax}, credit.PurposeLoanApplication, time.Now(), time.Hour)
	other.RegionSig = cr.Consent.RegionSig
	q3, _ := bank.Query(u, other.Categories, other.Purpose, &other, time.Now())
	st, b = api.do("POST", "/v1/query", "", q3)
	want("a query under an unrecorded consent", st, 403, b)

	// Receipts: bank reads, operator reads, before and after anchoring.
	st, b = api.do("GET", "/v1/receipts/"+rid, "", nil)
	want("an unsigned receipt read", st, 401, b)
	st, b = api.doH("GET", "/v1/receipts/"+rid, signedRead(t, bank, rid), nil)
	want("a receipt before anchoring", st, 200, b)
	if !strings.Contains(string(b), `"checkpoint":null`) {
		t.Fatalf("a receipt before anchoring has a checkpoint: %s", b)
	}
	st, b = api.doH("GET", "/v1/receipts/nope-nope-nope", signedRead(t, bank, "nope-nope-nope"), nil)
	want("a missing receipt", st, 404, b)
	st, b = api.do("GET", "/v1/checkpoint", "", nil)
	want("a checkpoint before anchoring", st, 404, b)
	if err := sz.Node.AnchorNow(ctx); err != nil {
		t.Fatal(err)
	}
	st, b = api.do("GET", "/v1/checkpoint", "", nil)
	want("checkpoint", st, 200, b)
	var cp credit.AnchoredCheckpoint
	json.Unmarshal(b, &cp)
	st, b = api.doH("GET", "/v1/checkpoint", map[string][]string{"Accept": {"text/plain"}}, nil)
	want("the checkpoint's note", st, 200, b)
	st, b = api.doH("GET", "/v1/receipts/"+rid, signedRead(t, bank, rid), nil)
	want("a receipt after anchoring", st, 200, b)
	st, b = adm.do("GET", "/v1/receipts/"+rid, tok, nil)
	want("an operator's receipt read", st, 200, b)
	st, b = adm.do("GET", "/v1/receipts/nope-nope-nope", tok, nil)
	want("an operator's read of a missing receipt", st, 404, b)
	size := fmt.Sprint(cp.Size)
	st, b = api.do("GET", "/v1/proofs/consistency?from="+size+"&to="+size, "", nil)
	want("consistency proof", st, 200, b)
	st, b = api.do("GET", "/v1/proofs/consistency?from=x&to=1", "", nil)
	want("a consistency proof with a bad size", st, 400, b)
	st, b = api.do("GET", "/v1/proofs/consistency?from=1&to=99999", "", nil)
	want("a consistency proof to a size never anchored", st, 404, b)

	// Admin: revoking, banks, authorities, revocations, store checks.
	st, b = adm.do("POST", "/v1/consents/"+grant.ID+"/revoke", tok, nil)
	want("revoke", st, 200, b)
	st, b = adm.do("POST", "/v1/consents/consent-missing/revoke", tok, nil)
	want("revoke a missing consent", st, 404, b)
	newBank := credit.BankMember{ID: "bank-sz-new", Name: "深圳新银行", PubKey: bank.Key.Public().(ed25519.PublicKey)}
	st, b = adm.do("POST", "/v1/banks", tok, newBank)
	want("register a bank", st, 200, b)
	var bm credit.BankMember
	if json.Unmarshal(b, &bm); bm.UpdatedAt.IsZero() || bm.Region != sz.ID {
		t.Fatalf("the registered bank is not the ledger's record (updated_at, region): %s", b)
	}
	st, b = adm.do("POST", "/v1/banks", tok, credit.BankMember{ID: "Not A Bank Id!"})
	want("register an invalid bank", st, 400, b)
	rotated, _, _ := ed25519.GenerateKey(rand.Reader)
	st, b = adm.do("POST", "/v1/banks/bank-sz-new/key", tok, node.BankKeyChange{PubKey: rotated})
	want("rotate a bank's key", st, 200, b)
	if json.Unmarshal(b, &bm); !bytes.Equal(bm.PubKey, rotated) {
		t.Fatalf("the rotated bank's record: %s", b)
	}
	st, b = adm.do("POST", "/v1/banks/bank-never-registered/key", tok, node.BankKeyChange{PubKey: rotated})
	want("rotate an unknown bank's key", st, 404, b)
	st, b = adm.do("POST", "/v1/banks/bank-sz-new/retire", tok, nil)
	want("retire a bank", st, 200, b)
	if json.Unmarshal(b, &bm); bm.Status != credit.StatusRetired {
		t.Fatalf("the retired bank's record: %s", b)
	}
	st, b = adm.do("POST", "/v1/banks/bank-never-registered/retire", tok, nil)
	want("retire an unknown bank", st, 404, b)
	_, caKey, _ := ed25519.GenerateKey(rand.Reader)
	caDER, err := credit.NewAuthorityCert("深圳市电子营业执照认证中心（测试）", caKey, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	st, b = adm.do("POST", "/v1/authorities", tok, node.AuthorityRequest{Cert: caDER})
	want("register an authority", st, 201, b)
	var ia credit.IdentityAuthority
	json.Unmarshal(b, &ia)
	st, b = adm.do("POST", "/v1/authorities", tok, node.AuthorityRequest{Cert: []byte("not a certificate")})
	want("register a non-certificate", st, 400, b)
	st, b = adm.do("POST", "/v1/authorities/"+ia.ID+"/retire", tok, nil)
	want("retire an authority", st, 200, b)
	st, b = adm.do("POST", "/v1/authorities/"+strings.Repeat("0", 64)+"/retire", tok, nil)
	want("retire an unknown authority", st, 404, b)
	st, b = adm.do("POST", "/v1/revocations", tok, node.RevocationRequest{Cert: ent.Chain})
	want("revoke a certificate", st, 200, b)
	st, b = adm.do("POST", "/v1/revocations", tok, node.RevocationRequest{})
	want("revoke nothing", st, 400, b)
	st, b = adm.do("POST", "/v1/verify", tok, nil)
	want("verify the store", st, 200, b)
	st, b = adm.do("POST", "/v1/verify", "", nil)
	want("verify without a token", st, 401, b)

	// Admin: imports, receipt exports and ledger snapshots, streamed.
	line := fmt.Sprintf(`{"uscc":%q,"source":"dept-tax","source_id":"feed-1","category":"tax","date":"2024-02-03","attrs":{"amount_cny":12.5}}`+"\n", u)
	octet := map[string][]string{"Authorization": {"Bearer " + tok}, "Content-Type": {"application/octet-stream"}}
	st, b = adm.doH("POST", "/v1/imports?name=feed.jsonl&id=feed-openapi-1", octet, []byte(line))
	want("import a feed", st, 200, b)
	st, b = adm.doH("POST", "/v1/imports?name=feed.jsonl&format=xml", octet, []byte(line))
	want("import in an unknown format", st, 400, b)
	st, b = adm.do("GET", "/v1/imports", tok, nil)
	want("imports in progress", st, 200, b)
	st, b = adm.do("GET", "/v1/imports", "", nil)
	want("imports without a token", st, 401, b)
	st, b = adm.do("GET", "/v1/imports/progress?input=feed-openapi-1", tok, nil)
	want("an import's progress", st, 200, b)
	st, b = adm.do("GET", "/v1/imports/progress", tok, nil)
	want("an import's progress without the input", st, 400, b)
	st, b = adm.do("GET", "/v1/receipts/export?kind=answered&from=0", tok, nil)
	want("receipt export", st, 200, b)
	st, b = adm.do("GET", "/v1/receipts/export?kind=bogus", tok, nil)
	want("receipt export of an unknown kind", st, 400, b)
	st, b = adm.do("GET", "/v1/ledger/snapshot?quiet=100ms&timeout=20s", tok, nil)
	want("ledger snapshot", st, 200, b)
	st, b = adm.do("GET", "/v1/ledger/snapshot?quiet=soon", tok, nil)
	want("ledger snapshot with a bad duration", st, 400, b)

	st, b = adm.do("GET", "/v1/backup", tok, nil)
	want("backup", st, 200, b)
	st, b = adm.do("GET", "/v1/backup", "", nil)
	want("backup without a token", st, 401, b)

	// Admin: membership. A candidate (its own node, its region not yet on
	// the ledger) proposes itself through its admin API; Shenzhen approves
	// it and votes to retire Zhuhai (one vote of three decides nothing).
	dg, desc, err := c.AddCandidate(ctx, credit.Region{ID: "441900", Name: "Dongguan", Divisions: []string{"4419"}})
	if err != nil {
		t.Fatal(err)
	}
	dgAdm := newAPIClient(t, c.HTTPClient(), "http://"+dg.Node.AdminAddr())
	dgAdm.cover, dgAdm.listener = cover, "admin"
	st, b = dgAdm.do("POST", "/v1/regions/proposals", tok, desc)
	want("propose a region", st, 200, b)
	st, b = adm.do("POST", "/v1/regions/proposals", tok, desc)
	want("propose another region than the node's", st, 400, b)
	st, b = adm.do("POST", "/v1/regions/441900/approve", tok, nil)
	want("approve a candidate", st, 200, b)
	st, b = adm.do("POST", "/v1/regions/449900/approve", tok, nil)
	want("approve a region never proposed", st, 404, b)
	st, b = adm.do("POST", "/v1/regions/440400/retire", tok, nil)
	want("vote to retire a region", st, 200, b)
	st, b = adm.do("POST", "/v1/regions/449900/retire", tok, nil)
	want("vote to retire an unknown region", st, 404, b)

	// Health, readiness, metrics and the document itself, on both.
	for _, cl := range []*apiClient{api, adm} {
		st, b = cl.do("GET", "/healthz", "", nil)
		want(cl.listener+" healthz", st, 200, b)
	}
	st, b = api.do("GET", "/readyz", "", nil)
	want("readyz", st, 200, b)
	st, b = api.do("GET", "/metrics", "", nil)
	want("metrics", st, 200, b)
	st, b = api.do("GET", "/openapi.yaml", "", nil)
	want("openapi.yaml", st, 200, b)
	// A stale ledger view: not ready, and queries refused with 503.
	faults.SetDown(true)
	poll(t, "the ledger view to go stale", func() bool { return sz.Node.Ready() != nil })
	st, b = api.do("GET", "/readyz", "", nil)
	want("readyz with a stale ledger view", st, 503, b)
	q4, _ := bank.Query(u, grant.Categories, grant.Purpose, cr.Consent, time.Now())
	st, b = api.do("POST", "/v1/query", "", q4)
	want("a query with a stale ledger view", st, 503, b)

	served := servedRoutes(t)
	_, withErrors := documented(t)
	for r := range served {
		seen := cover.seen[r]
		var statuses []int
		ok, failed := false, false
		for s := range seen {
			statuses = append(statuses, s)
			ok = ok || s < 300
			failed = failed || s >= 400
		}
		slices.Sort(statuses)
		switch {
		case !ok:
			t.Errorf("%s: no success validated against openapi.yaml (statuses %v)", r, statuses)
		case withErrors[r] && !failed:
			t.Errorf("%s: no error response validated against openapi.yaml (statuses %v)", r, statuses)
		}
	}
}
