package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// TestBankCommands registers and retires a bank through a running node's
// admin API with the commands an operator types, and checks their errors.
func TestBankCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := testkit.CCNode(t)
	dir := t.TempDir()
	ccnode := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := ccnode(args...)
		if err != nil {
			t.Fatalf("ccnode %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	fails := func(want string, args ...string) {
		t.Helper()
		out, err := ccnode(args...)
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("ccnode %s: %v\n%s\nwant an error saying %q", strings.Join(args, " "), err, out, want)
		}
		t.Logf("ccnode %s: %s", strings.Join(args[:2], " "), strings.TrimSpace(out))
	}

	must("init", "--region", "440300", "--dir", "sz", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
	// init's member descriptor carries the key as keys show prints it.
	var member node.MemberDescriptor
	if err := node.ReadDescriptor(filepath.Join(dir, "sz", "member.json"), &member); err != nil || member.Validate() != nil {
		t.Fatalf("member.json: %v", err)
	}
	var shown keyInfo
	if err := json.Unmarshal([]byte(must("keys", "show", "--config", "sz/ccnode.yaml", "--json")), &shown); err != nil {
		t.Fatal(err)
	}
	if mb, _ := json.Marshal(member.PubKey); string(mb) != `"`+shown.PubKey+`"` || member.PeerID != shown.PeerID || member.Region != "440300" {
		t.Fatalf("member.json %+v disagrees with keys show %+v", member, shown)
	}
	// One descriptor twice is one region twice: refused, naming the file.
	fails("sz/member.json: region: region 440300 is also described by sz/member.json",
		"consortium", "bootstrap", "--out", "boot.json", "sz/member.json", "sz/member.json")

	_, _, adminURL := runNode(t, bin, "--config", filepath.Join(dir, "sz", "ccnode.yaml"), "--log-level", "warn")
	admin := []string{"--admin", adminURL, "--operator-token-file", "sz/operator.token"}

	out := must("bank", "keygen", "--out", "bank-a")
	for _, f := range []string{"bank.key", "bank.pub"} {
		fi, err := os.Stat(filepath.Join(dir, "bank-a", f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("bank-a/%s: %v %v, want mode 0600", f, fi.Mode(), err)
		}
	}
	if !strings.Contains(out, "pub_key:") || !strings.Contains(out, bankIDRule) {
		t.Fatalf("keygen printed:\n%s", out)
	}
	fails("exists", "bank", "keygen", "--out", "bank-a")
	fails("--id", "bank", "keygen", "--out", "bank-b", "--id", "Bank B", "--region", "440300")
	fails("is a private key", append([]string{"bank", "register", "--id", "bank-a", "--pub-key", "bank-a/bank.key"}, admin...)...)
	fails("bank id", append([]string{"bank", "register", "--id", "Bank A", "--pub-key", "bank-a/bank.pub"}, admin...)...)
	os.WriteFile(filepath.Join(dir, "wrong.token"), []byte("not-a-token\n"), 0o600)
	fails("401", "bank", "register", "--id", "bank-a", "--pub-key", "bank-a/bank.pub", "--admin", adminURL, "--operator-token-file", "wrong.token")

	before := time.Now().Add(-time.Minute)
	var reg credit.BankMember
	if err := json.Unmarshal([]byte(must(append([]string{"bank", "register", "--id", "bank-a", "--pub-key", "bank-a/bank.pub", "--name", "Bank A"}, admin...)...)), &reg); err != nil {
		t.Fatal(err)
	}
	// The ledger's record, with the time its transaction set (the old
	// answer echoed the request: updated_at 0001-01-01).
	if reg.ID != "bank-a" || reg.Region != "440300" || reg.Status != credit.StatusActive || reg.UpdatedAt.Before(before) || reg.Name != "Bank A" {
		t.Fatalf("register printed %+v", reg)
	}
	var ret credit.BankMember
	if err := json.Unmarshal([]byte(must(append([]string{"bank", "retire", "--id", "bank-a"}, admin...)...)), &ret); err != nil {
		t.Fatal(err)
	}
	if ret.Status != credit.StatusRetired || ret.UpdatedAt.Before(reg.UpdatedAt) || !ret.UpdatedAt.After(before) {
		t.Fatalf("retire printed %+v", ret)
	}
	fails("404", append([]string{"bank", "retire", "--id", "bank-nobody"}, admin...)...)
}
