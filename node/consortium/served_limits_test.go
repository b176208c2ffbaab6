package consortium

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// TestServedLedgerBoundsEcho: the embedded ledger a node serves
// (ledger.serve_addr) answers a call with megabytes of hostile input
// without echoing it: its refusal quotes a short prefix only.
func TestServedLedgerBoundsEcho(t *testing.T) {
	dir := t.TempDir()
	cfg := node.DefaultConfig("440300", dir)
	cfg.HTTP.Addr, cfg.Ledger.ServeAddr = "127.0.0.1:0", "127.0.0.1:0"
	if _, err := node.AddOperator(cfg.Admin.OperatorsFile, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := node.GenerateKeyFile(cfg.KeyFile); err != nil {
		t.Fatal(err)
	}
	sz, err := node.Open(context.Background(), cfg, testkit.LoggerAt(t, slog.LevelWarn))
	if err != nil {
		t.Fatal(err)
	}
	defer sz.Close()
	huge := strings.Repeat("\xff", 4<<20)
	for name, body := range map[string]string{
		"unknown function": `{"caller":"x","function":"` + huge + `","args":[]}`,
		"bad signature":    `{"caller":"x","function":"GetRegions","args":[],"nonce":"` + huge + `"}`,
		"not JSON":         `{"caller":` + strings.Repeat("9", 4<<20) + `x}`,
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := http.Post("http://"+sz.LedgerAddr+"/v1/tx", "application/json", bytes.NewReader([]byte(body)))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 400 || len(b) > 2<<10 {
				t.Fatalf("HTTP %d, %d bytes: %.300s", resp.StatusCode, len(b), b)
			}
		})
	}
}
