package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// TestInitFromConfig sets up a node from a shipped sample config, as the
// README's three-node journey does, and checks what init refuses.
func TestInitFromConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := testkit.CCNode(t)
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "configs"), os.DirFS("../../configs")); err != nil {
		t.Fatal(err)
	}
	ccnode := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, tt := range []struct{ args []string }{
		{[]string{"--http-addr", "127.0.0.1:0"}},
		{[]string{"--dir", "elsewhere"}},
		{[]string{"--region", "440100"}},
	} {
		out, err := ccnode(append([]string{"init", "--config", "configs/440400.yaml"}, tt.args...)...)
		if err == nil || !strings.Contains(out, tt.args[0]) {
			t.Fatalf("init --config with %v: %v\n%s", tt.args, err, out)
		}
		if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
			t.Fatalf("init --config with %v wrote files before refusing", tt.args)
		}
	}
	out, err := ccnode("init", "--config", "configs/440400.yaml")
	if err != nil {
		t.Fatalf("init --config: %v\n%s", err, out)
	}
	for f, mode := range map[string]os.FileMode{"node.key": 0o600, "operator.token": 0o600, "tls.key": 0o600, "tls.crt": 0, "member.json": 0} {
		fi, err := os.Stat(filepath.Join(dir, "data", "440400", f))
		if err != nil || mode != 0 && fi.Mode().Perm() != mode {
			t.Fatalf("data/440400/%s: %v, want it made (mode %o)", f, err, mode)
		}
	}
	if !strings.Contains(out, "data/440400/member.json") {
		t.Fatalf("init does not say where the member descriptor is:\n%s", out)
	}
	var d node.MemberDescriptor
	if err := node.ReadDescriptor(filepath.Join(dir, "data", "440400", "member.json"), &d); err != nil || d.Validate() != nil {
		t.Fatalf("member.json: %v / %v", err, d.Validate())
	}
	if d.Region != "440400" || d.Name != "Zhuhai" || d.Divisions[0] != "4404" || len(d.Addrs) != 1 || d.Addrs[0] != "/ip4/127.0.0.1/tcp/4404" {
		t.Fatalf("member.json %+v", d)
	}
	if out, err := ccnode("init", "--config", "configs/440400.yaml"); err == nil || !strings.Contains(out, "exists") {
		t.Fatalf("second init --config: %v\n%s", err, out)
	}
	// The config init set up is one `run` accepts (the ledger URL names a
	// node not running here, so only the config is checked).
	if out, err := ccnode("config", "show", "--config", "configs/440400.yaml"); err != nil {
		t.Fatalf("config show: %v\n%s", err, out)
	}
}
