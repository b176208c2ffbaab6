package consortium

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network/embedded"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/audit"
)

// A consortium bootstrapped with its nodes' addresses runs queries, stops,
// and restarts on other addresses (every region republishes its record)
// with one region on a new key (a rotation); it runs queries again. The
// audit over every export, with the ledger snapshot taken from the running
// ledger and from its folder, finds nothing: each member's key history
// starts at the bootstrap, a republish with the same key leaves earlier
// signatures valid, and the old key counts only before the rotation.
func TestRestartAndKeyRotationAuditClean(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo twice on three stores")
	}
	dir := t.TempDir()
	ctx := context.Background()
	log := testkit.LoggerAt(t, slog.LevelWarn)
	first, err := RunDemo(ctx, DemoOptions{Dir: dir, Enterprises: 20, Queries: 5, Options: Options{Logger: log, Mocknet: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if f := first.Report.Audit.Findings; f != 0 {
		t.Fatalf("first run's audit: %d findings (%v)", f, first.Report.Audit.ByRule)
	}

	// Zhuhai's operator rotates its node key: the old key stays the
	// region's ledger identity, the node starts with the new one.
	rotated := first.Regions[2]
	oldPub := rotated.Key.Public().(ed25519.PublicKey)
	rdir := filepath.Join(dir, string(rotated.ID))
	rot, err := node.RotateKey(node.DefaultConfig(rotated.ID, rdir), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	newPub := rot.NewKey

	second, err := RunDemo(ctx, DemoOptions{Dir: dir, Enterprises: 20, Queries: 5, Options: Options{Logger: log}})
	if err != nil {
		t.Fatal(err)
	}
	rep := second.Report.Audit
	fromRunning := second.Report.Audit.Snapshot
	for _, r := range second.Regions {
		m, err := second.Regions[0].Ledger.Region(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Addrs) == 0 || strings.HasPrefix(m.Addrs[0], "/ip4/10.44.0.") {
			t.Fatalf("region %s did not republish its addresses: %v", r.ID, m.Addrs)
		}
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	// Both runs' receipts: 10 queries x 3 regions each.
	if rep.Receipts != 60 || rep.Findings != 0 {
		t.Fatalf("audit after the restart: %d receipts, %d findings %v", rep.Receipts, rep.Findings, rep.ByRule)
	}

	// The same audit with a snapshot an auditor takes from the ledger's
	// folder once the consortium stopped.
	srv, err := embedded.Open(filepath.Join(dir, "ledger"), embedded.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, aKey, _ := ed25519.GenerateKey(nil)
	if err := srv.AddIdentity("AuditorMSP", aKey.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	fromDir, err := audit.TakeSnapshot(sctx, srv.Client("AuditorMSP", aKey), 100*time.Millisecond, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(fromRunning)
	if err != nil {
		t.Fatal(err)
	}
	running, err := audit.ReadSnapshot(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range second.Regions {
		a, b := running.RegionHistory(r.ID), fromDir.RegionHistory(r.ID)
		if len(a) != len(b) {
			t.Fatalf("region %s: %d versions from the running ledger, %d from its folder", r.ID, len(a), len(b))
		}
		for i := range a {
			if !a[i].UpdatedAt.Equal(b[i].UpdatedAt) || !bytes.Equal(a[i].PubKey, b[i].PubKey) {
				t.Fatalf("region %s version %d differs: %+v vs %+v", r.ID, i, a[i], b[i])
			}
		}
		// Bootstrap (with the mocknet addresses), then the restart's republish.
		if len(a) < 2 {
			t.Fatalf("region %s: history %d versions, want the bootstrap and the republish", r.ID, len(a))
		}
	}
	h := fromDir.RegionHistory(rotated.ID)
	if !bytes.Equal(h[0].PubKey, oldPub) || !bytes.Equal(h[len(h)-1].PubKey, newPub) {
		t.Fatalf("region %s's history does not go from the old key to the new one", rotated.ID)
	}
	var consents []credit.ConsentGrant
	cb, err := os.ReadFile(rep.Consents)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(cb, &consents); err != nil {
		t.Fatal(err)
	}
	in := audit.Inputs{Consents: consents}
	for _, p := range rep.Exports {
		in.Exports = append(in.Exports, audit.FileSource(p))
	}
	ar, err := audit.Run(ctx, in, fromDir, audit.Options{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, rs := range ar.Regions {
		n += rs.Receipts
	}
	if n != 60 || ar.Total != 0 {
		t.Fatalf("audit with the folder's snapshot: %d receipts, %d findings %v", n, ar.Total, ar.ByRule)
	}
}
