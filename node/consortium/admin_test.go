package consortium

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// openOperated starts one region as `ccnode run` does (node.Open) with an
// operators file holding the named operators; it returns the running
// node, the operators file, each operator's token and the node's log.
func openOperated(t *testing.T, names ...string) (*node.Running, string, map[string]string, *testkit.LogCapture) {
	t.Helper()
	dir := t.TempDir()
	cfg := node.DefaultConfig("440300", dir)
	cfg.HTTP.Addr, cfg.Admin.Addr = "127.0.0.1:0", "127.0.0.1:0"
	tokens := map[string]string{}
	for _, n := range names {
		tok, err := node.AddOperator(cfg.Admin.OperatorsFile, n)
		if err != nil {
			t.Fatal(err)
		}
		tokens[n] = tok
	}
	if _, err := node.GenerateKeyFile(cfg.KeyFile); err != nil {
		t.Fatal(err)
	}
	log, logs := testkit.CaptureLogger(t, slog.LevelInfo)
	r, err := node.Open(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, cfg.Admin.OperatorsFile, tokens, logs
}

func statusOf(t *testing.T, err error) (int, credit.Code) {
	t.Helper()
	if err == nil {
		return http.StatusOK, ""
	}
	var se *node.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("not an API error: %v", err)
	}
	return se.Status, se.Reason()
}

func newBankMember(t *testing.T, id credit.BankID) credit.BankMember {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return credit.BankMember{ID: id, Name: string(id), PubKey: pub}
}

// Admin operations are served on the admin listener only: the bank
// listener answers them 404 even with a valid operator token, and the
// admin listener refuses them without one.
func TestAdminRoutesOnlyOnAdminListener(t *testing.T) {
	r, _, tok, _ := openOperated(t, "alice")
	ctx := context.Background()
	bankAPI := &node.Client{Base: r.HTTPAddr(), Admin: r.HTTPAddr(), OperatorToken: tok["alice"]}
	admin := &node.Client{Base: r.HTTPAddr(), Admin: r.AdminAddr(), OperatorToken: tok["alice"]}
	if r.AdminAddr() == r.HTTPAddr() || !strings.HasPrefix(r.AdminAddr(), "127.0.0.1:") {
		t.Fatalf("admin API on %s, bank API on %s: want a loopback listener of its own", r.AdminAddr(), r.HTTPAddr())
	}
	u := testkit.USCC(t, "440300", 7)
	key, chain := testkit.NewAuthority(t, "440300", "4403").Issue(t, u)
	g, err := Enterprise{USCC: u, Key: key, Chain: chain}.Grant("bank-x", "440300", []credit.Category{credit.Tax}, credit.PurposeCreditReview, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func(*node.Client) error{
		"register bank":  func(c *node.Client) error { return c.RegisterBank(ctx, newBankMember(t, "bank-x")) },
		"record consent": func(c *node.Client) error { _, err := c.RecordConsent(ctx, g); return err },
		"revoke consent": func(c *node.Client) error { _, err := c.RevokeConsent(ctx, "consent-none"); return err },
		"read receipt":   func(c *node.Client) error { _, err := c.OperatorReceipt(ctx, "r-none"); return err },
	} {
		// The bank API reads receipts for banks, by their signature: an
		// operator's token counts for nothing there.
		want, wantCode := http.StatusNotFound, credit.CodeNotFound
		if name == "read receipt" {
			want, wantCode = http.StatusUnauthorized, credit.CodeUnauthorized
		}
		if st, code := statusOf(t, call(bankAPI)); st != want || code != wantCode {
			t.Errorf("%s on the bank API with an operator token: %d %s, want %d %s", name, st, code, want, wantCode)
		}
		anon := *admin
		anon.OperatorToken = "not-a-token"
		if st, code := statusOf(t, call(&anon)); st != http.StatusUnauthorized || code != credit.CodeUnauthorized {
			t.Errorf("%s on the admin API without a valid token: %d %s, want 401 %s", name, st, code, credit.CodeUnauthorized)
		}
	}
	if err := admin.RegisterBank(ctx, newBankMember(t, "bank-x")); err != nil {
		t.Fatalf("register bank on the admin API: %v", err)
	}
}

// Operators are revoked one by one, and the running node refuses a
// revoked operator's next call without a restart while another operator
// still works; every admin action is logged with the operator's name, the
// action and its target.
func TestOperatorRevokedWithoutRestart(t *testing.T) {
	r, opsFile, tok, logs := openOperated(t, "alice", "bob")
	ctx := context.Background()
	as := func(name string) *node.Client {
		return &node.Client{Base: r.HTTPAddr(), Admin: r.AdminAddr(), OperatorToken: tok[name]}
	}
	if err := as("alice").RegisterBank(ctx, newBankMember(t, "bank-alice-1")); err != nil {
		t.Fatalf("alice registers a bank: %v", err)
	}
	if got := logs.Lines("admin action", "operator=alice", "action=register_bank", "target=bank-alice-1", "status=200"); len(got) != 1 {
		t.Fatalf("log lines of alice's registration: %q", got)
	}

	if err := node.RevokeOperator(opsFile, "alice"); err != nil {
		t.Fatal(err)
	}
	if st, code := statusOf(t, as("alice").RegisterBank(ctx, newBankMember(t, "bank-alice-2"))); st != http.StatusUnauthorized || code != credit.CodeUnauthorized {
		t.Fatalf("revoked alice registers a bank: %d %s, want 401 %s", st, code, credit.CodeUnauthorized)
	}
	if err := as("bob").RegisterBank(ctx, newBankMember(t, "bank-bob-1")); err != nil {
		t.Fatalf("bob, still an operator, registers a bank: %v", err)
	}
	if got := logs.Lines("admin action", "operator=bob", "action=register_bank", "target=bank-bob-1"); len(got) != 1 {
		t.Fatalf("log lines of bob's registration: %q", got)
	}
	if got := logs.Lines("admin call refused", "action=register_bank"); len(got) != 1 {
		t.Fatalf("log lines of alice's refused call: %q", got)
	}
	if got := logs.Lines("bank-alice-2", "status=200"); len(got) != 0 {
		t.Fatalf("revoked alice's call logged as done: %q", got)
	}

	// A new operator added while the node runs works at once; a broken
	// file refuses everyone (fail closed) rather than no one.
	tokCarol, err := node.AddOperator(opsFile, "carol")
	if err != nil {
		t.Fatal(err)
	}
	tok["carol"] = tokCarol
	if err := as("carol").RegisterBank(ctx, newBankMember(t, "bank-carol-1")); err != nil {
		t.Fatalf("carol, added while the node runs: %v", err)
	}
	if err := os.WriteFile(opsFile, []byte("bob not-a-hash\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if st, _ := statusOf(t, as("bob").RegisterBank(ctx, newBankMember(t, "bank-bob-2"))); st == http.StatusOK {
		t.Fatal("an unreadable operators file let a call through")
	}
}

// Reading a receipt reveals the subject's USCC and the consent document:
// only the bank whose query it answers, with a read signed for that
// receipt, or an operator on the admin API may read it.
func TestReceiptReadNeedsTheBanksSignature(t *testing.T) {
	ctx := context.Background()
	c, err := Start(ctx, Options{Logger: testkit.LoggerAt(t, slog.LevelWarn), Mocknet: true, Tune: fastTune,
		Regions: PRD3()[:1],
		Banks:   []BankSpec{{ID: "bank-a", Name: "A", Region: "440300"}, {ID: "bank-b", Name: "B", Region: "440300"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sz := c.Regions[0]
	bankA, bankB := c.Bank("bank-a"), c.Bank("bank-b")
	u := testkit.USCC(t, "440300", 9)
	mustPut(t, sz, rec(t, u, credit.Tax, 1))
	cl := c.Client(sz)
	ent, err := c.Enterprise(u)
	if err != nil {
		t.Fatal(err)
	}
	cats := []credit.Category{credit.Tax}
	rid := func() string {
		g, err := ent.Grant(bankA.ID, sz.ID, cats, credit.PurposeCreditReview, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		res, err := cl.RecordConsent(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		var q credit.Query
		poll(t, "consent in the node's view", func() bool {
			q, _ = bankA.Query(u, cats, credit.PurposeCreditReview, res.Consent, time.Now())
			_, err := cl.Query(ctx, &q)
			return err == nil
		})
		id, err := credit.ReceiptID(sz.ID, &q)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	r1, r2 := rid(), rid()

	read := func(bank *Bank, signedFor, path string, at time.Time) (int, credit.Code) {
		rr := credit.ReceiptRead{Version: 1, Bank: bank.ID, ReceiptID: signedFor, Time: at}
		if err := rr.Sign(bank.Key); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", sz.Node.HTTPURL()+"/v1/receipts/"+path, nil)
		node.SetReceiptReadHeaders(req, &rr)
		return doCode(t, c.HTTPClient(), req)
	}
	now := time.Now()
	for _, tc := range []struct {
		name           string
		bank           *Bank
		signedFor, get string
		at             time.Time
		status         int
		code           credit.Code
	}{
		{"the querying bank, signed for this receipt", bankA, r1, r1, now, http.StatusOK, ""},
		{"another bank of the region (as for no such receipt)", bankB, r1, r1, now, http.StatusNotFound, credit.CodeNotFound},
		{"the querying bank, signed for another receipt", bankA, r2, r1, now, http.StatusUnauthorized, credit.CodeBadSignature},
		{"the querying bank, signed an hour ago", bankA, r1, r1, now.Add(-time.Hour), http.StatusUnauthorized, credit.CodeStaleQuery},
	} {
		if st, code := read(tc.bank, tc.signedFor, tc.get, tc.at); st != tc.status || code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, st, code, tc.status, tc.code)
		}
	}
	// The client a bank uses signs its reads.
	bankAPI := &node.Client{Base: sz.Node.HTTPURL(), HTTP: c.HTTPClient()}
	if _, err := bankAPI.Receipt(ctx, bankB.ID, bankB.Key, r1); !isCode(err, credit.CodeNotFound) {
		t.Errorf("another bank's read: %v, want %s", err, credit.CodeNotFound)
	}
	rp, err := bankAPI.Receipt(ctx, bankA.ID, bankA.Key, r1)
	if err != nil || rp.Receipt.ID != r1 || rp.Receipt.Query.Subject != u {
		t.Fatalf("the querying bank's read: %+v, %v", rp, err)
	}

	// No signature at all.
	resp, err := c.HTTPClient().Get(sz.Node.HTTPURL() + "/v1/receipts/" + r1)
	if err != nil {
		t.Fatal(err)
	}
	var e node.APIError
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || e.Code != string(credit.CodeUnauthorized) {
		t.Fatalf("unsigned read: HTTP %d %s, want 401 %s", resp.StatusCode, e.Code, credit.CodeUnauthorized)
	}
	// An operator reads any receipt on the admin API.
	if rp, err := cl.OperatorReceipt(ctx, r2); err != nil || rp.Receipt.ID != r2 {
		t.Fatalf("operator's read: %+v, %v", rp, err)
	}
}

func isCode(err error, c credit.Code) bool {
	var se *node.StatusError
	return errors.As(err, &se) && se.Reason() == c
}

// doCode sends req and returns its status and error code.
func doCode(t *testing.T, hc *http.Client, req *http.Request) (int, credit.Code) {
	t.Helper()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return http.StatusOK, ""
	}
	var e node.APIError
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, credit.Code(e.Code)
}
