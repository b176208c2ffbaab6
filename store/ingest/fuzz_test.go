package ingest

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/store"
)

// FuzzParseJSONLine checks the hand-written fast path against
// encoding/json: whenever the fast path accepts a line, encoding/json reads
// the same record from it, or the record fails validation anyway.
func FuzzParseJSONLine(f *testing.F) {
	f.Add([]byte(`{"uscc":"91440300MA5F123452","source":"szmr","source_id":"R1","category":"penalty","date":"2024-03-01","attrs":{"amount":5000}}`))
	f.Add([]byte(`{"attrs":{"a":"x\"}"},"date":"2024-03-01","category":"tax","source_id":"1","source":"s","uscc":"x"}`))
	f.Add([]byte(`{"uscc":"a","uscc":"b"}`))
	f.Add([]byte(`{"USCC":"a","attrs":{}}`))
	f.Add([]byte(` { "uscc" : "a" , "attrs" : { "b" : [1,{"c":null}] } } `))
	f.Add([]byte(`{"attrs":{"a":}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		var fast credit.Record
		if !utf8.Valid(line) || !fastJSONLine(line, &fast) {
			var r credit.Record
			_ = ParseJSONLine(line, &r) // must not panic
			return
		}
		var slow credit.Record
		if err := slowJSONLine(line, &slow); err != nil {
			if fast.Normalize(testNow, 0) == nil {
				t.Fatalf("fast path accepted a valid record encoding/json rejects: %v", err)
			}
			return
		}
		if fast.Subject != slow.Subject || fast.Source != slow.Source || fast.SourceID != slow.SourceID ||
			fast.Category != slow.Category || fast.Date != slow.Date || !bytes.Equal(fast.Attrs, slow.Attrs) {
			t.Fatalf("fast %+v\nslow %+v", fast, slow)
		}
	})
}

// FuzzParseCSVLine checks the one-line CSV splitter against encoding/csv.
func FuzzParseCSVLine(f *testing.F) {
	f.Add([]byte(`91440300MA5F123452,szmr,R1,penalty,2024-03-01,"{""amount"":5000}"`))
	f.Add([]byte(`a,"b,c",,"d""e"`))
	f.Add([]byte(`a,"b"c`))
	f.Add([]byte(`a,b"c`))
	f.Add([]byte(`"unterminated`))
	f.Add([]byte(`,,,,,`))
	f.Fuzz(func(t *testing.T, line []byte) {
		h := &CSVHeader{pos: [6]int{0, 1, 2, 3, 4, 5}, ncols: 6}
		var r credit.Record
		_, _ = h.ParseCSVLine(line, &r, nil) // must not panic
		if len(line) == 0 || bytes.ContainsAny(line, "\r\n") || !utf8.Valid(line) {
			return
		}
		got, err := splitCSV(line, nil)
		cr := csv.NewReader(bytes.NewReader(line))
		cr.FieldsPerRecord = -1
		want, werr := cr.Read()
		if errors.Is(werr, io.EOF) {
			return
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("line %q: ours %q %v, encoding/csv %q %v", line, got, err, want, werr)
		}
		if err != nil {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("line %q: ours %q, encoding/csv %q", line, got, want)
		}
		for i := range got {
			if string(got[i]) != want[i] {
				t.Fatalf("line %q: ours %q, encoding/csv %q", line, got, want)
			}
		}
	})
}

func TestCSVRoundTrip(t *testing.T) {
	fields := []string{"plain", `with "quotes"`, "with,comma", "", `{"a":"b"}`, " spaced "}
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.Write(fields)
	w.Flush()
	got, err := splitCSV([]byte(strings.TrimSuffix(b.String(), "\n")), nil)
	if err != nil || len(got) != len(fields) {
		t.Fatalf("%q: %v", got, err)
	}
	for i := range got {
		if string(got[i]) != fields[i] {
			t.Fatalf("field %d: %q, want %q", i, got[i], fields[i])
		}
	}
}

// FuzzAppendFastJSON checks the one-pass fast path of a load against the
// general path it stands in for: whenever it accepts a line, the general
// path (utf8.Valid, ParseJSONLine, Normalize, LoadBatch.Append) accepts it
// too and encodes exactly the same bytes; when it declines, it has
// appended nothing.
func FuzzAppendFastJSON(f *testing.F) {
	f.Add([]byte(`{"uscc":"91440300MA5F123452","source":"szmr","source_id":"R1","category":"penalty","date":"2024-03-01","attrs":{"amount":5000}}`))
	f.Add([]byte(`{"uscc":"9144030035PN1J9H0G","source":"sz-tax","source_id":"TAX-20230504-000001","category":"tax","date":"2023-05-04","attrs":{"amount_cny":12246.98,"authority":"国家税务总局深圳市税务局","credit_grade":"A","declared":"2023-05-10","kind":"stamp_duty","period":"2023-05","status":"paid"}}`))
	f.Add([]byte(` {"attrs":{},"date":"2024-03-01","category":"tax","source_id":"编号1","source":"s","uscc":"91440300ma5f123452"} `))
	f.Add([]byte(`{"uscc":"91440300MA5F123452","source":"szmr","source_id":"R1","category":"penalty","date":"2024-03-01","attrs":{"b":1,"a":2}}`))
	f.Add([]byte(`{"uscc":"91440300MA5F123452","source":"szmr","source_id":"R1","category":"penalty","date":"2999-03-01","attrs":{"a":"\u2028"}}`))
	f.Add([]byte(`{"uscc":"91440300MA5F123452","source":"szmr","source_id":"R1","category":"penalty","date":"2024-03-01","attrs":{"a":true,"b":null,"c":-1.5e3}}`))
	f.Add([]byte(`{"uscc":"91440300MA5F123452","source":"szmr","source_id":"R1","category":"penalty","date":"2024-03-01","attrs":{"a":"` + "\xff" + `"}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		var fast store.LoadBatch
		if !appendFastJSON(&fast, line, testNow, 0) {
			if fast.Len() != 0 {
				t.Fatalf("declined %q after appending", line)
			}
			return
		}
		sameAsGeneralPath(t, line, &fast, func(r *credit.Record) error { return ParseJSONLine(line, r) })
	})
}

// sameAsGeneralPath checks that a line a fast path accepted into fast is
// valid UTF-8 and that the general path (parse, Normalize, Append) also
// accepts it and encodes the same bytes.
func sameAsGeneralPath(t *testing.T, line []byte, fast *store.LoadBatch, parse func(*credit.Record) error) {
	t.Helper()
	if !utf8.Valid(line) {
		t.Fatalf("accepted invalid UTF-8 %q", line)
	}
	var r credit.Record
	if err := parse(&r); err != nil {
		t.Fatalf("accepted %q, general path: %v", line, err)
	}
	if err := r.Normalize(testNow, 0); err != nil {
		t.Fatalf("accepted %q, general path: %v", line, err)
	}
	var slow store.LoadBatch
	if err := slow.Append(&r); err != nil {
		t.Fatalf("accepted %q, general path: %v", line, err)
	}
	if fast.Len() != 1 || !bytes.Equal(fast.Bytes(), slow.Bytes()) {
		t.Fatalf("line %q: fast path encoded %x, general path %x", line, fast.Bytes(), slow.Bytes())
	}
}

// The fast path must take the usual line, or it only costs time.
func TestAppendFastJSONTakesUsualLines(t *testing.T) {
	lines := append(jsonl(t, 50), string(benchLine),
		`{"uscc":"9144030035PN1J9H0G","source":"sz-tax","source_id":"TAX-20230504-000001","category":"tax","date":"2023-05-04","attrs":{"amount_cny":12246.98,"authority":"国家税务总局深圳市税务局","credit_grade":"A","kind":"stamp_duty"}}`)
	for _, l := range lines {
		var lb store.LoadBatch
		if !appendFastJSON(&lb, []byte(l), testNow, 0) {
			t.Errorf("fast path declined %s", l)
		}
	}
}

// FuzzAppendFastCSV holds a load's CSV fast path to the general path:
// whenever it accepts a row, ParseCSVLine, Normalize and LoadBatch.Append
// accept it too and encode the same bytes; when it declines, it has
// appended nothing.
func FuzzAppendFastCSV(f *testing.F) {
	f.Add([]byte(`91440300MA5F123452,szmr,R1,penalty,2024-03-01,"{""amount"":5000}"`))
	f.Add([]byte(`91440300ma5f123452,szmr,"R,1",tax,2024-03-01,"{ ""b"":1, ""a"":""深圳"" }"`))
	f.Add([]byte(`91440300MA5F123452,szmr,编号,tax,2024-03-01,{}`))
	f.Add([]byte(`91440300MA5F123452,szmr,R1,tax,2999-03-01,{}`))
	f.Add([]byte(`91440300MA5F123452,szmr,R1,tax,2024-03-01,"{""a"":""x""}",extra`))
	f.Fuzz(func(t *testing.T, line []byte) {
		h := &CSVHeader{pos: [6]int{0, 1, 2, 3, 4, 5}, ncols: 6}
		var fast store.LoadBatch
		var sc csvScratch
		if !appendFastCSV(&fast, h, line, &sc, testNow, 0) {
			if fast.Len() != 0 {
				t.Fatalf("declined %q after appending", line)
			}
			return
		}
		sameAsGeneralPath(t, line, &fast, func(r *credit.Record) error {
			_, err := h.ParseCSVLine(line, r, nil)
			return err
		})
	})
}

// The CSV fast path must take the usual row too.
func TestAppendFastCSVTakesUsualRows(t *testing.T) {
	h, err := ParseCSVHeader([]byte("uscc,source,source_id,category,date,attrs"))
	if err != nil {
		t.Fatal(err)
	}
	rows := []string{
		`9144030035PN1J9H0G,sz-amr,REG-20190210-000000,registration,2019-02-10,"{""authority"":""深圳市市场监督管理局"",""capital_cny"":7120000,""status"":""存续""}"`,
		string(testkit.USCC(t, "440300", 7)) + `,dept1,r1,tax,2020-01-02,{}`,
	}
	var sc csvScratch
	for _, row := range rows {
		var lb store.LoadBatch
		if !appendFastCSV(&lb, h, []byte(row), &sc, testNow, 0) {
			t.Errorf("fast path declined %s", row)
		}
	}
}
