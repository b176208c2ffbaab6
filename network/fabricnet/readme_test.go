package fabricnet

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestREADMENamesOnlyRepositoryFiles: every Markdown link and every .md
// file the package README names is in the repository (it once sent
// readers to a FABRIC.md that is not).
func TestREADMENamesOnlyRepositoryFiles(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	root := moduleRootOf(t)
	link := regexp.MustCompile(`\]\(([^)#]+)\)`)
	md := regexp.MustCompile("[A-Za-z0-9_./-]+\\.md\\b")
	var names []string
	for _, m := range link.FindAllStringSubmatch(string(b), -1) {
		names = append(names, m[1])
	}
	names = append(names, md.FindAllString(string(b), -1)...)
	for _, n := range names {
		if regexp.MustCompile(`^[a-z]+://`).MatchString(n) {
			continue
		}
		if _, err := os.Stat(n); err == nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, n)); err == nil {
			continue
		}
		t.Errorf("network/fabricnet/README.md names %s, which is neither next to it nor under the repository root", n)
	}
}

func moduleRootOf(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(wd, "..", "..")
}
