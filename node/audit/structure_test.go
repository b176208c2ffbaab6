package audit

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prdcredit/ccnode/credit"
)

// tailFixture is 12 receipts of which only the first 4 are anchored; the
// audit runs right after the last one, so leaves 4..11 are pending: no
// anchored root says anything about them.
func tailFixture(t *testing.T) (*fixture, Options) {
	t.Helper()
	f := newFixture(t, 12)
	f.anchor()
	f.snap.Anchored[sz] = f.snap.Anchored[sz][:1]
	o := testOptions(t)
	o.Now = f.when(12)
	return f, o
}

// fileLines splits an export into its lines, header first.
func fileLines(b []byte) [][]byte {
	return bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

func joinFile(lines [][]byte) []byte {
	return append(bytes.Join(lines, []byte("\n")), '\n')
}

// leafLine is the file line (0 is the header) of leaf i.
func leafLine(i int) int { return i + 1 }

func auditFiles(t *testing.T, f *fixture, o Options, files map[string][]byte) Report {
	t.Helper()
	in := Inputs{}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		in.Exports = append(in.Exports, BytesSource(n, files[n]))
	}
	rep, err := Run(context.Background(), in, f.snap, o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, fd := range rep.Findings {
		t.Logf("finding: %s", fd)
	}
	return rep
}

// checkRules checks the findings as a set of (rule, leaf), in any order.
func checkRules(t *testing.T, rep Report, want []want) {
	t.Helper()
	key := func(r Rule, leaf int) string { return fmt.Sprintf("%s@%d", r, leaf) }
	var got, exp []string
	for _, f := range rep.Findings {
		leaf := -1
		if f.Leaf != nil {
			leaf = int(*f.Leaf)
		}
		got = append(got, key(f.Rule, leaf))
		if f.Region == "" || f.Detail == "" {
			t.Errorf("finding names no region or says nothing: %+v", f)
		}
	}
	for _, w := range want {
		exp = append(exp, key(w.rule, w.leaf))
	}
	slices.Sort(got)
	slices.Sort(exp)
	if rep.Total != len(rep.Findings) || !slices.Equal(got, exp) {
		t.Fatalf("findings %v (total %d), want %v", got, rep.Total, exp)
	}
}

// TestStructureUnanchored: what an exporter can do to the part of a log
// no anchored checkpoint covers yet. No root can catch it, so the export's
// own structure must: leaf indices contiguous from 0, no receipt twice,
// the header's size equal to the lines, no field the format does not have.
func TestStructureUnanchored(t *testing.T) {
	tests := []struct {
		name string
		// edit changes the answered export's lines (header at 0).
		edit func(f *fixture, lines [][]byte) [][]byte
		want []want
	}{
		{
			name: "two lines swapped",
			edit: func(f *fixture, lines [][]byte) [][]byte {
				lines[leafLine(8)], lines[leafLine(9)] = lines[leafLine(9)], lines[leafLine(8)]
				return lines
			},
			want: []want{{RuleOrder, 8}},
		},
		{
			name: "a line deleted",
			edit: func(f *fixture, lines [][]byte) [][]byte {
				return slices.Delete(lines, leafLine(8), leafLine(8)+1)
			},
			want: []want{{RuleOrder, 8}, {RuleSize, -1}},
		},
		{
			name: "the last line deleted",
			edit: func(f *fixture, lines [][]byte) [][]byte {
				return lines[:len(lines)-1]
			},
			want: []want{{RuleSize, -1}},
		},
		{
			name: "a line duplicated",
			edit: func(f *fixture, lines [][]byte) [][]byte {
				return slices.Insert(lines, leafLine(9), lines[leafLine(8)])
			},
			want: []want{{RuleOrder, 9}, {RuleDuplicate, 9}, {RuleSize, -1}},
		},
		{
			name: "a line claims leaf 9999",
			edit: func(f *fixture, lines [][]byte) [][]byte {
				lines[leafLine(8)] = bytes.Replace(lines[leafLine(8)], []byte(`{"index":8,`), []byte(`{"index":9999,`), 1)
				return lines
			},
			want: []want{{RuleOrder, 8}},
		},
		{
			name: "an extra field injected into a receipt",
			edit: func(f *fixture, lines [][]byte) [][]byte {
				lines[leafLine(8)] = bytes.Replace(lines[leafLine(8)], []byte(`"receipt":{"v":1,`), []byte(`"receipt":{"v":1,"note":"x",`), 1)
				return lines
			},
			want: []want{{RuleExport, 8}},
		},
		{
			name: "an extra field injected into a query",
			edit: func(f *fixture, lines [][]byte) [][]byte {
				lines[leafLine(8)] = bytes.Replace(lines[leafLine(8)], []byte(`"query":{"v":1,`), []byte(`"query":{"v":1,"note":"x",`), 1)
				return lines
			},
			want: []want{{RuleExport, 8}},
		},
		{
			// encoding/json takes the last of two equal names, and the
			// signed message is encoded again from what it took: only the
			// bytes show it.
			name: "a field repeated in a receipt",
			edit: func(f *fixture, lines [][]byte) [][]byte {
				lines[leafLine(8)] = bytes.Replace(lines[leafLine(8)], []byte(`"receipt":{"v":1,`), []byte(`"receipt":{"v":1,"v":1,`), 1)
				return lines
			},
			want: []want{{RuleExport, 8}},
		},
		{
			name: "a receipt respelled",
			edit: func(f *fixture, lines [][]byte) [][]byte {
				lines[leafLine(8)] = bytes.Replace(lines[leafLine(8)], []byte(`"receipt":{"v":1,`), []byte(`"receipt":{ "v": 1,`), 1)
				return lines
			},
			want: []want{{RuleExport, 8}},
		},
		{
			name: "an extra field injected into a line",
			edit: func(f *fixture, lines [][]byte) [][]byte {
				lines[leafLine(8)] = bytes.Replace(lines[leafLine(8)], []byte(`{"index":8,`), []byte(`{"index":8,"note":"x",`), 1)
				return lines
			},
			want: []want{{RuleExport, -1}},
		},
		{
			name: "an extra field injected into an acknowledgement",
			edit: func(f *fixture, lines [][]byte) [][]byte {
				lines[leafLine(8)] = bytes.Replace(lines[leafLine(8)], []byte(`"acks":[{"v":1,`), []byte(`"acks":[{"v":1,"note":"x",`), 1)
				return lines
			},
			want: []want{{RuleExport, -1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, o := tailFixture(t)
			lines := fileLines(encodeExport(t, credit.ExportAnswered, sz, f.answeredLines()))
			if n := len(lines); n != 13 {
				t.Fatalf("%d lines", n)
			}
			edited := joinFile(tc.edit(f, lines))
			rep := auditFiles(t, f, o, map[string][]byte{"sz.jsonl": edited})
			checkRules(t, rep, tc.want)
			if rep.Regions[0].Pending == 0 {
				t.Errorf("no pending receipts in the summary %+v", rep.Regions[0])
			}
		})
	}
}

// TestStructureAnchored: the header's size is checked on anchored data too.
func TestStructureAnchored(t *testing.T) {
	f := newFixture(t, 12)
	f.anchor()
	lines := fileLines(encodeExport(t, credit.ExportAnswered, sz, f.answeredLines()))
	lines[0] = bytes.Replace(lines[0], []byte(`"size":12,`), []byte(`"size":13,`), 1)
	rep := auditFiles(t, f, testOptions(t), map[string][]byte{"sz.jsonl": joinFile(lines)})
	checkRules(t, rep, []want{{RuleSize, -1}})
}

// TestStructureReceived: a requester's export has the same structure (its
// index is a line counter from 0), and what it acknowledged is held
// against the answerer's whole log, pending part included.
func TestStructureReceived(t *testing.T) {
	tests := []struct {
		name           string
		answered, recv func(lines [][]byte) [][]byte
		want           []want
	}{
		{
			name: "received lines swapped",
			recv: func(lines [][]byte) [][]byte {
				lines[5], lines[6] = lines[6], lines[5]
				return lines
			},
			want: []want{{RuleOrder, -1}},
		},
		{
			name: "received line duplicated",
			recv: func(lines [][]byte) [][]byte {
				return slices.Insert(lines, 6, lines[5])
			},
			want: []want{{RuleOrder, -1}, {RuleDuplicate, -1}, {RuleSize, -1}},
		},
		{
			name: "received extra field",
			recv: func(lines [][]byte) [][]byte {
				lines[5] = bytes.Replace(lines[5], []byte(`"receipt":{"v":1,`), []byte(`"receipt":{"v":1,"note":"x",`), 1)
				return lines
			},
			want: []want{{RuleExport, -1}},
		},
		{
			name: "pending answered line deleted",
			answered: func(lines [][]byte) [][]byte {
				return slices.Delete(lines, leafLine(8), leafLine(8)+1)
			},
			want: []want{{RuleOrder, 8}, {RuleSize, -1}, {RuleUnlogged, -1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, o := tailFixture(t)
			ans := fileLines(encodeExport(t, credit.ExportAnswered, sz, f.answeredLines()))
			rec := fileLines(encodeExport(t, credit.ExportReceived, gz, f.receivedLines()))
			if tc.answered != nil {
				ans = tc.answered(ans)
			}
			if tc.recv != nil {
				rec = tc.recv(rec)
			}
			rep := auditFiles(t, f, o, map[string][]byte{"sz.jsonl": joinFile(ans), "gz-received.jsonl": joinFile(rec)})
			checkRules(t, rep, tc.want)
		})
	}
}

// TestPendingChecked: a receipt no anchored checkpoint covers yet still
// has every signature and consent checked; the report counts it as
// pending, and RequireAnchored makes each such receipt a finding.
func TestPendingChecked(t *testing.T) {
	f := newFixture(t, 12)
	if err := f.receipts[9].Query.Sign(key("someone")); err != nil {
		t.Fatal(err)
	}
	f.resign(9)
	f.receipts[10] = f.receipt(10, bankB, "consent-a-0001", []credit.Category{credit.Penalty})
	f.resign(10)
	f.anchor()
	f.snap.Anchored[sz] = f.snap.Anchored[sz][:1]
	o := testOptions(t)
	o.Now = f.when(12)
	files := map[string][]byte{"sz.jsonl": encodeExport(t, credit.ExportAnswered, sz, f.answeredLines())}
	rep := auditFiles(t, f, o, files)
	checkRules(t, rep, []want{{RuleQuerySig, 9}, {RuleConsent, 10}})
	if p := rep.Regions[0].Pending; p != 8 {
		t.Errorf("pending %d, want 8", p)
	}
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "pending (not yet anchored): 8") {
		t.Errorf("the report does not say how many receipts are pending:\n%s", text.String())
	}

	o.RequireAnchored = true
	rep = auditFiles(t, f, o, files)
	w := []want{{RuleQuerySig, 9}, {RuleConsent, 10}}
	for i := 4; i < 12; i++ {
		w = append(w, want{RuleInclusion, i})
	}
	checkRules(t, rep, w)
}
