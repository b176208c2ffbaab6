package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prdcredit/ccnode/internal/testkit"
)

// TestImportProgressInEveryPhase: an import logs its progress at the
// interval asked while reading, while merging with the store and while
// writing the tables (the write phase printed nothing before), for an
// incremental load and a bulk load; --quiet prints none of it.
func TestImportProgressInEveryPhase(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := testkit.CCNode(t)
	tmp := t.TempDir()
	feedFile := filepath.Join(tmp, "feed.jsonl")
	if r := runCcnode(t, bin, nil, "gen", "--region", "440300", "--enterprises", "200", "--seed", "1", "--quiet", "-o", feedFile); r.code != 0 {
		t.Fatalf("gen: %d\n%s", r.code, r.stderr)
	}
	for _, c := range []struct {
		name   string
		args   []string
		phases []string
	}{
		{"load", nil, []string{"merge", "write"}},
		{"bulk", []string{"--bulk"}, []string{`"merge and write"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"import", "--progress-interval", "1ms", "--data-dir", filepath.Join(tmp, c.name)}, c.args...)
			r := runCcnode(t, bin, nil, append(args, feedFile)...)
			if r.code != importExitOK {
				t.Fatalf("import: exit %d\n%s", r.code, r.stderr)
			}
			for _, p := range append([]string{""}, c.phases...) {
				re := regexp.MustCompile(`(?m)^.*msg="import progress".*` + regexp.QuoteMeta(p) + `.*$`)
				if p != "" {
					re = regexp.MustCompile(`(?m)^.*msg="import progress" phase=` + regexp.QuoteMeta(p) + ` .*$`)
				}
				if !re.MatchString(r.stderr) {
					t.Errorf("no progress line of phase %q:\n%s", p, r.stderr)
				}
			}
			q := runCcnode(t, bin, nil, append(append([]string{"import", "--quiet", "--progress-interval", "1ms", "--data-dir", filepath.Join(tmp, c.name+"-quiet")}, c.args...), feedFile)...)
			if q.code != importExitOK || strings.TrimSpace(q.stderr) != "" {
				t.Fatalf("import --quiet: exit %d, printed:\n%s", q.code, q.stderr)
			}
		})
	}
}
