package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/internal/testkit"
)

// TestStatusCommand runs `ccnode status` against a `ccnode run` process
// and reads its summary; then against the same address once the node has
// stopped, where it must fail saying where it looked.
func TestStatusCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := testkit.CCNode(t)
	dir := t.TempDir()
	if out, err := exec.Command(bin, "init", "--region", "440300", "--dir", dir, "--tls",
		"--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	run, bankURL, adminURL := runNode(t, bin, "--config", filepath.Join(dir, "ccnode.yaml"), "--log-level", "warn")
	urls := []string{bankURL, adminURL}
	status := func() (string, error) {
		out, err := exec.Command(bin, "status", "--node", urls[0], "--admin", urls[1],
			"--ca-file", filepath.Join(dir, "tls.crt"), "--timeout", "5s").CombinedOutput()
		return string(out), err
	}
	var out string
	testkit.Eventually(t, 20*time.Second, func() error {
		var err error
		out, err = status()
		if err != nil {
			return err
		}
		return nil
	})
	t.Logf("ccnode status:\n%s", out)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^node +` + regexp.QuoteMeta(urls[0]) + `: ready$`),
		regexp.MustCompile(`(?m)^admin +` + regexp.QuoteMeta(urls[1]) + `: ok$`),
		regexp.MustCompile(`(?m)^build +ccnode \S+, revision \S+, go1\.`),
		regexp.MustCompile(`(?m)^ledger +view \S+ old$`),
		regexp.MustCompile(`(?m)^anchoring +0 of 0 receipts anchored`),
		regexp.MustCompile(`(?m)^regions +no query fanned out since start$`),
		// status's own /readyz, counted by the running node before the scrape.
		regexp.MustCompile(`(?m)^http +bank: 200 [1-9]`),
		regexp.MustCompile(`(?m)^store +lsm \d.*; filesystem .* free of `),
	} {
		if !want.MatchString(out) {
			t.Errorf("ccnode status lacks %s", want)
		}
	}

	run.Process.Kill()
	run.Wait()
	out, err := status()
	if err == nil || !strings.Contains(out, urls[0]) {
		t.Fatalf("status of a stopped node: %v\n%s", err, out)
	}
}
