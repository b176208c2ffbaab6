package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/prdcredit/ccnode/internal/testkit"
)

// TestRunRefusesOpenKeyFile: `ccnode run` on a node key its group may
// read exits, naming the file and the command that fixes it; after the
// chmod it starts.
func TestRunRefusesOpenKeyFile(t *testing.T) {
	if testing.Short() || runtime.GOOS == "windows" {
		t.Skip("builds and runs the binary; mode bits")
	}
	bin := testkit.CCNode(t)
	dir := t.TempDir()
	if out, err := exec.Command(bin, "init", "--region", "440300", "--dir", dir, "--http-addr", "127.0.0.1:0").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	key := filepath.Join(dir, "node.key")
	os.Chmod(key, 0o640)
	out, err := exec.Command(bin, "run", "--config", filepath.Join(dir, "ccnode.yaml")).CombinedOutput()
	want := fmt.Sprintf("permissions 0640 for %s are too open; run chmod 600 %s", key, key)
	if err == nil || !strings.Contains(string(out), want) {
		t.Fatalf("run with a group-readable key: %v\n%s\nwant %q", err, out, want)
	}
}

// TestReceiptsExportIsPrivate: an export holds subjects' USCCs and
// consent documents; it is written 0600, also over a file that was
// readable by others.
func TestReceiptsExportIsPrivate(t *testing.T) {
	if testing.Short() || runtime.GOOS == "windows" {
		t.Skip("builds and runs the binary; mode bits")
	}
	bin := testkit.CCNode(t)
	dir := t.TempDir()
	if out, err := exec.Command(bin, "init", "--region", "440300", "--dir", dir, "--http-addr", "127.0.0.1:0").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	for _, existing := range []bool{false, true} {
		p := filepath.Join(t.TempDir(), "answered.jsonl")
		if existing {
			os.WriteFile(p, []byte("old\n"), 0o644)
		}
		if out, err := exec.Command(bin, "receipts", "export", "--config", filepath.Join(dir, "ccnode.yaml"), "--out", p).CombinedOutput(); err != nil {
			t.Fatalf("export: %v\n%s", err, out)
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("export (over an existing file: %v): mode %v, %v", existing, fi.Mode(), err)
		}
	}
}
