package main

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// runNode starts `ccnode run` with args, as an operator does, and returns
// the process (killed at the test's end) and the bank and admin API URLs
// it prints on its first two lines.
func runNode(t *testing.T, bin string, args ...string) (run *exec.Cmd, bankURL, adminURL string) {
	t.Helper()
	run = exec.Command(bin, append([]string{"run"}, args...)...)
	stdout, _ := run.StdoutPipe()
	run.Stderr = os.Stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Process.Kill(); run.Wait() })
	br := bufio.NewReader(stdout)
	var urls []string
	for _, prefix := range []string{"bank API on ", "admin API on "} {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("run printed no %saddress: %v", prefix, err)
		}
		_, url, ok := strings.Cut(strings.TrimSpace(line), prefix)
		if !ok {
			t.Fatalf("run: %q, want %s...", line, prefix)
		}
		urls = append(urls, url)
	}
	return run, urls[0], urls[1]
}

// mustCLI returns a runner of the ccnode binary bin that gives a
// command's standard output and fails the test, with both outputs, when
// the command fails.
func mustCLI(t *testing.T, bin string) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("ccnode %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out)
	}
}
