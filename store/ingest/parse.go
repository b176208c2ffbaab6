package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/prdcredit/ccnode/credit"
)

// Format is an input format.
type Format int

// The formats.
const (
	FormatUnknown Format = iota
	FormatJSONL          // one JSON object per line
	FormatCSV            // header row, then one record per line; attrs a JSON column
)

func (f Format) String() string {
	switch f {
	case FormatJSONL:
		return "jsonl"
	case FormatCSV:
		return "csv"
	}
	return "unknown"
}

// ParseFormat accepts "jsonl" (or "ndjson", "json") and "csv".
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "jsonl", "ndjson", "json":
		return FormatJSONL, nil
	case "csv":
		return FormatCSV, nil
	}
	return FormatUnknown, fmt.Errorf("unknown format %q (want jsonl or csv)", s)
}

// Why a line was rejected, beyond a record field's own validation.
var (
	ErrMalformed   = errors.New("malformed line")
	ErrOversized   = errors.New("line too long")
	ErrInvalidUTF8 = errors.New("not valid UTF-8")
)

// LineError is why one line was rejected.
type LineError struct {
	Field string // the record field at fault, or "" for the line as a whole
	Err   error
}

func (e *LineError) Error() string {
	if e.Field == "" {
		return e.Err.Error()
	}
	return e.Field + ": " + e.Err.Error()
}
func (e *LineError) Unwrap() error { return e.Err }

// jsonRecord is the wire shape of a line; credit.Record's own types would
// validate during decoding and lose which field failed.
type jsonRecord struct {
	USCC     string          `json:"uscc"`
	Source   string          `json:"source"`
	SourceID string          `json:"source_id"`
	Category string          `json:"category"`
	Date     string          `json:"date"`
	Attrs    json.RawMessage `json:"attrs"`
}

// ParseJSONLine decodes one JSON Lines line (without its newline) into r,
// which it does not validate beyond the syntax. Attrs may alias line.
func ParseJSONLine(line []byte, r *credit.Record) error {
	if fastJSONLine(line, r) {
		return nil
	}
	return slowJSONLine(line, r)
}

func slowJSONLine(line []byte, r *credit.Record) error {
	var jr jsonRecord
	if err := json.Unmarshal(line, &jr); err != nil {
		return &LineError{Err: fmt.Errorf("%w: JSON: %v", ErrMalformed, err)}
	}
	*r = credit.Record{
		Subject:  credit.USCC(jr.USCC),
		Source:   jr.Source,
		SourceID: jr.SourceID,
		Category: credit.Category(jr.Category),
		Date:     credit.Date(jr.Date),
		Attrs:    jr.Attrs,
	}
	return nil
}

// fastJSONLine handles the shape almost every line has: one flat object
// with the six known keys, each once, string values without escapes, and
// attrs an object. Anything else returns false and takes encoding/json,
// whose behaviour (case-insensitive keys, escapes, last duplicate wins,
// errors) the fuzz test checks this agrees with.
func fastJSONLine(line []byte, r *credit.Record) bool {
	f, ok := scanFlatLine(line, false)
	if !ok {
		return false
	}
	*r = credit.Record{
		Subject:  credit.USCC(f.val[0]),
		Source:   string(f.val[1]),
		SourceID: string(f.val[2]),
		Category: credit.Category(f.val[3]),
		Date:     credit.Date(f.val[4]),
		Attrs:    f.attrs,
	}
	return true
}

// flatLine is a line of the usual shape, its fields as slices of it.
type flatLine struct {
	val   [5][]byte // uscc, source, source_id, category, date
	attrs []byte
	seen  uint8 // bit k: val[k] was there; bit 5: attrs
	hi    uint8 // bit k: val[k] holds a byte outside ASCII
}

const allFields = 1<<6 - 1

// scanFlatLine reads one flat object of the known keys, each at most once,
// string values without escapes or control characters, and attrs an
// object: found by bracket matching (checked later by
// credit.CanonicalAttrs), or with canonical, only one already in canonical
// form (credit.CanonicalObjectLen), which it checks in the same pass.
func scanFlatLine(line []byte, canonical bool) (f flatLine, ok bool) {
	i := skipWS(line, 0)
	if i >= len(line) || line[i] != '{' {
		return f, false
	}
	i++
	for {
		i = skipWS(line, i)
		key, next, ok := plainString(line, i)
		if !ok {
			return f, false
		}
		i = skipWS(line, next)
		if i >= len(line) || line[i] != ':' {
			return f, false
		}
		i = skipWS(line, i+1)
		var bit uint8
		if string(key) == "attrs" {
			bit = 1 << 5
			end := 0
			if canonical {
				var n int
				n, ok = credit.CanonicalObjectLen(line[i:])
				end = i + n
			} else {
				end, ok = objectEnd(line, i)
			}
			if !ok {
				return f, false
			}
			f.attrs = line[i:end:end]
			i = end
		} else {
			k := fieldIndex(key)
			if k < 0 {
				return f, false
			}
			val, next, hi, ok := plainStringHi(line, i)
			if !ok {
				return f, false
			}
			i = next
			bit = 1 << k
			f.val[k] = val
			if hi {
				f.hi |= bit
			}
		}
		if f.seen&bit != 0 {
			return f, false
		}
		f.seen |= bit
		i = skipWS(line, i)
		if i >= len(line) {
			return f, false
		}
		if line[i] == '}' {
			return f, skipWS(line, i+1) == len(line)
		}
		if line[i] != ',' {
			return f, false
		}
		i++
	}
}

// fieldIndex is the index in flatLine.val of a string-valued key, or -1.
func fieldIndex(key []byte) int {
	switch string(key) {
	case "uscc":
		return 0
	case "source":
		return 1
	case "source_id":
		return 2
	case "category":
		return 3
	case "date":
		return 4
	}
	return -1
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// plainString reads a string with no escapes and no control characters.
// The line is already known to be valid UTF-8.
func plainString(b []byte, i int) ([]byte, int, bool) {
	s, next, _, ok := plainStringHi(b, i)
	return s, next, ok
}

// plainStringHi is plainString that also says whether the string has a
// byte outside ASCII, which only then needs checking as UTF-8.
func plainStringHi(b []byte, i int) (s []byte, next int, hi, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false, false
	}
	j := i + 1
	for j < len(b) {
		c := b[j]
		switch {
		case c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf:
		case c == '"':
			return b[i+1 : j], j + 1, hi, true
		case c >= utf8.RuneSelf:
			hi = true
		default:
			return nil, 0, false, false
		}
		j++
	}
	return nil, 0, false, false
}

// objectEnd finds the end of the object starting at b[i] by bracket
// matching outside strings; credit.CanonicalAttrs validates it fully.
func objectEnd(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '{' {
		return 0, false
	}
	depth := 0
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '"':
			j++
			for j < len(b) && b[j] != '"' {
				if b[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(b) {
				return 0, false
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				if b[j] != '}' {
					return 0, false
				}
				return j + 1, true
			}
		}
	}
	return 0, false
}

// The CSV columns, the same names as the JSON keys.
var csvColumns = []string{"uscc", "source", "source_id", "category", "date", "attrs"}

// CSVHeader maps the required columns to their positions in a file.
type CSVHeader struct {
	pos   [6]int
	ncols int
}

// ErrBadHeader: a CSV file's first line lacks a required column. The file
// cannot be imported at all.
var ErrBadHeader = errors.New("bad CSV header")

// ParseCSVHeader reads the header row. Extra columns are ignored.
func ParseCSVHeader(line []byte) (*CSVHeader, error) {
	line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
	fields, err := splitCSV(line, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadHeader, err)
	}
	h := &CSVHeader{ncols: len(fields)}
	for i := range h.pos {
		h.pos[i] = -1
	}
	for i, f := range fields {
		name := strings.ToLower(strings.TrimSpace(string(f)))
		for j, c := range csvColumns {
			if name == c {
				if h.pos[j] >= 0 {
					return nil, fmt.Errorf("%w: column %q twice", ErrBadHeader, c)
				}
				h.pos[j] = i
			}
		}
	}
	for j, p := range h.pos {
		if p < 0 {
			return nil, fmt.Errorf("%w: no %q column (want %s)", ErrBadHeader, csvColumns[j], strings.Join(csvColumns, ","))
		}
	}
	return h, nil
}

// ParseCSVLine decodes one CSV row (without its newline). scratch is
// reused between calls. Attrs may alias line or scratch.
func (h *CSVHeader) ParseCSVLine(line []byte, r *credit.Record, scratch [][]byte) ([][]byte, error) {
	fields, err := splitCSV(line, scratch[:0])
	if err != nil {
		return fields, &LineError{Err: fmt.Errorf("%w: CSV: %v", ErrMalformed, err)}
	}
	if len(fields) != h.ncols {
		return fields, &LineError{Err: fmt.Errorf("%w: CSV: %d fields, header has %d", ErrMalformed, len(fields), h.ncols)}
	}
	*r = credit.Record{
		Subject:  credit.USCC(fields[h.pos[0]]),
		Source:   string(fields[h.pos[1]]),
		SourceID: string(fields[h.pos[2]]),
		Category: credit.Category(fields[h.pos[3]]),
		Date:     credit.Date(fields[h.pos[4]]),
		Attrs:    fields[h.pos[5]],
	}
	return fields, nil
}

var errQuote = errors.New("bare or unterminated quote")

// splitCSV splits an RFC 4180 row that fits on one line. Unquoted fields
// alias line; a quoted field with doubled quotes is copied.
func splitCSV(line []byte, out [][]byte) ([][]byte, error) {
	out, _, err := splitCSVInto(line, out, nil)
	return out, err
}

// splitCSVInto is splitCSV copying quoted fields with doubled quotes to
// the end of unq, which it returns, so that a caller can reuse that memory
// for every line.
func splitCSVInto(line []byte, out [][]byte, unq []byte) ([][]byte, []byte, error) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	i := 0
	for {
		if i < len(line) && line[i] == '"' {
			j := i + 1
			copied := false
			from := len(unq)
			start := j
			for {
				k := bytes.IndexByte(line[j:], '"')
				if k < 0 {
					return out, unq, errQuote
				}
				j += k
				if j+1 < len(line) && line[j+1] == '"' {
					unq = append(unq, line[start:j+1]...)
					copied = true
					j += 2
					start = j
					continue
				}
				break
			}
			if copied {
				unq = append(unq, line[start:j]...)
				out = append(out, unq[from:len(unq):len(unq)])
			} else {
				out = append(out, line[start:j:j])
			}
			i = j + 1
			if i == len(line) {
				return out, unq, nil
			}
			if line[i] != ',' {
				return out, unq, errQuote
			}
			i++
			continue
		}
		k := bytes.IndexByte(line[i:], ',')
		var f []byte
		if k < 0 {
			f = line[i:]
		} else {
			f = line[i : i+k : i+k]
		}
		if bytes.IndexByte(f, '"') >= 0 {
			return out, unq, errQuote
		}
		out = append(out, f)
		if k < 0 {
			return out, unq, nil
		}
		i += k + 1
	}
}
