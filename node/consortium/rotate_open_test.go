package consortium

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// A region run as `ccnode run` runs it (node.Open, serving its embedded
// ledger) rotates its node key: key_file names a new key, ledger.key_file
// the old one, its ledger identity. The restart publishes the new key and
// peer ID in the region's record; a further restart still opens.
func TestOpenPublishesRotatedKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := node.DefaultConfig("440300", dir)
	cfg.HTTP.Addr, cfg.Admin.Addr, cfg.Ledger.ServeAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	if _, err := node.AddOperator(cfg.Admin.OperatorsFile, "admin"); err != nil {
		t.Fatal(err)
	}
	oldKey, err := node.GenerateKeyFile(cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	log := testkit.LoggerAt(t, slog.LevelWarn)
	open := func() *node.Running {
		t.Helper()
		r, err := node.Open(ctx, cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := open()
	if m, err := r.Ledger.Region(ctx, "440300"); err != nil || !bytes.Equal(m.PubKey, oldKey.Public().(ed25519.PublicKey)) {
		t.Fatalf("first start's record: %+v, %v", m, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	ledgerKey := filepath.Join(dir, "ledger.key")
	if err := os.Rename(cfg.KeyFile, ledgerKey); err != nil {
		t.Fatal(err)
	}
	newKey, err := node.GenerateKeyFile(cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Ledger.KeyFile = ledgerKey
	for range 2 {
		r = open()
		m, err := r.Ledger.Region(ctx, "440300")
		pid, _ := node.PeerID(newKey.Public().(ed25519.PublicKey))
		if err != nil || !bytes.Equal(m.PubKey, newKey.Public().(ed25519.PublicKey)) || m.PeerID != pid {
			t.Fatalf("record after the rotation: %+v, %v", m, err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
