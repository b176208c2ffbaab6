package consortium

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
)

func TestDemoScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo scenario loads three stores")
	}
	dir := t.TempDir()
	d, err := RunDemo(context.Background(), DemoOptions{Dir: dir, Enterprises: 40, Queries: 5, Options: Options{Logger: testkit.LoggerAt(t, slog.LevelWarn)}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rep := d.Report
	if rep.Queries != 10 || rep.Records == 0 || len(rep.Regions) != 3 {
		t.Fatalf("report: %+v", rep)
	}
	want := map[credit.Code]bool{credit.CodeConsentUncertified: true, credit.CodeConsentNotFound: true, credit.CodeConsentRevoked: true, credit.CodeCategoryOutOfScope: true,
		credit.CodeConsentOtherBank: true, credit.CodeBadSignature: true}
	for _, r := range rep.Refusals {
		if !r.AsWanted || !want[r.Got] || r.HTTP < 400 || r.HTTP >= 500 {
			t.Errorf("refusal %+v", r)
		}
		delete(want, r.Got)
	}
	if len(want) != 0 {
		t.Fatalf("refusals missing: %v", want)
	}
	// 10 queries x 3 regions, every receipt anchored.
	if rep.Receipts != 30 || !rep.Proof.Verified {
		t.Fatalf("receipts %d, proof %+v", rep.Receipts, rep.Proof)
	}
	for _, r := range rep.Regions {
		if r.Anchored != r.LogSize {
			t.Fatalf("region %s anchored %d of %d", r.ID, r.Anchored, r.LogSize)
		}
		if !strings.HasPrefix(r.BankAPI, "https://") {
			t.Errorf("region %s's bank API %s, want TLS", r.ID, r.BankAPI)
		}
	}
	// What a user needs to query the kept demo: the CA that trusts every
	// region's bank API, with each bank's key and consent.
	if want := filepath.Join(dir, "tls", CAFileName); rep.CAFile != want || len(rep.Try) != 2 {
		t.Fatalf("CA file %q (want %s), %d try lines", rep.CAFile, want, len(rep.Try))
	}
	for _, try := range rep.Try {
		if try.CAFile != rep.CAFile || !strings.HasPrefix(try.Node, "https://") {
			t.Errorf("try %+v: want the CA file and an https node", try)
		}
	}
	if rep.Audit.Findings != 0 || rep.Audit.Receipts != 30 {
		t.Fatalf("offline audit of the demo: %+v", rep.Audit)
	}
	for _, p := range []string{"banks/bank-sz-merchants.key", "440300/db", "tls/ca.crt", "audit/ledger-snapshot.json", "audit/440300-answered.jsonl"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Fatalf("data dir lacks %s: %v", p, err)
		}
	}
	// What an auditor is handed names subjects and consents: owner only.
	audits, _ := filepath.Glob(filepath.Join(dir, "audit", "*"))
	for _, p := range audits {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600 (%v)", p, fi.Mode(), err)
		}
	}
	if len(audits) < 4 {
		t.Fatalf("audit files: %v", audits)
	}
}

func TestDemoRemovesTemporaryFolder(t *testing.T) {
	if testing.Short() {
		t.Skip("loads three stores")
	}
	d, err := RunDemo(context.Background(), DemoOptions{Enterprises: 10, Queries: 1, Options: Options{Logger: testkit.LoggerAt(t, slog.LevelWarn)}})
	if err != nil {
		t.Fatal(err)
	}
	tmp := d.tmp
	if tmp == "" {
		t.Fatal("no temporary folder used")
	}
	d.Close()
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("temporary folder %s left behind: %v", tmp, err)
	}
}
