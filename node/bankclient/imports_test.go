package bankclient_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsOnlyCreditAndStdlib: a bank links this package without the
// node, so it may import package credit and the standard library only.
func TestImportsOnlyCreditAndStdlib(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range ast.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(p, "/")
			if p != "github.com/prdcredit/ccnode/credit" && strings.Contains(first, ".") {
				t.Errorf("%s imports %s: bankclient may import only package credit and the standard library", f, p)
			}
		}
	}
}
