package consortium

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// Two regions as `ccnode run` opens them (node.Open), without Fabric: Shenzhen runs
// the embedded ledger (bootstrapped with both regions from a file) and
// serves it; Guangzhou reaches it over HTTP. Guangzhou learns a consent
// from the served events, answers Shenzhen's query over libp2p, and
// anchors its own checkpoint on the served ledger.
func TestStandaloneServesEmbeddedLedger(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	ids := []credit.RegionID{"440300", "440100"}
	var cfgs []node.Config
	var boot struct {
		Regions []credit.RegionMember `json:"regions"`
	}
	for _, id := range ids {
		dir := filepath.Join(root, string(id))
		cfg := node.DefaultConfig(id, dir)
		cfg.HTTP.Addr, cfg.Admin.Addr = "127.0.0.1:0", "127.0.0.1:0"
		if _, err := node.AddOperator(cfg.Admin.OperatorsFile, "admin"); err != nil {
			t.Fatal(err)
		}
		key, err := node.GenerateKeyFile(cfg.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		pub := key.Public().(ed25519.PublicKey)
		pid, err := node.PeerID(pub)
		if err != nil {
			t.Fatal(err)
		}
		boot.Regions = append(boot.Regions, credit.RegionMember{ID: id, Name: string(id), MSPID: cfg.Ledger.MSPID, PeerID: pid,
			PubKey: pub, Status: credit.StatusActive, Divisions: []string{string(id)[:4]}})
		cfgs = append(cfgs, cfg)
	}
	b, _ := json.Marshal(boot)
	bootFile := filepath.Join(root, "members.json")
	if err := os.WriteFile(bootFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfgs[0].Ledger.ServeAddr, cfgs[0].Ledger.BootstrapFile = "127.0.0.1:0", bootFile
	sz, err := node.Open(ctx, cfgs[0], testkit.LoggerAt(t, slog.LevelWarn))
	if err != nil {
		t.Fatal(err)
	}
	defer sz.Close()
	if sz.LedgerAddr == "" {
		t.Fatal("ledger.serve_addr set, but no ledger address")
	}
	cfgs[1].Ledger.EmbeddedDir, cfgs[1].Ledger.EmbeddedURL = "", "http://"+sz.LedgerAddr
	gz, err := node.Open(ctx, cfgs[1], testkit.LoggerAt(t, slog.LevelWarn))
	if err != nil {
		t.Fatal(err)
	}
	defer gz.Close()
	if m, err := sz.Ledger.Region(ctx, "440100"); err != nil || len(m.Addrs) == 0 {
		t.Fatalf("Guangzhou's addresses on the served ledger: %+v, %v", m, err)
	}

	// Shenzhen registers its identity authority, as `ccnode authority
	// register` does through its node, and certifies an enterprise.
	ca := testkit.NewAuthority(t, "440300", "4403")
	if err := sz.Ledger.RegisterAuthority(ctx, ca.Record); err != nil {
		t.Fatal(err)
	}
	u := testkit.USCC(t, "440300", 21)
	key, chain := ca.Issue(t, u)
	ent := Enterprise{USCC: u, Key: key, Chain: chain}
	poll(t, "Shenzhen's view trusts its authority", func() bool {
		_, ok := sz.Node.View().Trust().Authority(ca.Record.ID)
		return ok
	})
	for _, s := range []*node.Running{sz, gz} {
		if _, err := s.Store.Put(ctx, []credit.Record{rec(t, ent.USCC, credit.Tax, 1)}); err != nil {
			t.Fatal(err)
		}
	}
	_, bankKey, _ := ed25519.GenerateKey(nil)
	bank := &Bank{BankSpec: BankSpec{ID: "bank-served", Region: "440300"}, Key: bankKey}
	if err := sz.Ledger.RegisterBank(ctx, credit.BankMember{ID: bank.ID, Name: "b", Region: "440300", Status: credit.StatusActive, PubKey: bankKey.Public().(ed25519.PublicKey)}); err != nil {
		t.Fatal(err)
	}
	cats := []credit.Category{credit.Tax}
	g, _ := ent.Grant(bank.ID, "440300", cats, credit.PurposeCreditReview, time.Now(), time.Hour)
	if g, _, err = sz.Node.RecordConsent(ctx, g); err != nil {
		t.Fatal(err)
	}
	poll(t, "Guangzhou learns the consent from the served events, Shenzhen the bank", func() bool {
		_, st, err := gz.Node.ConsentStatus(ctx, g.ID)
		_, known := sz.Node.View().Bank(bank.ID)
		return err == nil && st == credit.ConsentActive && known
	})
	var res *node.Consolidated
	poll(t, "both regions answer", func() bool {
		q, _ := bank.Query(ent.USCC, cats, credit.PurposeCreditReview, &g, time.Now())
		if res, err = sz.Node.Query(ctx, &q); err != nil {
			t.Fatal(err)
		}
		ok := len(res.Regions) == 2
		for _, st := range res.Regions {
			ok = ok && st.Status == node.StatusOK && st.RecordCount == 1
		}
		return ok
	})
	if err := gz.Node.AnchorNow(ctx); err != nil {
		t.Fatal(err)
	}
	ac, err := sz.Ledger.LatestCheckpoint(ctx, "440100")
	if err != nil || ac.Size != gz.Node.Log().Size() {
		t.Fatalf("Guangzhou's checkpoint on the served ledger: %+v, %v (log %d)", ac, err, gz.Node.Log().Size())
	}
}
