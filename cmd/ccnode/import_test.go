package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/store"
)

// buildCcnode builds the binary under test.
func buildCcnode(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ccnode")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// feed writes n record lines over n/150+1 enterprises, then a tail of
// duplicates, corrections and bad lines.
func feed(t *testing.T, dir string, n int) (path string, subjects []credit.USCC, bad int) {
	t.Helper()
	var b strings.Builder
	cats := credit.AllCategories()
	var lines []string
	for i := 0; i < n; i++ {
		if i%150 == 0 {
			u, err := credit.CompleteUSCC(fmt.Sprintf("91440300%09d", 1000+i/150))
			if err != nil {
				t.Fatal(err)
			}
			subjects = append(subjects, u)
		}
		lines = append(lines, fmt.Sprintf(`{"uscc":%q,"source":"dept%02d","source_id":"r%d","category":%q,"date":"20%02d-%02d-%02d","attrs":{"amount":%d,"authority":"Shenzhen Municipal Administration of Market Regulation"}}`,
			subjects[len(subjects)-1], i%37, i, cats[i%len(cats)], 10+i%15, 1+i%12, 1+i%28, i))
	}
	for i, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
		if i%997 == 0 {
			b.WriteString(`{"uscc":"91440300000000000X","source":"x","source_id":"1","category":"tax","date":"2020-01-01","attrs":{}}` + "\n")
			bad++
		}
		if i%1009 == 500 {
			b.WriteString(lines[i/2] + "\n")                                                                // duplicate
			b.WriteString(strings.Replace(lines[i/3], `"attrs":{`, `"attrs":{"corrected":true,`, 1) + "\n") // correction
		}
	}
	path = filepath.Join(dir, "feed.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, subjects, bad
}

// storeDump opens a data directory (no process may hold it) and returns
// every record in key order and the stats.
func storeDump(t *testing.T, dir string) string {
	t.Helper()
	db, err := store.Open(context.Background(), store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	n := 0
	if err := db.Scan(context.Background(), func(r credit.Record) error {
		b.Write(r.AppendCanonical(nil))
		b.WriteByte('\n')
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	st, err := db.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != int64(n) {
		t.Fatalf("stats say %d records, the store holds %d", st.Records, n)
	}
	js, _ := json.Marshal(st)
	b.Write(js)
	return b.String()
}

type cliResult struct {
	stdout, stderr string
	code           int
}

func runCcnode(t *testing.T, bin string, stdin io.Reader, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return cliResult{out.String(), errb.String(), code}
}

func TestImportCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildCcnode(t)
	tmp := t.TempDir()
	path, subjects, bad := feed(t, tmp, 20000)
	refDir := filepath.Join(tmp, "ref")
	errFile := filepath.Join(tmp, "errors.jsonl")

	res := runCcnode(t, bin, nil, "import", "--quiet", "--data-dir", refDir, "--errors", errFile, path)
	if res.code != importExitRejected {
		t.Fatalf("import with bad lines: exit %d, want %d\n%s", res.code, importExitRejected, res.stderr)
	}
	errs, err := os.ReadFile(errFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(errs), "\n"); got != bad {
		t.Fatalf("error file has %d lines, want %d", got, bad)
	}
	want := storeDump(t, refDir)

	t.Run("killed with SIGKILL and resumed", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		for _, killAfter := range []int{1, 4, 9} {
			killed := killImportAfter(t, bin, dir, path, killAfter)
			if !killed {
				t.Fatalf("the import finished before progress line %d; use a bigger feed", killAfter)
			}
		}
		res := runCcnode(t, bin, nil, "import", "--quiet", "--data-dir", dir, "--errors", filepath.Join(t.TempDir(), "e"), path)
		if res.code != importExitRejected && res.code != importExitOK {
			t.Fatalf("resumed import: exit %d\n%s", res.code, res.stderr)
		}
		if got := storeDump(t, dir); got != want {
			t.Fatalf("store after kills and resume differs from an uninterrupted import")
		}
	})

	t.Run("exit codes", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		good := filepath.Join(t.TempDir(), "good.jsonl")
		lines := strings.SplitN(string(mustRead(t, path)), "\n", 3)
		os.WriteFile(good, []byte(lines[0]+"\n"), 0o644)
		if r := runCcnode(t, bin, nil, "import", "--quiet", "--data-dir", dir, good); r.code != importExitOK {
			t.Fatalf("good file: exit %d\n%s", r.code, r.stderr)
		}
		if r := runCcnode(t, bin, nil, "import", "--quiet", "--data-dir", dir, filepath.Join(tmp, "missing.jsonl")); r.code != importExitFailed {
			t.Fatalf("missing file: exit %d", r.code)
		}
	})

	t.Run("stdin, bulk, report and stats", func(t *testing.T) {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		stdinDir := filepath.Join(t.TempDir(), "data")
		r := runCcnode(t, bin, f, "import", "--quiet", "--json", "--format", "jsonl", "--data-dir", stdinDir, "--errors", filepath.Join(t.TempDir(), "e"), "-")
		if r.code != importExitRejected {
			t.Fatalf("stdin: exit %d\n%s", r.code, r.stderr)
		}
		var sum struct {
			Records  int64 `json:"records"`
			Rejected int64 `json:"rejected"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || sum.Rejected != int64(bad) {
			t.Fatalf("summary %q: %v", r.stdout, err)
		}
		if got := storeDump(t, stdinDir); got != want {
			t.Fatal("stdin import differs")
		}

		bulkDir := filepath.Join(t.TempDir(), "data")
		r = runCcnode(t, bin, nil, "import", "--quiet", "--bulk", "--tmp-dir", t.TempDir(), "--data-dir", bulkDir, "--errors", filepath.Join(t.TempDir(), "e"), path)
		if r.code != importExitRejected {
			t.Fatalf("bulk: exit %d\n%s", r.code, r.stderr)
		}
		if got := storeDump(t, bulkDir); got != want {
			t.Fatal("bulk import differs")
		}
		r = runCcnode(t, bin, nil, "import", "--quiet", "--bulk", "--data-dir", bulkDir, path)
		if r.code != importExitFailed {
			t.Fatalf("second bulk: exit %d", r.code)
		}

		r = runCcnode(t, bin, nil, "report", "--json", "--data-dir", bulkDir, "--categories", "tax,penalty", string(subjects[3]))
		var rep credit.Report
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 {
			t.Fatalf("report: %v exit %d\n%s", err, r.code, r.stderr)
		}
		if rep.Subject != subjects[3] || len(rep.Sections) != 2 || rep.Sections[0].Category != credit.Penalty || rep.Sections[1].Category != credit.Tax {
			t.Fatalf("report %+v", rep)
		}
		cmd := exec.Command(bin, "stats", "--json")
		cmd.Env = append(os.Environ(), "CCNODE_DATA_DIR="+bulkDir)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		var st store.Stats
		if err := json.Unmarshal(out, &st); err != nil || st.Subjects != int64(len(subjects)) {
			t.Fatalf("stats %s: %v", out, err)
		}
		r = runCcnode(t, bin, nil, "report", "--data-dir", bulkDir, "91440300000000000X")
		if r.code != 1 {
			t.Fatalf("report of a bad USCC: exit %d", r.code)
		}
	})
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// killImportAfter runs an import that logs progress after every batch and
// SIGKILLs it once it has logged n progress lines (n batches handed to
// the store; the kill lands while later batches are parsed and committed).
// It reports whether the process was killed before finishing.
func killImportAfter(t *testing.T, bin, dir, path string, n int) bool {
	t.Helper()
	cmd := exec.Command(bin, "import", "--data-dir", dir, "--batch-lines", "300",
		"--progress-interval", "1ns", "--errors", filepath.Join(t.TempDir(), "e"), path)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	seen := 0
	killed := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "msg=\"import progress\"") {
			seen++
			if seen == n {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
				break
			}
		}
	}
	io.Copy(io.Discard, stderr)
	err = cmd.Wait()
	if killed {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("child did not die of SIGKILL: %v", err)
		}
	}
	return killed
}
