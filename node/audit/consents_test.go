package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/prdcredit/ccnode/credit"
)

// TestConsentFiles: the auditor's consent documents are read from a file,
// one at a time, as a JSON array or one per line, and judged as the same
// documents given in memory; a file that holds none is an input error.
func TestConsentFiles(t *testing.T) {
	f := newFixture(t, 12)
	f.anchor()
	given := f.consents["consent-a-0001"]
	given.Purpose = credit.PurposeGuarantee // the auditor's copy differs
	other := f.grant("consent-a-0009", bankB, []credit.Category{credit.Penalty}, t0)
	export := BytesSource("sz.jsonl", encodeExport(t, credit.ExportAnswered, sz, f.answeredLines()))
	ctx := context.Background()
	want, err := Run(ctx, Inputs{Exports: []Source{export}, Consents: []credit.ConsentGrant{given, other}}, f.snap, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if want.ByRule[RuleConsentDocument] != 12 {
		t.Fatalf("in memory: %v", want.ByRule)
	}
	array, err := json.MarshalIndent([]credit.ConsentGrant{given, other}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var lines bytes.Buffer
	for _, g := range []credit.ConsentGrant{other, given} {
		b, _ := json.Marshal(g)
		lines.Write(append(b, '\n'))
	}
	for name, b := range map[string][]byte{"array": array, "lines": lines.Bytes()} {
		rep, err := Run(ctx, Inputs{Exports: []Source{export}, ConsentFiles: []Source{BytesSource(name, b)}}, f.snap, testOptions(t))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if rep.Total != want.Total || rep.ByRule[RuleConsentDocument] != 12 {
			t.Errorf("%s: %v, want %v", name, rep.ByRule, want.ByRule)
		}
	}
	for name, b := range map[string]string{
		"empty":               "",
		"white space":         " \n\n",
		"empty array":         "[ ]",
		"not JSON":            "consent-a-0001\n",
		"second document cut": string(lines.Bytes()[:lines.Len()-20]),
		"after the array":     string(array) + "{}",
	} {
		_, err := Run(ctx, Inputs{Exports: []Source{export}, ConsentFiles: []Source{BytesSource(name, []byte(b))}}, f.snap, testOptions(t))
		if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want ErrInput naming the file", name, err)
		}
		if (name == "empty" || name == "white space" || name == "empty array") && !errors.Is(err, ErrNoConsents) {
			t.Errorf("%s: %v, want ErrNoConsents", name, err)
		}
	}
}

// TestLongLine: a line longer than credit.MaxExportLine in the middle of
// an export is a finding that names the line and says why, and the lines
// after it are read.
func TestLongLine(t *testing.T) {
	f := newFixture(t, 12)
	f.anchor()
	lines := fileLines(encodeExport(t, credit.ExportAnswered, sz, f.answeredLines()))
	long := append([]byte(`{"index":6,"receipt":{"v":1,"id":"`), bytes.Repeat([]byte("x"), 3*credit.MaxExportLine)...)
	lines[leafLine(6)] = long
	rep := auditFiles(t, f, testOptions(t), map[string][]byte{"sz.jsonl": joinFile(lines)})
	if rep.ByRule[RuleCompleteness] != 1 || rep.ByRule[RuleExport] != 0 || rep.Total != 1 {
		t.Fatalf("findings %v", rep.ByRule)
	}
	if fd := rep.Findings[0]; fd.Source != "sz.jsonl:8" || !strings.Contains(fd.Detail, "line 8 longer than") || strings.Contains(fd.Detail, "unexpected end of JSON input") {
		t.Fatalf("finding %s: want the line named and why", rep.Findings[0])
	}

	// Past the anchored size, the line's own finding.
	f.snap.Anchored[sz] = f.snap.Anchored[sz][:1]
	o := testOptions(t)
	o.Now = f.when(12)
	rep = auditFiles(t, f, o, map[string][]byte{"sz.jsonl": joinFile(lines)})
	if rep.ByRule[RuleExport] != 1 || rep.Total != 1 {
		t.Fatalf("findings %v", rep.ByRule)
	}
	if fd := rep.Findings[0]; fd.Source != "sz.jsonl:8" || !strings.Contains(fd.Detail, "line 8 longer than") {
		t.Fatalf("finding %s: want the line named and why", fd)
	}
}

// TestConsentFileHoldsOneDocument: each document is handed on before much
// more of the file is read, in either layout, so the file is never held.
func TestConsentFileHoldsOneDocument(t *testing.T) {
	f := newFixture(t, 1)
	g := f.consents["consent-a-0001"]
	var array, lines bytes.Buffer
	array.WriteString("[")
	for i := range 3000 {
		g.ID = fmt.Sprintf("consent-%05d", i)
		b, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			array.WriteString(",\n")
		}
		array.Write(b)
		lines.Write(append(b, '\n'))
	}
	array.WriteString("]")
	for name, b := range map[string][]byte{"array": array.Bytes(), "lines": lines.Bytes()} {
		rt := &readTracker{r: bytes.NewReader(b)}
		src := Source{Name: name, Open: func() (io.ReadCloser, error) { return io.NopCloser(rt), nil }}
		n := 0
		err := readConsentFile(src, func(d credit.ConsentGrant) error {
			n++
			// Where this document ends, at the latest: n documents' bytes.
			if ahead := rt.n - int64(n)*int64(len(b))/3000; ahead > 128<<10 {
				return fmt.Errorf("document %d handed on with %d bytes read past it (file %d bytes)", n, ahead, len(b))
			}
			return nil
		})
		if err != nil || n != 3000 {
			t.Fatalf("%s: %d documents, %v", name, n, err)
		}
	}
}
