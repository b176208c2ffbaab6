package consortium

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// TestOpenPublishesAnnounce: a region run as `ccnode run` runs it
// (node.Open) publishes only p2p.announce in its ledger record when set,
// and its listeners' addresses when not.
func TestOpenPublishesAnnounce(t *testing.T) {
	ctx := context.Background()
	announce := []string{"/ip4/192.0.2.10/tcp/4401", "/dns4/ccnode.sz.example/tcp/4401"}
	for _, ann := range [][]string{nil, announce} {
		dir := t.TempDir()
		cfg := node.DefaultConfig("440300", dir)
		cfg.HTTP.Addr, cfg.Admin.Addr = "127.0.0.1:0", "127.0.0.1:0"
		cfg.P2P.Listen, cfg.P2P.Announce = []string{"/ip4/127.0.0.1/tcp/0"}, ann
		if _, err := node.AddOperator(cfg.Admin.OperatorsFile, "admin"); err != nil {
			t.Fatal(err)
		}
		if _, err := node.GenerateKeyFile(cfg.KeyFile); err != nil {
			t.Fatal(err)
		}
		r, err := node.Open(ctx, cfg, testkit.LoggerAt(t, slog.LevelWarn))
		if err != nil {
			t.Fatal(err)
		}
		m, err := r.Ledger.Region(ctx, "440300")
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if ann != nil && !slices.Equal(m.Addrs, ann) {
			t.Fatalf("announcing %v, the ledger record has %v", ann, m.Addrs)
		}
		if ann == nil && (len(m.Addrs) != 1 || !strings.HasPrefix(m.Addrs[0], "/ip4/127.0.0.1/tcp/")) {
			t.Fatalf("announcing nothing, the ledger record has %v; want the listener's address", m.Addrs)
		}
	}
}
