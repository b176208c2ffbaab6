//go:build linux

package faults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/audit"
	"github.com/prdcredit/ccnode/node/faults"
)

// TestMain removes the ccnode binary every test of the suite shares.
func TestMain(m *testing.M) { testkit.Main(m) }

// ccnode is the suite's ccnode binary, built by the first test that asks.
func ccnode(t testing.TB) faults.Bin { return faults.Bin(testkit.CCNode(t)) }

// region is one region on its own embedded ledger, with records on a
// subject, a registered bank and that bank's consent on the subject.
type region struct {
	*faults.Node
	bank     faults.Bank
	grant    credit.ConsentGrant
	grantDoc string // the countersigned consent file
}

// startRegion sets up and starts a region (Shenzhen) on the embedded
// ledger, its config changed by edit (when not nil).
func startRegion(t *testing.T, edit func(*node.Config)) *region {
	t.Helper()
	bin := ccnode(t)
	root := t.TempDir()
	n := faults.InitEmbedded(t, bin, "440300", filepath.Join(root, "sz"), edit)
	feed := filepath.Join(root, "feed.jsonl")
	bin.Must(t, "gen", "--region", "440300", "--enterprises", "4", "--seed", "11", "--quiet", "-o", feed)
	subject := faults.FirstSubject(t, feed)
	bin.Must(t, "import", "--quiet", "--data-dir", n.Dir, feed)
	n.Start(t)
	n.WaitReady(t, time.Minute)

	r := &region{Node: n}
	var err error
	if r.bank, err = faults.NewBank("bank-faults"); err != nil {
		t.Fatal(err)
	}
	if err := n.Client().RegisterBank(context.Background(), r.bank.Member()); err != nil {
		t.Fatalf("register bank: %v", err)
	}
	entKey, entCert := n.CertifiedEnterprise(t, bin, subject, root)
	r.grantDoc = filepath.Join(root, "consent.json")
	bin.Must(t, "consent", "grant", "--admin", n.AdminURL(), "--operator-token-file", filepath.Join(n.Dir, "operator.token"),
		"--enterprise-key", entKey, "--enterprise-cert", entCert, "--uscc", string(subject), "--bank", string(r.bank.ID),
		"--region", "440300", "--categories", "registration,tax,penalty,judicial", "--out", r.grantDoc)
	if b, err := os.ReadFile(r.grantDoc); err != nil || json.Unmarshal(b, &r.grant) != nil || len(r.grant.RegionSig) == 0 {
		t.Fatalf("countersigned consent %s: %v %s", r.grantDoc, err, b)
	}
	return r
}

// runAudit runs `ccnode audit --json` and decodes its report; exit 0 and 2
// are reports (no finding, findings), anything else fails t.
func runAudit(t *testing.T, args ...string) (audit.Report, faults.Result) {
	t.Helper()
	res := ccnode(t).Run(t, append([]string{"audit", "--json", "--no-progress"}, args...)...)
	var rep audit.Report
	if err := json.Unmarshal([]byte(res.Stdout), &rep); err != nil || (res.Code != 0 && res.Code != 2) {
		t.Fatalf("audit exit %d, output not a report: %v\n%s%s", res.Code, err, res.Stdout, res.Stderr)
	}
	return rep, res
}

func itoa(n int) string { return fmt.Sprint(n) }
