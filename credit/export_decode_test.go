package credit

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writtenLines returns export lines as the export writer writes them: an
// answered line with its acknowledgement, a received line with its
// received_at, a line without acks, and a receipt whose query carries a
// consent document.
func writtenLines(t testing.TB) [][]byte {
	t.Helper()
	r := exportReceipt(t)
	g := ConsentGrant{Version: 1, ID: "consent-0001", Subject: r.Query.Subject, Grantee: "bank-a",
		Categories: []Category{Tax, Penalty}, Purpose: PurposeCreditReview,
		ValidFrom: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ValidUntil: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		Region: "sz", SignedAt: r.Query.Time, EnterpriseCert: [][]byte{bytes.Repeat([]byte{1}, 32), {7, 8}}, EnterpriseSig: bytes.Repeat([]byte{2}, 64)}
	withConsent := r
	withConsent.Query.Consent = &g
	withConsent.Time = withConsent.Time.Add(123456 * time.Nanosecond)
	if err := withConsent.Sign(testKey(t, 3)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := NewExportWriter(&buf, ExportHeader{Kind: ExportAnswered, Region: "sz"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2028, 2, 29, 23, 59, 59, 999999999, time.UTC)
	for i, rc := range []Receipt{r, withConsent, withConsent, r} {
		leaf, err := rc.LeafBytes()
		if err != nil {
			t.Fatal(err)
		}
		l := ExportLine{Index: uint64(i), Receipt: leaf}
		switch i {
		case 1:
			ack, err := NewAck(&rc, "gz", rc.Time.Add(time.Second), testKey(t, 4))
			if err != nil {
				t.Fatal(err)
			}
			l.Acks = []Ack{ack, ack}
		case 2:
			l.ReceivedAt = &at
		}
		if err := w.Write(l); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	return lines[1:]
}

// TestDecodeExportEntryFastPath: what the writer writes is decoded by hand,
// not handed to encoding/json; were it not, the audit would silently be as
// slow as before.
func TestDecodeExportEntryFastPath(t *testing.T) {
	for i, line := range writtenLines(t) {
		l, rc, ok := fastExportEntry(line)
		if !ok {
			t.Fatalf("line %d not decoded by hand: %s", i, line)
		}
		sameAsReference(t, line, l, rc, nil, nil)
	}
}

// sameAsReference fails t unless the decoded line, receipt and errors are
// those of DecodeExportLine and DecodeReceipt.
func sameAsReference(t *testing.T, line []byte, l ExportLine, rc Receipt, lineErr, rcErr error) {
	t.Helper()
	wl, wantLineErr := DecodeExportLine(line)
	if (lineErr == nil) != (wantLineErr == nil) {
		t.Fatalf("line error %v, reference %v: %q", lineErr, wantLineErr, line)
	}
	if wantLineErr != nil {
		if lineErr.Error() != wantLineErr.Error() || !errors.Is(lineErr, ErrExportFormat) {
			t.Fatalf("line error %v, reference %v", lineErr, wantLineErr)
		}
		return
	}
	if !reflect.DeepEqual(l, wl) {
		t.Fatalf("lines differ:\n%+v\n%+v", l, wl)
	}
	wrc, wantRcErr := DecodeReceipt(wl.Receipt)
	if (rcErr == nil) != (wantRcErr == nil) || (rcErr != nil && rcErr.Error() != wantRcErr.Error()) {
		t.Fatalf("receipt error %v, reference %v: %q", rcErr, wantRcErr, line)
	}
	if wantRcErr == nil && !reflect.DeepEqual(rc, wrc) {
		t.Fatalf("receipts differ:\n%+v\n%+v", rc, wrc)
	}
}

func TestDecodeExportEntryRefuses(t *testing.T) {
	line := string(writtenLines(t)[1])
	// field is what the error names: encoding/json names the field of a
	// type mismatch, the text of a bad time or base64 value.
	tests := []struct{ name, from, to, field string }{
		{"index as string", `"index":1`, `"index":"1"`, "index"},
		{"negative index", `"index":1`, `"index":-1`, "index"},
		{"receipt not an object", line[len(`{"index":1,"receipt":`):strings.Index(line, `,"acks"`)], `[1]`, "receipt"},
		{"bad time", `"time":"2026-11-02T09:30:00.000123456Z"`, `"time":"2026-02-30T09:30:00Z"`, "time"},
		{"bad base64", `"report_digest":"`, `"report_digest":"!`, "base64"},
		{"version as float", `{"v":1,"id"`, `{"v":1.5,"id"`, "v"},
		{"ack time", `"time":"2026-11-02T09:30:01.000123456Z"`, `"time":"2026-11-02T24:30:01Z"`, "time"},
		{"trailing data", line, line + "x", "after top-level value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := []byte(strings.Replace(line, tc.from, tc.to, 1))
			if bytes.Equal(bad, []byte(line)) {
				t.Fatalf("%q not in the line", tc.from)
			}
			l, rc, lineErr, rcErr := DecodeExportEntry(bad)
			err := errors.Join(lineErr, rcErr)
			if !errors.Is(err, ErrExportFormat) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %v, want ErrExportFormat naming %s", err, tc.field)
			}
			sameAsReference(t, bad, l, rc, lineErr, rcErr)
		})
	}
}

// TestDecodeExportEntryCodesAndEmptyBytes: the layout scanner reads a
// code as a plain string and base64 by hand, so a code USCC's decoding
// refuses (wrong check character) or rewrites (lower case), and an empty
// base64 value, must still come out as encoding/json's DecodeReceipt has
// them: refused, normalised, and an empty rather than a nil slice.
func TestDecodeExportEntryCodesAndEmptyBytes(t *testing.T) {
	line := string(writtenLines(t)[0])
	el, err := DecodeExportLine([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := DecodeReceipt(el.Receipt)
	if err != nil {
		t.Fatal(err)
	}
	code := string(rc.Query.Subject)
	last := code[17]
	wrong := byte('0')
	if last == '0' {
		wrong = '1'
	}
	tests := []struct {
		name, from, to string
		refused        bool
	}{
		{"wrong check character", `"` + code + `"`, `"` + code[:17] + string(wrong) + `"`, true},
		{"lower case code", `"` + code + `"`, `"` + strings.ToLower(code) + `"`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "lower case code" && strings.ToLower(code) == code {
				t.Skip("the code has no letters")
			}
			bad := []byte(strings.Replace(line, tc.from, tc.to, 1))
			if bytes.Equal(bad, []byte(line)) {
				t.Fatalf("%q not in the line", tc.from)
			}
			l, rc, lineErr, rcErr := DecodeExportEntry(bad)
			if lineErr != nil {
				t.Fatalf("line refused: %v", lineErr)
			}
			if tc.refused != (rcErr != nil) {
				t.Fatalf("receipt error %v, want refused=%v", rcErr, tc.refused)
			}
			if tc.refused && !errors.Is(rcErr, ErrInvalidUSCC) {
				t.Fatalf("receipt error %v, want ErrInvalidUSCC", rcErr)
			}
			sameAsReference(t, bad, l, rc, lineErr, rcErr)
		})
	}
	t.Run("empty base64 first", func(t *testing.T) {
		// The scanner's arena is empty before its first []byte field.
		s := exportScanner{b: []byte(`""`), ok: true}
		var want []byte
		if err := json.Unmarshal([]byte(`""`), &want); err != nil {
			t.Fatal(err)
		}
		if got := s.bytes(); !s.ok || !reflect.DeepEqual(got, want) {
			t.Fatalf("scanner gives %#v (ok %v), encoding/json %#v", got, s.ok, want)
		}
	})
}

// FuzzDecodeExportEntry holds the hand-written decoder to encoding/json's:
// the same lines accepted with the same line, receipt and
// acknowledgements, the same refused with the same error.
func FuzzDecodeExportEntry(f *testing.F) {
	for _, l := range writtenLines(f) {
		f.Add(l)
		f.Add(bytes.Replace(l, []byte(`"acks":[`), []byte(`"acks":null,"x":[`), 1))
		f.Add(bytes.Replace(l, []byte(`Z"`), []byte(`+08:00"`), 1))
		f.Add(bytes.Replace(l, []byte(`"sig":"`), []byte(`"sig":null,"y":"`), 1))
		// Codes USCC decoding refuses (check character) or rewrites.
		if i := bytes.Index(l, []byte(`"uscc":"`)); i >= 0 {
			at := i + len(`"uscc":"`)
			bad := bytes.Clone(l)
			bad[at+17] ^= 1
			f.Add(bad)
			lower := bytes.Clone(l)
			copy(lower[at:at+18], bytes.ToLower(lower[at:at+18]))
			f.Add(lower)
		}
	}
	f.Add([]byte(`{"index":1,"receipt":{"v":1,"id":"x\u00e9\ud800","time":"2026-01-01T00:00:00+08:00"}}`))
	f.Add([]byte(`{"index":1,"receipt":{"v":1},"receipt":{"v":2}}`))
	f.Add([]byte(`{"index":01,"receipt":{}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		l, rc, lineErr, rcErr := DecodeExportEntry(line)
		sameAsReference(t, line, l, rc, lineErr, rcErr)
	})
}

func BenchmarkDecodeExportEntry(b *testing.B) {
	line := writtenLines(b)[1]
	b.Run("decoder=hand-written", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, e1, e2 := DecodeExportEntry(line); e1 != nil || e2 != nil {
				b.Fatal(e1, e2)
			}
		}
	})
	b.Run("decoder=encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			l, err := DecodeExportLine(line)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := DecodeReceipt(l.Receipt); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestDecodeExportEntryUnknownField: a field the format does not have,
// anywhere in a line, is refused by both paths (the layout scanner cannot
// read it, and encoding/json is told to refuse it), so it is not dropped
// without a word.
func TestDecodeExportEntryUnknownField(t *testing.T) {
	lines := writtenLines(t)
	for _, tc := range []struct{ name, from, to string }{
		{"line", `{"index":1,`, `{"index":1,"note":"x",`},
		{"receipt", `"receipt":{"v":1,`, `"receipt":{"v":1,"note":"x",`},
		{"query", `"query":{"v":1,`, `"query":{"v":1,"note":"x",`},
		{"consent", `"consent":{"v":1,`, `"consent":{"v":1,"note":"x",`},
		{"ack", `"acks":[{"v":1,`, `"acks":[{"v":1,"note":"x",`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line := string(lines[1])
			bad := []byte(strings.Replace(line, tc.from, tc.to, 1))
			if string(bad) == line {
				t.Fatalf("%q not in the line", tc.from)
			}
			l, rc, lineErr, rcErr := DecodeExportEntry(bad)
			err := errors.Join(lineErr, rcErr)
			if !errors.Is(err, ErrExportFormat) || !strings.Contains(err.Error(), `unknown field "note"`) {
				t.Fatalf("error %v, want ErrExportFormat naming the field", err)
			}
			sameAsReference(t, bad, l, rc, lineErr, rcErr)
		})
	}
}

// TestLeafMatches: the receipt's own bytes match; the same receipt spelled
// otherwise, or another receipt, does not.
func TestLeafMatches(t *testing.T) {
	for i, line := range writtenLines(t) {
		l, rc, lineErr, rcErr := DecodeExportEntry(line)
		if lineErr != nil || rcErr != nil {
			t.Fatal(lineErr, rcErr)
		}
		msg, _, err := rc.AppendSignedMessageAndDigest(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !rc.LeafMatches(msg, l.Receipt) {
			t.Fatalf("line %d: the receipt's own bytes do not match", i)
		}
		for _, other := range [][]byte{
			bytes.Replace(l.Receipt, []byte(`{"v":1,`), []byte(`{"v":1,"v":1,`), 1),
			bytes.Replace(l.Receipt, []byte(`{"v":1,`), []byte(`{"v": 1,`), 1),
			bytes.Replace(l.Receipt, []byte(`"sig":"`), []byte(`"sig":"A`), 1),
			append(bytes.Clone(l.Receipt), ' '),
			l.Receipt[:len(l.Receipt)-1],
			nil,
		} {
			if rc.LeafMatches(msg, other) {
				t.Errorf("line %d: %q matches", i, other)
			}
		}
	}
}

// FuzzLeafMatches: whatever receipt a region logs, its leaf bytes read
// back from an export match what the audit encodes again from them, so the
// audit's byte-for-byte check never refuses a leaf as logged.
func FuzzLeafMatches(f *testing.F) {
	f.Add("x", []byte{1}, int64(0), int64(0), 0)
	f.Add("\xff\u2028\"\\\x00<>&", []byte{}, int64(253402300800), int64(999999999), -86399)
	f.Fuzz(func(t *testing.T, s string, b []byte, sec, nsec int64, off int) {
		at := time.Unix(sec, nsec).In(time.FixedZone("z", off%(48*3600)))
		g := ConsentGrant{Version: off, ID: s, Subject: USCC(s), Grantee: BankID(s), Categories: []Category{Category(s)},
			Purpose: Purpose(s), ValidFrom: at, ValidUntil: at, Region: RegionID(s), SignedAt: at, EnterpriseCert: [][]byte{b, b}, EnterpriseSig: b, RegionSig: b}
		r := Receipt{Version: off, ID: s, Requester: RegionID(s), Answerer: RegionID(s), Categories: []Category{Category(s), Category(s)},
			ReportDigest: b, RecordCount: int(sec), Time: at, Sig: b,
			Query: Query{Version: int(nsec), Bank: BankID(s), Subject: USCC(s), Categories: []Category{}, Purpose: Purpose(s),
				ConsentID: s, Consent: &g, Nonce: s, Time: at, Sig: b}}
		leaf, err := r.LeafBytes()
		if err != nil {
			return
		}
		var line bytes.Buffer
		w, err := NewExportWriter(&line, ExportHeader{Kind: ExportAnswered, Region: "sz"})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(ExportLine{Index: 0, Receipt: leaf}); err != nil {
			return // too long for a line
		}
		w.Flush()
		got := bytes.Split(bytes.TrimSpace(line.Bytes()), []byte("\n"))[1]
		l, rc, lineErr, rcErr := DecodeExportEntry(got)
		if lineErr != nil || rcErr != nil {
			return // a receipt the decoder refuses is reported as such
		}
		msg, _, err := rc.AppendSignedMessageAndDigest(nil)
		if err != nil {
			return
		}
		if !bytes.Equal(l.Receipt, leaf) || !rc.LeafMatches(msg, l.Receipt) {
			t.Fatalf("leaf %s read back as %s does not match its encoding", leaf, l.Receipt)
		}
	})
}
