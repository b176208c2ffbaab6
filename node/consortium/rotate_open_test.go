package consortium

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// A region run as `ccnode run` runs it (node.Open, serving its embedded
// ledger) rotates its node key with node.RotateKey (ccnode keys rotate): a
// new key in key_file, the old one kept as ledger.key, its ledger
// identity. The restart publishes the new key, peer ID and the old key's
// signed change in the region's record; a further restart still opens. A
// key swapped by hand, unsigned, stops the start.
func withLedgerKey(cfg node.Config, p string) node.Config {
	cfg.Ledger.KeyFile = p
	return cfg
}

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

	// A key swapped by hand, with no change the old key signed, is not
	// published: the node does not start.
	if err := os.Rename(cfg.KeyFile, cfg.KeyFile+".kept"); err != nil {
		t.Fatal(err)
	}
	if _, err := node.GenerateKeyFile(cfg.KeyFile); err != nil {
		t.Fatal(err)
	}
	if r, err := node.Open(ctx, withLedgerKey(cfg, cfg.KeyFile+".kept"), log); !errors.Is(err, node.ErrKeyNotPublished) {
		if r != nil {
			r.Close()
		}
		t.Fatalf("start on a key swapped by hand: %v, want ErrKeyNotPublished", err)
	}
	if err := os.Rename(cfg.KeyFile+".kept", cfg.KeyFile); err != nil {
		t.Fatal(err)
	}

	rot, err := node.RotateKey(cfg, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if rot.LedgerKeyFile != filepath.Join(dir, "ledger.key") {
		t.Fatalf("the old key was not kept as the ledger identity: %+v", rot)
	}
	newKey, err := node.LoadKeyFile(cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	// Rotating again before the node published the first rotation would
	// have the unpublished key sign: refused, nothing changed.
	if _, err := node.RotateKey(cfg, time.Now()); !errors.Is(err, node.ErrRotationPending) {
		t.Fatalf("second rotation before a restart: %v, want ErrRotationPending", err)
	}
	if k, err := node.LoadKeyFile(cfg.KeyFile); err != nil || !k.Equal(newKey) {
		t.Fatalf("a refused rotation changed key_file: %v", err)
	}
	for range 2 {
		r = open()
		m, err := r.Ledger.Region(ctx, "440300")
		pid, _ := node.PeerID(newKey.Public().(ed25519.PublicKey))
		if err != nil || !bytes.Equal(m.PubKey, newKey.Public().(ed25519.PublicKey)) || m.PeerID != pid {
			t.Fatalf("record after the rotation: %+v, %v", m, err)
		}
		if m.KeyChange == nil || m.KeyChange.Verify(oldKey.Public().(ed25519.PublicKey), "440300", m.PubKey) != nil {
			t.Fatalf("the record carries no key change the old key signed: %+v", m.KeyChange)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(node.KeyChangeFile(cfg)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the published key change is still at %s: %v", node.KeyChangeFile(cfg), err)
		}
	}
}
