package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

func TestNodeCommandsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := testkit.CCNode(t)
	dir := t.TempDir()
	cli := mustCLI(t, bin)
	cli("init", "--region", "440300", "--dir", dir, "--tls", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
	cfgPath := filepath.Join(dir, "ccnode.yaml")
	// The bank API serves TLS with init's self-signed certificate: every
	// bank-side command trusts it with --ca-file, as the README shows.
	caFile := filepath.Join(dir, "tls.crt")
	tc, err := node.ClientTLS(caFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	defer hc.CloseIdleConnections()
	// A second operator, whose token `operator add` prints once; init
	// made the first, admin, with its token in operator.token.
	aliceTok := filepath.Join(dir, "alice.token")
	if err := os.WriteFile(aliceTok, []byte(cli("operator", "add", "--config", cfgPath, "alice")), 0o600); err != nil {
		t.Fatal(err)
	}
	adminTok := filepath.Join(dir, "operator.token")
	if out := cli("config", "show", "--config", cfgPath, "--anchor-interval", "150ms"); !strings.Contains(out, "interval: 150ms") {
		t.Fatalf("config show does not apply the flag:\n%s", out)
	}
	if out, err := exec.Command(bin, "init", "--region", "440300", "--dir", dir).CombinedOutput(); err == nil {
		t.Fatalf("init overwrote an existing region:\n%s", out)
	}

	// startNode runs `ccnode run` and returns its bank and admin API URLs.
	startNode := func(anchorEvery string) (*exec.Cmd, string, string) {
		t.Helper()
		return runNode(t, bin, "--config", cfgPath, "--anchor-interval", anchorEvery, "--log-level", "warn")
	}
	run, url, adminURL := startNode("150ms")
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("run printed bank API %s, want https://", url)
	}
	tok, _ := os.ReadFile(adminTok)
	cl := &node.Client{Base: url, Admin: adminURL, OperatorToken: strings.TrimSpace(string(tok)), HTTP: hc}
	ctx := context.Background()
	testkit.Eventually(t, 10*time.Second, func() error {
		_, err := cl.Checkpoint(ctx)
		var se *node.StatusError
		if errors.As(err, &se) && se.Status == 404 {
			return nil // serving, nothing anchored yet
		}
		return fmt.Errorf("node not serving: checkpoint: %v", err)
	})

	_, bankKey, _ := ed25519.GenerateKey(rand.Reader)
	if err := cl.RegisterBank(ctx, credit.BankMember{ID: "bank-a", PubKey: bankKey.Public().(ed25519.PublicKey)}); err != nil {
		t.Fatal(err)
	}
	bankKeyFile := filepath.Join(dir, "bank-a.key")
	if err := node.WriteKeyFile(bankKeyFile, bankKey); err != nil {
		t.Fatal(err)
	}
	u := testkit.USCC(t, "440300", 1)
	// The trust chain as the README sets it up: a development authority,
	// registered by this region, certifies the enterprise's key.
	caDir, entDir := filepath.Join(dir, "authority"), filepath.Join(dir, "enterprise")
	cli("authority", "create", "--name", "Shenzhen Test Authority", "--out", caDir)
	cli("authority", "issue", "--authority", caDir, "--uscc", string(u), "--name", "Test Enterprise", "--out", entDir)
	// Another region's divisions are not this region's to vouch for.
	if out, err := exec.Command(bin, "authority", "register", "--admin", adminURL, "--operator-token-file", adminTok, "--authority", caDir,
		"--divisions", "4401").CombinedOutput(); err == nil || !strings.Contains(string(out), "4401") {
		t.Fatalf("authority register for another region's divisions: %v\n%s", err, out)
	} else {
		t.Logf("authority register for another region's divisions: %s", out)
	}
	var auth credit.IdentityAuthority
	if out := cli("authority", "register", "--admin", adminURL, "--operator-token-file", adminTok, "--authority", caDir); json.Unmarshal([]byte(out), &auth) != nil ||
		auth.Region != "440300" || len(auth.Divisions) != 1 || auth.Divisions[0] != "4403" || auth.RegisteredAt.IsZero() {
		t.Fatalf("authority register: %s", out)
	}
	consentFile := filepath.Join(dir, "consent.json")
	grant := func(tokenFile, entDir, out string) ([]byte, error) {
		return exec.Command(bin, "consent", "grant", "--admin", adminURL, "--operator-token-file", tokenFile,
			"--enterprise-key", filepath.Join(entDir, "enterprise.key"), "--enterprise-cert", filepath.Join(entDir, "enterprise.pem"),
			"--uscc", string(u), "--bank", "bank-a", "--region", "440300", "--categories", "tax,penalty", "--out", out).CombinedOutput()
	}
	// The bank API serves no admin call, whatever the token (the admin
	// commands speak plain HTTP to the loopback admin listener, so the
	// client that trusts the bank API's certificate asks).
	onBankAPI := &node.Client{Admin: url, OperatorToken: cl.OperatorToken, HTTP: hc}
	if err := onBankAPI.RegisterBank(ctx, credit.BankMember{ID: "bank-never", PubKey: bankKey.Public().(ed25519.PublicKey)}); err == nil ||
		!strings.Contains(err.Error(), "HTTP 404") {
		t.Fatalf("register bank on the bank API: %v, want HTTP 404", err)
	}
	if out, err := grant(aliceTok, entDir, consentFile); err != nil {
		t.Fatalf("consent grant as alice: %v\n%s", err, out)
	}
	// The attack of issue 14: a key certified by an authority nobody
	// registered, for this region's enterprise, through this region's own
	// operator token. Refused at recording.
	rogueDir, rogueEnt := filepath.Join(dir, "rogue"), filepath.Join(dir, "rogue-enterprise")
	cli("authority", "create", "--name", "Rogue Authority", "--out", rogueDir)
	cli("authority", "issue", "--authority", rogueDir, "--uscc", string(u), "--name", "Test Enterprise", "--out", rogueEnt)
	if out, err := grant(adminTok, rogueEnt, filepath.Join(dir, "rogue-consent.json")); err == nil || !strings.Contains(string(out), string(credit.CodeConsentUncertified)) {
		t.Fatalf("consent signed under an unregistered authority: %v\n%s", err, out)
	} else {
		t.Logf("consent signed under an unregistered authority: %s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "rogue-consent.json")); err == nil {
		t.Fatal("a refused consent was written")
	}
	// Nor can this region revoke a certificate no registered authority issued.
	if out, err := exec.Command(bin, "authority", "revoke", "--admin", adminURL, "--operator-token-file", adminTok,
		"--cert", filepath.Join(rogueEnt, "enterprise.pem")).CombinedOutput(); err == nil || !strings.Contains(string(out), "does not chain to a registered identity authority") {
		t.Fatalf("revoking a certificate of an unregistered authority: %v\n%s", err, out)
	}
	var g credit.ConsentGrant
	b, _ := os.ReadFile(consentFile)
	if err := json.Unmarshal(b, &g); err != nil || len(g.RegionSig) == 0 {
		t.Fatalf("consent file: %v %s", err, b)
	}
	if out := cli("consent", "status", "--node", url, "--ca-file", caFile, "--id", g.ID); !strings.Contains(out, `"active"`) {
		t.Fatalf("status: %s", out)
	}
	// alice revoked while the node runs: her next call is refused, the
	// admin operator's is not.
	cli("operator", "revoke", "--config", cfgPath, "alice")
	if out, err := grant(aliceTok, entDir, filepath.Join(dir, "refused.json")); err == nil || !strings.Contains(string(out), string(credit.CodeUnauthorized)) {
		t.Fatalf("consent grant by revoked alice: %v\n%s", err, out)
	}
	if out, err := grant(adminTok, entDir, filepath.Join(dir, "consent-2.json")); err != nil {
		t.Fatalf("consent grant by admin after alice's revocation: %v\n%s", err, out)
	}

	out := cli("query", "--node", url, "--ca-file", caFile, "--bank", "bank-a", "--key", bankKeyFile, "--consent", consentFile, "--json")
	var res node.Consolidated
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Regions) != 1 || res.Regions[0].Status != node.StatusOK {
		t.Fatalf("query: %v\n%s", err, out)
	}
	rid := res.Regions[0].Receipt.ID
	// The bank reads its receipt with a signed read; without one, nothing.
	if out := cli("receipts", "get", "--node", url, "--ca-file", caFile, "--bank", "bank-a", "--key", bankKeyFile, "--id", rid); !strings.Contains(out, rid) {
		t.Fatalf("receipts get as the bank:\n%s", out)
	}
	if out := cli("receipts", "get", "--admin", adminURL, "--operator-token-file", adminTok, "--id", rid); !strings.Contains(out, rid) {
		t.Fatalf("receipts get as an operator:\n%s", out)
	}
	// The running node checks its own store (it holds Badger's lock).
	if out := cli("verify", "--online", "--admin", adminURL, "--operator-token-file", adminTok); !strings.Contains(out, ": ok: ") {
		t.Fatalf("verify --online of a sound store:\n%s", out)
	}
	if resp, err := hc.Get(url + "/v1/receipts/" + rid); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned receipt read: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// The enterprise's certificate is revoked: a consent it signs now is
	// refused at recording; the consent recorded before still answers.
	var rev credit.CertRevocation
	if out := cli("authority", "revoke", "--admin", adminURL, "--operator-token-file", adminTok, "--cert", filepath.Join(entDir, "enterprise.pem")); json.Unmarshal([]byte(out), &rev) != nil ||
		rev.Authority != auth.ID || rev.RevokedAt.IsZero() || strings.Contains(out, string(u)) {
		t.Fatalf("authority revoke: %s", out)
	}
	if out, err := grant(adminTok, entDir, filepath.Join(dir, "after-revocation.json")); err == nil || !strings.Contains(string(out), string(credit.CodeConsentUncertified)) {
		t.Fatalf("consent signed under a revoked certificate: %v\n%s", err, out)
	}
	// The bank verifies every receipt and ack with the region's key (from
	// the operator's `ccnode keys show`, in a bootstrap file's shape).
	var ki struct {
		PubKey string `json:"pub_key"`
	}
	if err := json.Unmarshal([]byte(cli("keys", "show", "--json", "--config", cfgPath)), &ki); err != nil || ki.PubKey == "" {
		t.Fatalf("keys show: %v", err)
	}
	regionKeys := func(name, pub string) string {
		p := filepath.Join(dir, name)
		b, _ := json.Marshal(map[string]any{"regions": []map[string]string{{"id": "440300", "pub_key": pub}}})
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	page := filepath.Join(dir, "report.html")
	if out := cli("query", "--node", url, "--ca-file", caFile, "--bank", "bank-a", "--key", bankKeyFile, "--consent", consentFile,
		"--region-keys", regionKeys("regions.json", ki.PubKey), "--html", page); !strings.Contains(out, "440300  ok") {
		t.Fatalf("query table:\n%s", out)
	}
	// --html writes the printable page, in Chinese, with the receipt.
	if b, err := os.ReadFile(page); err != nil || !strings.Contains(string(b), "企业信用综合报告") || !strings.Contains(string(b), `data-region="440300"`) ||
		!strings.Contains(string(b), `class="receipt"`) {
		t.Fatalf("query --html: %v\n%s", err, b)
	}
	// Anchored by the loop within a few intervals.
	testkit.Eventually(t, 20*time.Second, func() error {
		rp, err := cl.Receipt(ctx, "bank-a", bankKey, rid)
		if err == nil && rp.Checkpoint == nil {
			err = errors.New("not anchored")
		}
		return err
	})
	firstCP, err := cl.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Refused by reason through the CLI's exit status and message.
	qout, err := exec.Command(bin, "query", "--node", url, "--ca-file", caFile, "--bank", "bank-a", "--key", bankKeyFile, "--consent", consentFile, "--categories", "customs").CombinedOutput()
	if err == nil || !strings.Contains(string(qout), string(credit.CodeCategoryOutOfScope)) {
		t.Fatalf("out-of-scope query: %v\n%s", err, qout)
	}

	// Crash the node: every receipt it answered is still in its log.
	run.Process.Signal(syscall.SIGKILL)
	run.Wait()
	exp := cli("receipts", "export", "--config", cfgPath)
	lines := strings.Split(strings.TrimSpace(exp), "\n")
	if len(lines) != 3 { // header + two answered queries
		t.Fatalf("export after kill has %d lines:\n%s", len(lines), exp)
	}
	h, err := credit.DecodeExportHeader([]byte(lines[0]))
	if err != nil || h.Size != 2 || h.Kind != credit.ExportAnswered {
		t.Fatalf("header %+v: %v", h, err)
	}
	l, err := credit.DecodeExportLine([]byte(lines[1]))
	if err != nil || l.Index != 0 || len(l.Acks) != 1 {
		t.Fatalf("first line %+v: %v", l, err)
	}
	if r, err := credit.DecodeReceipt(l.Receipt); err != nil || r.ID != rid {
		t.Fatalf("first receipt %s, want %s: %v", r.ID, rid, err)
	}

	// Answer with anchoring out of reach, kill at once, restart: the
	// acknowledged receipt is in the log and gets anchored afterwards.
	run, url, _ = startNode("1h")
	waitServing(t, &node.Client{Base: url, HTTP: hc})
	out = cli("query", "--node", url, "--ca-file", caFile, "--bank", "bank-a", "--key", bankKeyFile, "--consent", consentFile, "--json")
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Regions[0].Status != node.StatusOK {
		t.Fatalf("query before kill: %v\n%s", err, out)
	}
	unanchored := res.Regions[0].Receipt.ID
	run.Process.Signal(syscall.SIGKILL)
	run.Wait()
	_, url, adminURL = startNode("150ms")
	cl = &node.Client{Base: url, HTTP: hc}
	waitServing(t, cl)
	testkit.Eventually(t, 20*time.Second, func() error {
		rp, err := cl.Receipt(ctx, "bank-a", bankKey, unanchored)
		if err == nil && (rp.Checkpoint == nil || rp.LeafIndex != 2) {
			err = fmt.Errorf("receipt acknowledged before the kill not anchored after restart: %+v", rp)
		}
		return err
	})

	// A consistency proof between the checkpoint anchored before the kill
	// and the one after, checked by the command against the region's note
	// verifier key; under another key's verifier it fails.
	lastCP, err := cl.Checkpoint(ctx)
	if err != nil || lastCP.Size <= firstCP.Size {
		t.Fatalf("latest checkpoint %+v after %d: %v", lastCP, firstCP.Size, err)
	}
	nodeKey, err := node.LoadKeyFile(filepath.Join(dir, "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := note.NewEd25519VerifierKey("ccnode/"+node.DefaultNetworkID+"/440300", nodeKey.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	from, to := strconv.FormatUint(firstCP.Size, 10), strconv.FormatUint(lastCP.Size, 10)
	var cproof node.ConsistencyProof
	if out := cli("receipts", "consistency", "--node", url, "--ca-file", caFile, "--from", from, "--to", to, "--verifier-key", vkey); json.Unmarshal([]byte(out), &cproof) != nil ||
		cproof.From.Size != firstCP.Size || cproof.To.Size != lastCP.Size || len(cproof.Proof) == 0 {
		t.Fatalf("receipts consistency:\n%s", out)
	}
	otherVkey, _ := note.NewEd25519VerifierKey("ccnode/"+node.DefaultNetworkID+"/440300", bankKey.Public().(ed25519.PublicKey))
	if out, err := exec.Command(bin, "receipts", "consistency", "--node", url, "--ca-file", caFile, "--from", from, "--to", to, "--verifier-key", otherVkey).CombinedOutput(); err == nil {
		t.Fatalf("receipts consistency under another key's verifier succeeded:\n%s", out)
	}

	// Retiring the authority ends every consent it certified.
	if out := cli("authority", "retire", "--admin", adminURL, "--operator-token-file", adminTok, "--authority", caDir); !strings.Contains(out, `"retired_at"`) {
		t.Fatalf("authority retire: %s", out)
	}
	qout, err = exec.Command(bin, "query", "--node", url, "--ca-file", caFile, "--bank", "bank-a", "--key", bankKeyFile, "--consent", consentFile).CombinedOutput()
	if err == nil || !strings.Contains(string(qout), string(credit.CodeConsentUncertified)) {
		t.Fatalf("query on a consent of a retired authority: %v\n%s", err, qout)
	}
}

// waitServing polls the node until its bank API answers.
func waitServing(t *testing.T, cl *node.Client) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, func() error {
		_, err := cl.ConsentStatus(context.Background(), "consent-probe")
		var se *node.StatusError
		if errors.As(err, &se) && se.Status == 404 {
			return nil
		}
		return fmt.Errorf("node not serving: consent status: %v", err)
	})
}
