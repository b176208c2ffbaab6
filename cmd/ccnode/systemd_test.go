package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prdcredit/ccnode/internal/testkit"
)

// TestSystemdUnitVerifies runs systemd-analyze verify on the shipped unit
// with its ExecStart pointed at a ccnode built from this tree (verify
// refuses a unit whose binary does not exist). Verify only warns about an
// unknown or misspelt key, so any line naming the unit fails the test: a
// hardening option systemd ignores is no hardening.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd); .ci/run installs it")
	}
	const shipped = "/usr/local/bin/ccnode"
	b, err := os.ReadFile("../../configs/systemd/ccnode.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"ExecStart=" + shipped + " run --config /etc/ccnode/ccnode.yaml",
		"User=ccnode", "ProtectSystem=strict", "ReadWritePaths=/var/lib/ccnode", "NoNewPrivileges=yes",
		"PrivateTmp=yes", "ProtectHome=yes", "CapabilityBoundingSet=\n", "RestrictAddressFamilies=",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("configs/systemd/ccnode.service lacks %q", want)
		}
	}
	bin := testkit.CCNode(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "ccnode.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, shipped, bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || strings.Contains(string(out), "ccnode.service") {
		t.Fatalf("systemd-analyze verify configs/systemd/ccnode.service: %v\n%s", err, out)
	}
}
