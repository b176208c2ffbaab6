package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prdcredit/ccnode/internal/testkit"
)

// TestFlippedByteInImportedStore: the failure of issue 16. One byte of an
// imported store's table changed on disk (an amount's last digit): ccnode
// report fails naming the table instead of printing the altered amount,
// and ccnode verify, given the node's config, finds it and exits non-zero.
func TestFlippedByteInImportedStore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := testkit.CCNode(t)
	dir := t.TempDir()
	if res := runCcnode(t, bin, nil, "init", "--region", "440300", "--dir", dir, "--http-addr", "127.0.0.1:0"); res.code != 0 {
		t.Fatalf("init: %d\n%s", res.code, res.stderr)
	}
	cfg, db := filepath.Join(dir, "ccnode.yaml"), filepath.Join(dir, "db")
	var feed strings.Builder
	for i := 0; i < 300; i++ {
		amount := fmt.Sprintf("%d", 1000+i)
		if i == 150 {
			amount = "16501.07"
		}
		fmt.Fprintf(&feed, `{"uscc":%q,"source":"tax-bureau","source_id":"t%d","category":"tax","date":"2025-%02d-%02d","attrs":{"amount":%s}}`+"\n",
			testkit.USCC(t, "440300", 1+i%20), i, 1+i%12, 1+i%28, amount)
	}
	feedFile := filepath.Join(dir, "feed.jsonl")
	if err := os.WriteFile(feedFile, []byte(feed.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := runCcnode(t, bin, nil, "import", "--quiet", "--data-dir", dir, feedFile); res.code != 0 {
		t.Fatalf("import: %d\n%s", res.code, res.stderr)
	}
	subject := testkit.USCC(t, "440300", 1+150%20)
	if res := runCcnode(t, bin, nil, "report", "--json", "--data-dir", dir, string(subject)); res.code != 0 || !strings.Contains(res.stdout, "16501.07") {
		t.Fatalf("report of the sound store: %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if res := runCcnode(t, bin, nil, "verify", "--config", cfg); res.code != 0 || !strings.Contains(res.stdout, "ok") {
		t.Fatalf("verify of the sound store: %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}

	table := filepath.Base(testkit.FlipInTable(t, db, []byte(`"amount":16501.07`)))
	res := runCcnode(t, bin, nil, "report", "--json", "--data-dir", dir, string(subject))
	if res.code == 0 || strings.Contains(res.stdout, "16501.0") || !strings.Contains(res.stderr, table) || !strings.Contains(res.stderr, "checksum") {
		t.Fatalf("report of the store with a flipped byte in %s: exit %d\nstdout: %s\nstderr: %s", table, res.code, res.stdout, res.stderr)
	}
	res = runCcnode(t, bin, nil, "verify", "--config", cfg)
	if res.code == 0 || !strings.Contains(res.stderr, table) || !strings.Contains(res.stderr, "checksum") {
		t.Fatalf("verify of the store with a flipped byte in %s: exit %d\nstdout: %s\nstderr: %s", table, res.code, res.stdout, res.stderr)
	}
	t.Logf("verify says: %s", res.stderr)
}

// TestVerifyCoversTheLedgersStore: a node hosting the embedded ledger
// keeps it in Badger beside its store; ccnode verify checks that
// database's tables too, and names the one with a flipped byte.
func TestVerifyCoversTheLedgersStore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := testkit.CCNode(t)
	dir := t.TempDir()
	if res := runCcnode(t, bin, nil, "init", "--region", "440300", "--dir", dir, "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"); res.code != 0 {
		t.Fatalf("init: %d\n%s", res.code, res.stderr)
	}
	cfg := filepath.Join(dir, "ccnode.yaml")
	run, _, _ := runNode(t, bin, "--config", cfg, "--log-level", "warn")
	// Stopped cleanly, the ledger's Badger flushes its memtable to a table.
	if err := run.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := run.Wait(); err != nil {
		t.Fatalf("run after SIGINT: %v", err)
	}
	res := runCcnode(t, bin, nil, "verify", "--config", cfg)
	if res.code != 0 || !strings.Contains(res.stdout, "embedded ledger verified") {
		t.Fatalf("verify of a sound node: %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	tables, _ := filepath.Glob(filepath.Join(dir, "ledger", "*.sst"))
	if len(tables) == 0 {
		t.Fatalf("the ledger in %s has no table after a clean stop", filepath.Join(dir, "ledger"))
	}
	f, err := os.OpenFile(tables[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, 40); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, 40); err != nil { // inside the first block
		t.Fatal(err)
	}
	f.Close()
	res = runCcnode(t, bin, nil, "verify", "--config", cfg)
	if res.code == 0 || !strings.Contains(res.stderr, "embedded ledger") || !strings.Contains(res.stderr, filepath.Base(tables[0])) {
		t.Fatalf("verify with a flipped byte in the ledger's %s: exit %d\n%s%s", tables[0], res.code, res.stdout, res.stderr)
	}
	t.Log(res.stderr)
}
