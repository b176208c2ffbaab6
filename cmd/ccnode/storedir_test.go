package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prdcredit/ccnode/internal/testkit"
)

// TestStoreCommandsUseTheNodesStore: --data-dir means the node's data
// folder for every command, as for run: import, stats, report and verify
// given the folder init made (or its --config, or both) all work on
// DATA_DIR/db, the store the node serves from. A bare store folder (the
// flag's old meaning) is refused, naming the folder to give instead.
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
	storeDir := filepath.Join(nodeDir, "db")

	if r := runCcnode(t, bin, nil, "import", "--quiet", "--data-dir", nodeDir, "--errors", filepath.Join(tmp, "errors.jsonl"), path); r.code != importExitRejected && r.code != importExitOK {
		t.Fatalf("import --data-dir (the node's data folder): exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(storeDir, "MANIFEST")); err != nil {
		t.Fatalf("import --data-dir %s wrote no store at %s: %v", nodeDir, storeDir, err)
	}
	var st struct {
		Records int64 `json:"records"`
	}
	for _, args := range [][]string{
		{"stats", "--json", "--config", cfg},
		{"stats", "--json", "--data-dir", nodeDir},
		{"stats", "--json", "--config", cfg, "--data-dir", nodeDir},
	} {
		r := runCcnode(t, bin, nil, args...)
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil || st.Records == 0 {
			t.Fatalf("%v: exit %d, %+v\n%s%s", args, r.code, st, r.stdout, r.stderr)
		}
	}
	for _, flag := range [][]string{{"--config", cfg}, {"--data-dir", nodeDir}} {
		if r := runCcnode(t, bin, nil, append([]string{"report", "--json"}, append(flag, string(subjects[0]))...)...); r.code != 0 || !strings.Contains(r.stdout, string(subjects[0])) {
			t.Fatalf("report %v: exit %d\n%s%s", flag, r.code, r.stdout, r.stderr)
		}
		if r := runCcnode(t, bin, nil, append([]string{"verify"}, flag...)...); r.code != 0 {
			t.Fatalf("verify %v: exit %d\n%s%s", flag, r.code, r.stdout, r.stderr)
		}
	}
	// --data-dir over the config's data_dir, as run's flag does: an empty
	// folder has no store to read.
	other := filepath.Join(tmp, "other")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if r := runCcnode(t, bin, nil, "stats", "--config", cfg, "--data-dir", other); r.code == 0 || !strings.Contains(r.stderr, filepath.Join(other, "db")) {
		t.Fatalf("stats --config with --data-dir of an empty folder: exit %d, want a failure naming %s\n%s", r.code, filepath.Join(other, "db"), r.stderr)
	}

	// The old meaning: the store folder itself.
	for _, args := range [][]string{
		{"import", "--quiet", "--data-dir", storeDir, path},
		{"stats", "--data-dir", storeDir},
		{"report", "--data-dir", storeDir, string(subjects[0])},
		{"verify", "--data-dir", storeDir},
	} {
		r := runCcnode(t, bin, nil, args...)
		if r.code == 0 || !strings.Contains(r.stderr, "record store's own folder") || !strings.Contains(r.stderr, "--data-dir "+nodeDir) {
			t.Fatalf("%v: exit %d, want a refusal naming --data-dir %s\n%s", args, r.code, nodeDir, r.stderr)
		}
	}
}
