package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("ccnode %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out)
	}
	cli("init", "--region", "440300", "--dir", dir, "--http-addr", "127.0.0.1:0")
	cfgPath := filepath.Join(dir, "ccnode.yaml")
	if out := cli("config", "show", "--config", cfgPath, "--anchor-interval", "150ms"); !strings.Contains(out, "interval: 150ms") {
		t.Fatalf("config show does not apply the flag:\n%s", out)
	}
	if out, err := exec.Command(bin, "init", "--region", "440300", "--dir", dir).CombinedOutput(); err == nil {
		t.Fatalf("init overwrote an existing region:\n%s", out)
	}

	// startNode runs `ccnode run` and returns its bank API URL.
	startNode := func(anchorEvery string) (*exec.Cmd, string) {
		t.Helper()
		run := exec.Command(bin, "run", "--config", cfgPath, "--anchor-interval", anchorEvery, "--log-level", "warn")
		stdout, _ := run.StdoutPipe()
		run.Stderr = os.Stderr
		if err := run.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { run.Process.Kill(); run.Wait() })
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			t.Fatalf("run printed no address: %v", err)
		}
		_, url, ok := strings.Cut(strings.TrimSpace(line), "bank API on ")
		if !ok {
			t.Fatalf("run: %q", line)
		}
		return run, url
	}
	run, url := startNode("150ms")
	tok, _ := os.ReadFile(filepath.Join(dir, "admin.token"))
	cl := &node.Client{Base: url, AdminToken: strings.TrimSpace(string(tok))}
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
	tokFile := filepath.Join(dir, "admin.token")
	// The trust chain as the README sets it up: a development authority,
	// registered by this region, certifies the enterprise's key.
	caDir, entDir := filepath.Join(dir, "authority"), filepath.Join(dir, "enterprise")
	cli("authority", "create", "--name", "Shenzhen Test Authority", "--out", caDir)
	cli("authority", "issue", "--authority", caDir, "--uscc", string(u), "--name", "Test Enterprise", "--out", entDir)
	// Another region's divisions are not this region's to vouch for.
	if out, err := exec.Command(bin, "authority", "register", "--node", url, "--admin-token-file", tokFile, "--authority", caDir,
		"--divisions", "4401").CombinedOutput(); err == nil || !strings.Contains(string(out), "4401") {
		t.Fatalf("authority register for another region's divisions: %v\n%s", err, out)
	} else {
		t.Logf("authority register for another region's divisions: %s", out)
	}
	var auth credit.IdentityAuthority
	if out := cli("authority", "register", "--node", url, "--admin-token-file", tokFile, "--authority", caDir); json.Unmarshal([]byte(out), &auth) != nil ||
		auth.Region != "440300" || len(auth.Divisions) != 1 || auth.Divisions[0] != "4403" || auth.RegisteredAt.IsZero() {
		t.Fatalf("authority register: %s", out)
	}
	grant := func(entDir, out string) ([]byte, error) {
		return exec.Command(bin, "consent", "grant", "--node", url, "--admin-token-file", tokFile,
			"--enterprise-key", filepath.Join(entDir, "enterprise.key"), "--enterprise-cert", filepath.Join(entDir, "enterprise.pem"),
			"--uscc", string(u), "--bank", "bank-a", "--region", "440300", "--categories", "tax,penalty", "--out", out).CombinedOutput()
	}
	consentFile := filepath.Join(dir, "consent.json")
	if out, err := grant(entDir, consentFile); err != nil {
		t.Fatalf("consent grant: %v\n%s", err, out)
	}
	// The attack of issue 14: a key certified by an authority nobody
	// registered, for this region's enterprise, through this region's own
	// admin token. Refused at recording.
	rogueDir, rogueEnt := filepath.Join(dir, "rogue"), filepath.Join(dir, "rogue-enterprise")
	cli("authority", "create", "--name", "Rogue Authority", "--out", rogueDir)
	cli("authority", "issue", "--authority", rogueDir, "--uscc", string(u), "--name", "Test Enterprise", "--out", rogueEnt)
	if out, err := grant(rogueEnt, filepath.Join(dir, "rogue-consent.json")); err == nil || !strings.Contains(string(out), string(credit.CodeConsentUncertified)) {
		t.Fatalf("consent signed under an unregistered authority: %v\n%s", err, out)
	} else {
		t.Logf("consent signed under an unregistered authority: %s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "rogue-consent.json")); err == nil {
		t.Fatal("a refused consent was written")
	}
	// Nor can this region revoke a certificate no registered authority issued.
	if out, err := exec.Command(bin, "authority", "revoke", "--node", url, "--admin-token-file", tokFile,
		"--cert", filepath.Join(rogueEnt, "enterprise.pem")).CombinedOutput(); err == nil || !strings.Contains(string(out), "does not chain to a registered identity authority") {
		t.Fatalf("revoking a certificate of an unregistered authority: %v\n%s", err, out)
	}
	var g credit.ConsentGrant
	b, _ := os.ReadFile(consentFile)
	if err := json.Unmarshal(b, &g); err != nil || len(g.RegionSig) == 0 {
		t.Fatalf("consent file: %v %s", err, b)
	}
	if out := cli("consent", "status", "--node", url, "--id", g.ID); !strings.Contains(out, `"active"`) {
		t.Fatalf("status: %s", out)
	}

	out := cli("query", "--node", url, "--bank", "bank-a", "--key", bankKeyFile, "--consent", consentFile, "--json")
	var res node.Consolidated
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Regions) != 1 || res.Regions[0].Status != node.StatusOK {
		t.Fatalf("query: %v\n%s", err, out)
	}
	rid := res.Regions[0].Receipt.ID

	// The enterprise's certificate is revoked: a consent it signs now is
	// refused at recording; the consent recorded before still answers.
	var rev credit.CertRevocation
	if out := cli("authority", "revoke", "--node", url, "--admin-token-file", tokFile, "--cert", filepath.Join(entDir, "enterprise.pem")); json.Unmarshal([]byte(out), &rev) != nil ||
		rev.Authority != auth.ID || rev.RevokedAt.IsZero() || strings.Contains(out, string(u)) {
		t.Fatalf("authority revoke: %s", out)
	}
	if out, err := grant(entDir, filepath.Join(dir, "after-revocation.json")); err == nil || !strings.Contains(string(out), string(credit.CodeConsentUncertified)) {
		t.Fatalf("consent signed under a revoked certificate: %v\n%s", err, out)
	}
	if out := cli("query", "--node", url, "--bank", "bank-a", "--key", bankKeyFile, "--consent", consentFile); !strings.Contains(out, "440300  ok") {
		t.Fatalf("query table:\n%s", out)
	}
	// Anchored by the loop within a few intervals.
	testkit.Eventually(t, 20*time.Second, func() error {
		rp, err := cl.Receipt(ctx, rid)
		if err == nil && rp.Checkpoint == nil {
			err = errors.New("not anchored")
		}
		return err
	})
	// Refused by reason through the CLI's exit status and message.
	qout, err := exec.Command(bin, "query", "--node", url, "--bank", "bank-a", "--key", bankKeyFile, "--consent", consentFile, "--categories", "customs").CombinedOutput()
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
	run, url = startNode("1h")
	waitServing(t, &node.Client{Base: url})
	out = cli("query", "--node", url, "--bank", "bank-a", "--key", bankKeyFile, "--consent", consentFile, "--json")
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Regions[0].Status != node.StatusOK {
		t.Fatalf("query before kill: %v\n%s", err, out)
	}
	unanchored := res.Regions[0].Receipt.ID
	run.Process.Signal(syscall.SIGKILL)
	run.Wait()
	_, url = startNode("150ms")
	cl = &node.Client{Base: url}
	waitServing(t, cl)
	testkit.Eventually(t, 20*time.Second, func() error {
		rp, err := cl.Receipt(ctx, unanchored)
		if err == nil && (rp.Checkpoint == nil || rp.LeafIndex != 2) {
			err = fmt.Errorf("receipt acknowledged before the kill not anchored after restart: %+v", rp)
		}
		return err
	})

	// Retiring the authority ends every consent it certified.
	if out := cli("authority", "retire", "--node", url, "--admin-token-file", tokFile, "--authority", caDir); !strings.Contains(out, `"retired_at"`) {
		t.Fatalf("authority retire: %s", out)
	}
	qout, err = exec.Command(bin, "query", "--node", url, "--bank", "bank-a", "--key", bankKeyFile, "--consent", consentFile).CombinedOutput()
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
