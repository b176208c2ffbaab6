package credit_test

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/prdcredit/ccnode/credit"
)

// documentedCode is one row of a documented table of refusal codes.
type documentedCode struct {
	code   credit.Code
	status int
	retry  bool
}

// codeRow is a table row: | `code` | status | yes/no | ...
var codeRow = regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| ([0-9]{3}) \\| (yes|no) \\|")

func codeTable(text string) []documentedCode {
	var out []documentedCode
	for _, m := range codeRow.FindAllStringSubmatch(text, -1) {
		st, _ := strconv.Atoi(m[2])
		out = append(out, documentedCode{credit.Code(m[1]), st, m[3] == "yes"})
	}
	return out
}

func codesTable() []documentedCode {
	var out []documentedCode
	for _, c := range credit.Codes() {
		out = append(out, documentedCode{c, c.HTTPStatus(), c.Retryable()})
	}
	return out
}

func sameTable(t *testing.T, where string, got []documentedCode) {
	t.Helper()
	if want := codesTable(); !slices.Equal(got, want) {
		t.Errorf("%s lists the refusal codes\n%v\nbut credit.Codes() (with HTTP status and retry) is\n%v", where, got, want)
	}
}

// TestRefusalCodesDocumented: README's "Refusal codes" table and the
// OpenAPI document's Code schema are credit.Codes(), in its order, with
// each code's HTTP status and whether retrying helps; the error body's
// code and a region's reason are that schema.
func TestRefusalCodesDocumented(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Refusal codes\n")
	if !ok {
		t.Fatal(`README.md has no "## Refusal codes" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	sameTable(t, `README.md's "Refusal codes"`, codeTable(section))

	b, err := os.ReadFile("../node/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type schema struct {
		Description string            `yaml:"description"`
		Enum        []credit.Code     `yaml:"enum"`
		Properties  map[string]schema `yaml:"properties"`
		Ref         string            `yaml:"$ref"`
	}
	var doc struct {
		Components struct {
			Schemas map[string]schema `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	s := doc.Components.Schemas
	code, ok := s["Code"]
	if !ok {
		t.Fatal("node/openapi.yaml has no Code schema")
	}
	if !slices.Equal(code.Enum, credit.Codes()) {
		t.Errorf("node/openapi.yaml's Code enum is\n%v\nwant credit.Codes()\n%v", code.Enum, credit.Codes())
	}
	sameTable(t, "node/openapi.yaml's Code description", codeTable(code.Description))
	const ref = "#/components/schemas/Code"
	if got := s["Error"].Properties["code"].Ref; got != ref {
		t.Errorf("Error.code is %q, want %s", got, ref)
	}
	if got := s["RegionStatus"].Properties["reason"].Ref; got != ref {
		t.Errorf("RegionStatus.reason is %q, want %s", got, ref)
	}
}
