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
