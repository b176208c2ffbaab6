package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/consortium"
)

// The region commands drive a running consortium's admin APIs: Dongguan
// proposes the member.json 'ccnode init' writes, Shenzhen and Zhuhai approve (Shenzhen's
// second approval is reported as not counted), and Dongguan is active on
// the ledger. Malformed input is refused before any call, with the flag
// or argument named.
func TestRegionCommands(t *testing.T) {
	ctx := context.Background()
	c, err := consortium.Start(ctx, consortium.Options{Logger: testkit.LoggerAt(t, slog.LevelWarn)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dg, desc, err := c.AddCandidate(ctx, credit.Region{ID: "441900", Name: "Dongguan", Divisions: []string{"4419"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tok := filepath.Join(dir, "operator.token")
	descFile := filepath.Join(dir, "dongguan.json")
	b, _ := json.Marshal(desc)
	if err := os.WriteFile(tok, []byte(c.OperatorToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(descFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// The form 'ccnode init' writes (DATA_DIR/member.json).
	memberFile := filepath.Join(dir, "member.json")
	mb, _ := json.Marshal(node.MemberDescriptor{Format: node.MemberFormat, Region: desc.ID, Name: desc.Name, Divisions: desc.Divisions,
		MSPID: desc.MSPID, PeerID: desc.PeerID, PubKey: desc.PubKey, Addrs: desc.Addrs, NetworkID: node.DefaultNetworkID})
	if err := os.WriteFile(memberFile, mb, 0o600); err != nil {
		t.Fatal(err)
	}
	admin := func(r *consortium.Region) []string {
		return []string{"--admin", "http://" + r.Node.AdminAddr(), "--operator-token-file", tok}
	}
	run := func(args ...string) (string, error) { return runCLIErr(t, args...) }

	t.Run("refusals", func(t *testing.T) {
		if _, err := run(append([]string{"region", "approve"}, admin(dg)...)...); err == nil || !strings.Contains(err.Error(), "exactly one region id") {
			t.Errorf("approve without an id: %v", err)
		}
		if _, err := run(append([]string{"region", "approve", "441900"}, admin(dg)...)...); err == nil || !strings.Contains(err.Error(), "after the flags") {
			t.Errorf("approve with the flags after the id: %v", err)
		}
		if _, err := run(append(append([]string{"region", "retire"}, admin(dg)...), "Not An Id")...); err == nil || !strings.Contains(err.Error(), "region id") {
			t.Errorf("retire with a bad id: %v", err)
		}
		bad := filepath.Join(dir, "bad.json")
		os.WriteFile(bad, []byte(`{"id":"441900","region_name":"x"}`), 0o600)
		if _, err := run(append([]string{"region", "propose", "--descriptor", bad}, admin(dg)...)...); err == nil || !strings.Contains(err.Error(), "--descriptor") {
			t.Errorf("a descriptor with an unknown field: %v", err)
		}
		// Shenzhen's node may propose only itself.
		if _, err := run(append([]string{"region", "propose", "--descriptor", descFile}, admin(c.Region("440300"))...)...); err == nil || !strings.Contains(err.Error(), "may propose only itself") {
			t.Errorf("proposing another region's descriptor: %v", err)
		}
	})

	out, err := run(append([]string{"region", "propose", "--descriptor", memberFile}, admin(dg)...)...)
	if err != nil || !strings.Contains(out, `"status": "open"`) {
		t.Fatalf("propose: %v\n%s", err, out)
	}
	if out, err = run(append(append([]string{"region", "approve"}, admin(c.Region("440300"))...), "441900")...); err != nil || !strings.Contains(out, `"counted": true`) {
		t.Fatalf("approve: %v\n%s", err, out)
	}
	if out, err = run(append(append([]string{"region", "approve"}, admin(c.Region("440300"))...), "441900")...); err != nil || !strings.Contains(out, "already approved") {
		t.Fatalf("approving twice: %v\n%s", err, out)
	}
	if out, err = run(append(append([]string{"region", "approve"}, admin(c.Region("440400"))...), "441900")...); err != nil || !strings.Contains(out, `"status": "accepted"`) {
		t.Fatalf("deciding approval: %v\n%s", err, out)
	}
	m, err := c.Region("440100").Ledger.Region(ctx, "441900")
	if err != nil || m.Status != credit.StatusActive {
		t.Fatalf("Dongguan on the ledger: %+v, %v", m, err)
	}
}
