package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// servedRegion is one region run as `ccnode run`, initialised by `ccnode
// init` in dir, with (when banked) a bank and a consent on subject for
// the tax and penalty categories.
type servedRegion struct {
	bin, dir, cfg     string
	bankURL, adminURL string
	run               *exec.Cmd
	subject           credit.USCC
	bankKey, consent  string
	admin             *node.Client
}

func (s *servedRegion) cli(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(s.bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ccnode %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func serveRegion(t *testing.T, banked bool) *servedRegion {
	t.Helper()
	s := &servedRegion{bin: testkit.CCNode(t), dir: t.TempDir()}
	s.cfg = filepath.Join(s.dir, "ccnode.yaml")
	s.cli(t, "init", "--region", "440300", "--dir", s.dir, "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
	s.run, s.bankURL, s.adminURL = runNode(t, s.bin, "--config", s.cfg, "--anchor-interval", "200ms", "--log-level", "warn")
	tok, err := os.ReadFile(filepath.Join(s.dir, "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	s.admin = &node.Client{Base: s.bankURL, Admin: s.adminURL, OperatorToken: strings.TrimSpace(string(tok))}
	waitServing(t, s.admin)
	if !banked {
		return s
	}
	s.bankKey = filepath.Join(s.dir, "bank-a.key")
	key, err := node.GenerateKeyFile(s.bankKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.admin.RegisterBank(context.Background(), credit.BankMember{ID: "bank-a", PubKey: key.Public().(ed25519.PublicKey)}); err != nil {
		t.Fatal(err)
	}
	s.subject = testkit.USCC(t, "440300", 1)
	caDir, entDir := filepath.Join(s.dir, "authority"), filepath.Join(s.dir, "enterprise")
	tokFile := filepath.Join(s.dir, "operator.token")
	s.cli(t, "authority", "create", "--name", "Shenzhen Test Authority", "--out", caDir)
	s.cli(t, "authority", "issue", "--authority", caDir, "--uscc", string(s.subject), "--name", "Test Enterprise", "--out", entDir)
	s.cli(t, "authority", "register", "--admin", s.adminURL, "--operator-token-file", tokFile, "--authority", caDir)
	s.consent = filepath.Join(s.dir, "consent.json")
	s.cli(t, "consent", "grant", "--admin", s.adminURL, "--operator-token-file", tokFile,
		"--enterprise-key", filepath.Join(entDir, "enterprise.key"), "--enterprise-cert", filepath.Join(entDir, "enterprise.pem"),
		"--uscc", string(s.subject), "--bank", "bank-a", "--region", "440300", "--categories", "tax,penalty", "--out", s.consent)
	return s
}

// query asks the region as bank-a on the consent and returns how many
// records the region answered with.
func (s *servedRegion) query(t *testing.T) int {
	t.Helper()
	out := s.cli(t, "query", "--node", s.bankURL, "--bank", "bank-a", "--key", s.bankKey, "--consent", s.consent, "--json")
	var res node.Consolidated
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Regions) != 1 || res.Regions[0].Status != node.StatusOK {
		t.Fatalf("query: %v\n%s", err, out)
	}
	return res.RecordCount
}

// stop ends the node as an operator does (SIGTERM) and waits for it.
func (s *servedRegion) stop(t *testing.T) {
	t.Helper()
	s.run.Process.Signal(syscall.SIGTERM)
	s.run.Wait()
}

// subjectLines are n record lines on u in the consent's categories.
func subjectLines(u credit.USCC, from, n int) string {
	var b strings.Builder
	for i := from; i < from+n; i++ {
		cat := credit.Tax
		if i%2 == 1 {
			cat = credit.Penalty
		}
		fmt.Fprintf(&b, `{"uscc":%q,"source":"sztax","source_id":"s%d","category":%q,"date":"2024-%02d-%02d","attrs":{"amount":%d}}`+"\n",
			u, i, cat, 1+i%12, 1+i%28, i)
	}
	return b.String()
}

// TestWorkWhileServing runs `ccnode import`, `receipts export` and `audit
// snapshot` with the config of a node `ccnode run` is serving (before,
// each failed on Badger's directory lock). The import is fed through
// standard input in two halves: between them, with the import still in
// progress, `ccnode status` shows it and a bank query is answered with the
// records committed so far; after it, with all of them. Its error file and
// exit code are those of the same feed imported offline. The export and
// the snapshot taken from the running node audit with no finding, and the
// export equals the one read offline once the node has stopped.
func TestWorkWhileServing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	s := serveRegion(t, true)
	if n := s.query(t); n != 0 {
		t.Fatalf("query before any import: %d records", n)
	}
	tmp := t.TempDir()
	path, _, _ := feed(t, tmp, 6000)
	other := strings.SplitAfter(string(mustRead(t, path)), "\n")
	half := len(other) / 2
	first := subjectLines(s.subject, 0, 40) + strings.Join(other[:half], "")
	second := strings.Join(other[half:], "") + subjectLines(s.subject, 40, 60)

	// The same feed imported offline: its error file and exit code are
	// what the live path must give.
	refErr := filepath.Join(tmp, "ref-errors.jsonl")
	ref := runCcnode(t, s.bin, strings.NewReader(first+second), "import", "--quiet", "--data-dir", filepath.Join(tmp, "ref"),
		"--errors", refErr, "-")
	if ref.code != importExitRejected {
		t.Fatalf("offline import: exit %d, want %d\n%s", ref.code, importExitRejected, ref.stderr)
	}
	counts := regexp.MustCompile(`imported \d+ records in \S+ \(\d+ records/s\): (.*)`)

	errFile := filepath.Join(tmp, "errors.jsonl")
	imp := exec.Command(s.bin, "import", "--config", s.cfg, "--admin", s.adminURL, "--errors", errFile, "--batch-lines", "100", "-")
	stdin, err := imp.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var impOut, impErr strings.Builder
	imp.Stdout, imp.Stderr = &impOut, &impErr
	if err := imp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { imp.Process.Kill(); imp.Wait() })
	if _, err := io.WriteString(stdin, first); err != nil {
		t.Fatal(err)
	}
	firstLines := int64(strings.Count(first, "\n"))
	testkit.Eventually(t, 30*time.Second, func() error {
		list, err := s.admin.Imports(context.Background())
		if err != nil {
			return err
		}
		// Every full batch of the first half is committed.
		if len(list) != 1 || list[0].Summary.Lines < firstLines-100 {
			return fmt.Errorf("imports in progress: %+v", list)
		}
		return nil
	})
	status := s.cli(t, "status", "--node", s.bankURL)
	if !strings.Contains(status, "imports    1 in progress: ") {
		t.Fatalf("status during an import does not show it:\n%s", status)
	}
	if n := s.query(t); n != 40 {
		t.Fatalf("query during the import: %d records, want the 40 committed so far", n)
	}
	if _, err := io.WriteString(stdin, second); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	err = imp.Wait()
	if code := imp.ProcessState.ExitCode(); code != importExitRejected {
		t.Fatalf("import through the running node: exit %d (%v), want %d\n%s%s", code, err, importExitRejected, impOut.String(), impErr.String())
	}
	if got, want := string(mustRead(t, errFile)), string(mustRead(t, refErr)); got != want || want == "" {
		t.Fatalf("error file through the running node differs from the offline one:\n%s\nwant:\n%s", got, want)
	}
	if got, want := counts.FindStringSubmatch(impOut.String()), counts.FindStringSubmatch(ref.stdout); got == nil || want == nil || got[1] != want[1] {
		t.Fatalf("summary through the running node: %q, offline: %q", impOut.String(), ref.stdout)
	}
	if n := s.query(t); n != 100 {
		t.Fatalf("query after the import: %d records, want 100", n)
	}
	if status := s.cli(t, "status", "--node", s.bankURL); !strings.Contains(status, "imports    none in progress") {
		t.Fatalf("status after the import:\n%s", status)
	}

	// Receipts export and ledger snapshot from the running node.
	live := filepath.Join(tmp, "live-export.jsonl")
	snap := filepath.Join(tmp, "snapshot.json")
	// Found from the config alone: its admin.addr has port 0, so through
	// the address the running node wrote beside its data.
	s.cli(t, "receipts", "export", "--config", s.cfg, "-o", live)
	s.cli(t, "audit", "snapshot", "--config", s.cfg, "-o", snap)
	exp := strings.Split(strings.TrimSpace(string(mustRead(t, live))), "\n")
	if h, err := credit.DecodeExportHeader([]byte(exp[0])); err != nil || h.Size != 3 || len(exp) != 4 {
		t.Fatalf("export from the running node: header %+v (%v), %d lines", h, err, len(exp))
	}
	// Exit 0: no finding (2 would be findings).
	if out := s.cli(t, "audit", "--snapshot", snap, live); !regexp.MustCompile(`(?m)^440300\s+3\s+3\s`).MatchString(out) {
		t.Fatalf("audit of the running node's export:\n%s", out)
	}
	s.stop(t)
	offline := strings.Split(strings.TrimSpace(s.cli(t, "receipts", "export", "--config", s.cfg)), "\n")
	if strings.Join(offline[1:], "\n") != strings.Join(exp[1:], "\n") || len(offline) != len(exp) {
		t.Fatalf("export from the running node differs from the offline one:\n%s\nwant:\n%s", strings.Join(exp, "\n"), strings.Join(offline, "\n"))
	}
}

// TestLiveImportResumed kills `ccnode import` part way through a file it
// streams to a running node; the same command run again resumes from the
// node's stored progress (sending only the rest), and the node's store
// ends as an uninterrupted offline import of the file leaves one.
func TestLiveImportResumed(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	s := serveRegion(t, false)
	tmp := t.TempDir()
	path, _, _ := feed(t, tmp, 40000)
	refDir := filepath.Join(tmp, "ref")
	if r := runCcnode(t, s.bin, nil, "import", "--quiet", "--data-dir", refDir, "--errors", filepath.Join(tmp, "ref-errors"), path); r.code != importExitRejected {
		t.Fatalf("offline import: exit %d\n%s", r.code, r.stderr)
	}
	want := storeDump(t, refDir)

	imp := exec.Command(s.bin, "import", "--config", s.cfg, "--batch-lines", "200",
		"--progress-interval", "1ns", "--errors", filepath.Join(tmp, "errors-1"), path)
	stderr, err := imp.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := imp.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	seen := 0
	for sc.Scan() {
		if strings.Contains(sc.Text(), "import progress") {
			if seen++; seen == 3 {
				imp.Process.Signal(syscall.SIGKILL)
				break
			}
		}
	}
	io.Copy(io.Discard, stderr)
	imp.Wait()
	if ws := imp.ProcessState.Sys().(syscall.WaitStatus); ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the import ended before the kill (%v): use a bigger feed", imp.ProcessState)
	}

	r := runCcnode(t, s.bin, nil, "import", "--config", s.cfg, "--errors", filepath.Join(tmp, "errors-2"), path)
	if r.code != importExitRejected {
		t.Fatalf("resumed import: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "resuming input") {
		t.Fatalf("the rerun did not resume from the stored progress:\n%s", r.stderr)
	}
	s.stop(t)
	// Stopped: the same command now opens the store itself (and skips the
	// file, already imported), and the stored data is unchanged.
	if r := runCcnode(t, s.bin, nil, "import", "--config", s.cfg, path); r.code != importExitOK || !strings.Contains(r.stdout, "(1 already done)") {
		t.Fatalf("import into the stopped node: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := storeDump(t, s.dir); got != want {
		t.Fatal("the node's store after a killed and resumed import differs from an uninterrupted offline import")
	}
}
