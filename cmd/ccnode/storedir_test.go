package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prdcredit/ccnode/internal/testkit"
)

// TestStoreCommandsUseTheNodesStore: an operator who imports into a node's
// data folder (init --dir) is refused, with the folder `ccnode run` reads
// and the flag to use; with --config, import, stats, report and verify all
// work on DATA_DIR/db, the store the node serves from.
func TestStoreCommandsUseTheNodesStore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := testkit.CCNode(t)
	tmp := t.TempDir()
	path, subjects, _ := feed(t, tmp, 300)
	nodeDir := filepath.Join(tmp, "sz")
	if r := runCcnode(t, bin, nil, "init", "--region", "440300", "--dir", nodeDir, "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"); r.code != 0 {
		t.Fatalf("init: exit %d\n%s", r.code, r.stderr)
	}
	cfg := filepath.Join(nodeDir, "ccnode.yaml")

	r := runCcnode(t, bin, nil, "import", "--quiet", "--data-dir", nodeDir, path)
	if r.code != importExitFailed || !strings.Contains(r.stderr, filepath.Join(nodeDir, "db")) || !strings.Contains(r.stderr, "--config") {
		t.Fatalf("import into a node's data folder: exit %d, want %d naming %s and --config\n%s", r.code, importExitFailed, filepath.Join(nodeDir, "db"), r.stderr)
	}
	if r := runCcnode(t, bin, nil, "import", "--quiet", "--config", cfg, "--data-dir", filepath.Join(nodeDir, "db"), path); r.code != importExitFailed || !strings.Contains(r.stderr, "not both") {
		t.Fatalf("import with --config and --data-dir: exit %d\n%s", r.code, r.stderr)
	}
	if r := runCcnode(t, bin, nil, "import", "--quiet", "--config", cfg, "--errors", filepath.Join(tmp, "errors.jsonl"), path); r.code != importExitRejected && r.code != importExitOK {
		t.Fatalf("import --config: exit %d\n%s", r.code, r.stderr)
	}
	var st struct {
		Records int64 `json:"records"`
	}
	for _, args := range [][]string{{"stats", "--json", "--config", cfg}, {"stats", "--json", "--data-dir", filepath.Join(nodeDir, "db")}} {
		r := runCcnode(t, bin, nil, args...)
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil || st.Records == 0 {
			t.Fatalf("%v: exit %d, %+v\n%s%s", args, r.code, st, r.stdout, r.stderr)
		}
	}
	if r := runCcnode(t, bin, nil, "report", "--json", "--config", cfg, string(subjects[0])); r.code != 0 || !strings.Contains(r.stdout, string(subjects[0])) {
		t.Fatalf("report --config: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runCcnode(t, bin, nil, "verify", "--config", cfg); r.code != 0 {
		t.Fatalf("verify --config: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
