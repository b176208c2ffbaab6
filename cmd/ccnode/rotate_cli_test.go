package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
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

// TestKeyRotationCommands rotates a running region's node key and a bank's
// key with the commands an operator types, each node a separate `ccnode
// run`: answers before the rotation carry the old key's receipts, answers
// after it the new key's; the ledger record holds the change the old key
// signed; the audit over the export and the stopped ledger finds nothing,
// and finds a receipt signed with the old key after the change. A query
// signed with the bank's old key after its rotation is refused
// (bad_signature), the new key's answered.
func TestKeyRotationCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := testkit.CCNode(t)
	dir := t.TempDir()
	// stdout, and what stdout and stderr said together.
	ccnodeOut := func(args ...string) (string, string, error) {
		cmd := exec.Command(bin, args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		return string(out), string(out) + stderr.String(), err
	}
	ccnode := func(args ...string) (string, error) {
		_, both, err := ccnodeOut(args...)
		return both, err
	}
	cli := func(args ...string) string {
		t.Helper()
		out, both, err := ccnodeOut(args...)
		if err != nil {
			t.Fatalf("ccnode %s: %v\n%s", strings.Join(args, " "), err, both)
		}
		return out
	}
	cli("init", "--region", "440100", "--dir", dir, "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
	cfgPath := filepath.Join(dir, "ccnode.yaml")
	adminTok := filepath.Join(dir, "operator.token")
	start := func() (*exec.Cmd, string, []string) {
		t.Helper()
		run, url, adminURL := runNode(t, bin, "--config", cfgPath, "--anchor-interval", "150ms", "--log-level", "warn")
		waitServing(t, &node.Client{Base: url})
		return run, url, []string{"--admin", adminURL, "--operator-token-file", adminTok}
	}
	stop := func(run *exec.Cmd) {
		t.Helper()
		run.Process.Signal(syscall.SIGTERM)
		if err := run.Wait(); err != nil {
			t.Fatalf("node stopped with %v", err)
		}
	}
	run, url, admin := start()

	cli("bank", "keygen", "--out", filepath.Join(dir, "bank"))
	bankKeyFile, bankPub := filepath.Join(dir, "bank", "bank.key"), filepath.Join(dir, "bank", "bank.pub")
	cli(append([]string{"bank", "register", "--id", "bank-a", "--pub-key", bankPub}, admin...)...)
	u := testkit.USCC(t, "440100", 1)
	caDir, entDir := filepath.Join(dir, "authority"), filepath.Join(dir, "enterprise")
	cli("authority", "create", "--name", "Guangzhou Test Authority", "--out", caDir)
	cli("authority", "issue", "--authority", caDir, "--uscc", string(u), "--name", "Test Enterprise", "--out", entDir)
	cli(append([]string{"authority", "register", "--authority", caDir}, admin...)...)
	consentFile := filepath.Join(dir, "consent.json")
	cli(append([]string{"consent", "grant", "--enterprise-key", filepath.Join(entDir, "enterprise.key"), "--enterprise-cert", filepath.Join(entDir, "enterprise.pem"),
		"--uscc", string(u), "--bank", "bank-a", "--region", "440100", "--categories", "tax,penalty", "--out", consentFile}, admin...)...)
	query := func(url, key string) (node.Consolidated, string, error) {
		out, err := ccnode("query", "--node", url, "--bank", "bank-a", "--key", key, "--consent", consentFile, "--json")
		var res node.Consolidated
		if err == nil {
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("query: %v\n%s", err, out)
			}
		}
		return res, out, err
	}
	// answeredBy wants one region's answer, its receipt signed by pub.
	answeredBy := func(url string, pub ed25519.PublicKey) {
		t.Helper()
		res, out, err := query(url, bankKeyFile)
		if err != nil || len(res.Regions) != 1 || res.Regions[0].Status != node.StatusOK || res.Regions[0].Receipt == nil {
			t.Fatalf("query: %v\n%s", err, out)
		}
		if err := res.Regions[0].Receipt.Verify(pub); err != nil {
			t.Fatalf("receipt not signed by the expected node key: %v", err)
		}
	}
	oldKey, err := node.LoadKeyFile(filepath.Join(dir, "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	oldPub := oldKey.Public().(ed25519.PublicKey)
	answeredBy(url, oldPub)

	// The node key: rotate, restart, and the answers carry the new key.
	var rot rotateInfo
	if err := json.Unmarshal([]byte(cli("keys", "rotate", "--config", cfgPath, "--json")), &rot); err != nil {
		t.Fatal(err)
	}
	if rot.LedgerKeyFile != filepath.Join(dir, "ledger.key") || rot.NewPeerID == rot.OldPeerID {
		t.Fatalf("keys rotate printed %+v", rot)
	}
	stop(run)
	run, url, admin = start()
	newKey, err := node.LoadKeyFile(filepath.Join(dir, "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	newPub := newKey.Public().(ed25519.PublicKey)
	if newPub.Equal(oldPub) {
		t.Fatal("keys rotate left the key as it was")
	}
	answeredBy(url, newPub)
	var shown keyInfo
	if err := json.Unmarshal([]byte(cli("keys", "show", "--config", cfgPath, "--json")), &shown); err != nil || shown.PeerID != rot.NewPeerID {
		t.Fatalf("keys show after the rotation: %+v %v, want peer %s", shown, err, rot.NewPeerID)
	}

	// The bank's key: the old key is refused once the change is on the
	// ledger, the new one answered.
	cli("bank", "keygen", "--out", filepath.Join(dir, "bank2"))
	var rec credit.BankMember
	if err := json.Unmarshal([]byte(cli(append([]string{"bank", "rotate", "--id", "bank-a", "--pub-key", filepath.Join(dir, "bank2", "bank.pub")}, admin...)...)), &rec); err != nil {
		t.Fatal(err)
	}
	newBankPub, err := readBankPub(filepath.Join(dir, "bank2", "bank.pub"))
	if err != nil || !bytes.Equal(rec.PubKey, newBankPub) || rec.Status != credit.StatusActive {
		t.Fatalf("bank rotate printed %+v (%v)", rec, err)
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		_, out, err := query(url, bankKeyFile)
		if err == nil || !strings.Contains(out, string(credit.CodeBadSignature)) {
			return fmt.Errorf("old bank key after its rotation: %v\n%s", err, out)
		}
		return nil
	})
	bankKeyFile = filepath.Join(dir, "bank2", "bank.key")
	answeredBy(url, newPub)
	for _, c := range []struct {
		want string
		args []string
	}{
		{"404", []string{"--id", "bank-nobody"}},
		{"already has this key", []string{"--id", "bank-a"}},
	} {
		out, err := ccnode(append(append([]string{"bank", "rotate", "--pub-key", filepath.Join(dir, "bank2", "bank.pub")}, c.args...), admin...)...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Fatalf("bank rotate %v: %v\n%s, want %q", c.args, err, out, c.want)
		}
	}

	// The audit over the export and the ledger: the old key's receipts
	// before the change and the new key's after are all sound.
	testkit.Eventually(t, 20*time.Second, func() error {
		cp, err := (&node.Client{Base: url}).Checkpoint(context.Background())
		if err != nil || cp.Size < 3 {
			return fmt.Errorf("three receipts not anchored yet: %+v %v", cp, err)
		}
		return nil
	})
	stop(run)
	export := filepath.Join(dir, "export.jsonl")
	if err := os.WriteFile(export, []byte(cli("receipts", "export", "--config", cfgPath)), 0o600); err != nil {
		t.Fatal(err)
	}
	ledgerDir := filepath.Join(dir, "ledger")
	if out := cli("audit", "--no-progress", "--ledger-dir", ledgerDir, export); !strings.Contains(out, "result: no findings") {
		t.Fatalf("audit after the rotations:\n%s", out)
	}
	// A receipt forged with the old node key after the change: a finding.
	lines := strings.Split(strings.TrimSpace(string(must(os.ReadFile(export)))), "\n")
	last, err := credit.DecodeExportLine([]byte(lines[len(lines)-1]))
	if err != nil {
		t.Fatal(err)
	}
	r, err := credit.DecodeReceipt(last.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Sign(oldKey); err != nil {
		t.Fatal(err)
	}
	if last.Receipt, err = r.LeafBytes(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(last)
	if err != nil {
		t.Fatal(err)
	}
	lines[len(lines)-1] = string(b)
	forged := filepath.Join(dir, "forged.jsonl")
	if err := os.WriteFile(forged, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := ccnode("audit", "--no-progress", "--ledger-dir", ledgerDir, forged)
	// The forged leaf no longer rebuilds the anchored root; the audit names
	// the receipt whose signature fails under the key of its time.
	if err == nil || !strings.Contains(out, "its receipt signature fails") {
		t.Fatalf("audit of a receipt signed with the old key after the change: %v\n%s", err, out)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
