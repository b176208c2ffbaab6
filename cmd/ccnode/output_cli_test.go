package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prdcredit/ccnode/internal/testkit"
)

// TestVersion: `ccnode --version` prints the module version and Go
// version the binary records, and the VCS revision when there is one.
func TestVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := testkit.CCNode(t)
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	mod, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	// "\tmod\tgithub.com/prdcredit/ccnode\t(devel)\t..."
	var modVersion, goVersion string
	for _, l := range strings.Split(string(mod), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == "mod" {
			modVersion = f[2]
		}
		if strings.HasPrefix(l, bin+": ") {
			goVersion = strings.TrimPrefix(l, bin+": ")
		}
	}
	if !strings.HasPrefix(string(out), "ccnode version "+modVersion) || !strings.Contains(string(out), goVersion) {
		t.Fatalf("--version printed %q; the binary records module version %q, %s", out, modVersion, goVersion)
	}

	got := formatVersion(&debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-12-01T00:00:00Z"}, {Key: "vcs.modified", Value: "true"}}})
	if want := "v1.2.3 (revision abc123, 2026-12-01T00:00:00Z, modified) go1.26.0"; got != want {
		t.Fatalf("formatVersion = %q, want %q", got, want)
	}
}

// TestOutputFlags: every command takes --log-format, --log-level and
// --quiet, before or after its name, through one logger setup: import
// logged key=value text whatever was asked, and its --quiet still
// printed INFO lines.
func TestOutputFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := testkit.CCNode(t)
	tmp := t.TempDir()
	feed := filepath.Join(tmp, "sz.jsonl")
	if out, err := exec.Command(bin, "gen", "--region", "440300", "--enterprises", "3", "--seed", "1", "-o", feed).CombinedOutput(); err != nil {
		t.Fatalf("gen: %v\n%s", err, out)
	}
	run := func(args ...string) (stdout, stderr string, err error) {
		var o, e bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &o, &e
		err = cmd.Run()
		return o.String(), e.String(), err
	}
	n := 0
	dataDir := func() string { n++; return filepath.Join(tmp, "data", string(rune('a'+n))) }

	t.Run("json", func(t *testing.T) {
		for _, args := range [][]string{
			{"import", "--log-format", "json", "--data-dir", dataDir(), feed},
			{"--log-format", "json", "import", "--data-dir", dataDir(), feed},
		} {
			_, stderr, err := run(args...)
			if err != nil {
				t.Fatalf("%v: %v\n%s", args, err, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) == 0 || lines[0] == "" {
				t.Fatalf("%v: no log lines", args)
			}
			for _, l := range lines {
				var rec struct{ Level, Msg string }
				if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.Msg == "" {
					t.Fatalf("%v: log line %q is not a JSON record: %v", args, l, err)
				}
			}
		}
	})
	t.Run("quiet", func(t *testing.T) {
		node := filepath.Join(tmp, "node")
		initRegion(t, bin, "440300", node)
		for _, args := range [][]string{
			{"receipts", "export", "--config", filepath.Join(node, "ccnode.yaml"), "--out", filepath.Join(tmp, "answered.jsonl"), "--quiet"},
			{"import", "--quiet", "--data-dir", dataDir(), feed},
			{"-q", "import", "--data-dir", dataDir(), feed},
			{"gen", "--region", "440300", "--enterprises", "1", "--quiet", "-o", filepath.Join(tmp, "one.jsonl")},
		} {
			stdout, stderr, err := run(args...)
			if err != nil {
				t.Fatalf("%v: %v\n%s", args, err, stderr)
			}
			if stderr != "" {
				t.Fatalf("%v: --quiet printed on standard error:\n%s", args, stderr)
			}
			if args[0] == "import" && !strings.HasPrefix(stdout, "imported ") {
				t.Fatalf("%v: the result on standard output went missing: %q", args, stdout)
			}
		}
	})
	t.Run("level", func(t *testing.T) {
		_, stderr, err := run("import", "--log-level", "warn", "--data-dir", dataDir(), feed)
		if err != nil || strings.Contains(stderr, "level=INFO") {
			t.Fatalf("--log-level warn: %v\n%s", err, stderr)
		}
		_, stderr, err = run("import", "--data-dir", dataDir(), feed)
		if err != nil || !strings.Contains(stderr, "level=INFO") {
			t.Fatalf("default text at info: %v\n%s", err, stderr)
		}
	})
	t.Run("refused", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"stats", "--data-dir", tmp, "--log-format", "xml"}, `--log-format "xml": want text or json`},
			{[]string{"--log-level", "loud", "stats", "--data-dir", tmp}, `--log-level "loud": want debug, info, warn or error`},
			{[]string{"receipts", "export", "--config", feed, "--out", filepath.Join(tmp, "x"), "--log-level", "loud"}, `--log-level "loud"`},
		} {
			_, stderr, err := run(c.args...)
			if err == nil || !strings.Contains(stderr, c.want) {
				t.Fatalf("%v: %v\n%s\nwant %q", c.args, err, stderr, c.want)
			}
		}
	})
}
