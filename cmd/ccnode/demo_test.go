package main

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node/consortium"
)

// `ccnode demo --data-dir D` run twice on one folder is a restart: the
// nodes come back on new ports and republish their records. The second
// run audits every receipt of both runs and must find nothing, and exit 0.
func TestDemoTwiceOnOneFolderAuditsClean(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the demo twice")
	}
	bin := testkit.CCNode(t)
	dir := filepath.Join(t.TempDir(), "demo")
	var receipts []uint64
	for run := range 2 {
		res := runCcnode(t, bin, nil, "demo", "--data-dir", dir, "--enterprises", "20", "--queries", "3", "--json")
		if res.code != 0 {
			t.Fatalf("run %d: exit %d\n%s\n%s", run+1, res.code, res.stdout, res.stderr)
		}
		var rep consortium.DemoReport
		if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
			t.Fatalf("run %d: report: %v\n%s", run+1, err, res.stdout)
		}
		if rep.Audit.Findings != 0 {
			t.Fatalf("run %d: %d findings %v", run+1, rep.Audit.Findings, rep.Audit.ByRule)
		}
		receipts = append(receipts, rep.Audit.Receipts)
	}
	// 6 queries x 3 regions per run; the second audit covers both runs.
	if receipts[0] != 18 || receipts[1] != 36 {
		t.Fatalf("receipts audited: %v, want [18 36]", receipts)
	}
}

// The demo's exit status follows its audit: any finding is status 2, as
// for `ccnode audit`.
func TestDemoVerdict(t *testing.T) {
	for _, tc := range []struct {
		findings int
		code     int
	}{{0, 0}, {1, 2}, {302, 2}} {
		err := demoVerdict(&consortium.DemoReport{Audit: consortium.DemoAudit{Findings: tc.findings}})
		code := 0
		if err != nil {
			code = 1
			var ec exitCoder
			if errors.As(err, &ec) {
				code = ec.ExitCode()
			}
		}
		if code != tc.code {
			t.Errorf("%d findings: exit %d (%v), want %d", tc.findings, code, err, tc.code)
		}
	}
}
