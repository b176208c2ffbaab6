package credit

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Date is a calendar date written YYYY-MM-DD. Its string order is its time
// order, which the store's key layout relies on.
type Date string

// ParseDate validates a YYYY-MM-DD date.
func ParseDate(s string) (Date, error) {
	if _, err := parseDate(s); err != nil {
		return "", err
	}
	return Date(s), nil
}

// parseDate is ParseDate returning the start of the date in UTC. It accepts
// what time.Parse(time.DateOnly, s) accepts, checked by hand: every
// imported line is validated, and time.Parse (called twice per line, for
// the date and for the future check) was a tenth of the validation's cost.
func parseDate(s string) (time.Time, error) {
	if len(s) != 10 {
		return time.Time{}, fmt.Errorf("date %s: want YYYY-MM-DD", Quote(s))
	}
	bad := func() (time.Time, error) {
		return time.Time{}, fmt.Errorf("date %s: want a real YYYY-MM-DD date", Quote(s))
	}
	if s[4] != '-' || s[7] != '-' {
		return bad()
	}
	var n [3]int
	for i, f := range [3]string{s[0:4], s[5:7], s[8:10]} {
		for j := 0; j < len(f); j++ {
			c := f[j]
			if c < '0' || c > '9' {
				return bad()
			}
			n[i] = n[i]*10 + int(c-'0')
		}
	}
	y, m, d := n[0], n[1], n[2]
	if m < 1 || m > 12 || d < 1 || d > daysIn(time.Month(m), y) {
		return bad()
	}
	if y < 1949 {
		return time.Time{}, fmt.Errorf("date %s: before 1949", Quote(s))
	}
	return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC), nil
}

// Time is the start of the date in UTC.
func (d Date) Time() time.Time {
	t, _ := time.Parse(time.DateOnly, string(d))
	return t
}

// Record is one fact about a subject from one source department.
// Its identity is (Subject, Source, SourceID): a later record with the same
// identity is a correction that replaces the earlier one.
type Record struct {
	Subject  USCC            `json:"uscc"`
	Source   string          `json:"source"`
	SourceID string          `json:"source_id"`
	Category Category        `json:"category"`
	Date     Date            `json:"date"`
	Attrs    json.RawMessage `json:"attrs"`
}

// MaxSourceIDBytes bounds a source record id.
const MaxSourceIDBytes = 128

// FieldError says which field of a document is wrong and why.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// ErrMissing is wrapped by FieldError when a required field is absent.
var ErrMissing = errors.New("required field missing")

// ValidateSource checks a source department id.
func ValidateSource(s string) error {
	if s == "" {
		return ErrMissing
	}
	// ^[a-z0-9][a-z0-9_.-]{0,63}$, checked by hand: a regexp match was the
	// largest single cost of validating an imported line.
	ok := len(s) <= 64
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || i > 0 && (c == '_' || c == '.' || c == '-')
	}
	if !ok {
		return fmt.Errorf("%s: want 1-64 characters of a-z, 0-9, _, . and -", Quote(s))
	}
	return nil
}

// ValidateSourceID checks a source record id: printable UTF-8, bounded.
func ValidateSourceID(s string) error {
	if s == "" {
		return ErrMissing
	}
	if len(s) > MaxSourceIDBytes {
		return fmt.Errorf("%d bytes, limit %d", len(s), MaxSourceIDBytes)
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			ascii = false
			break
		}
	}
	if ascii {
		return nil // the usual id: printable ASCII
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("control character %U", r)
		}
	}
	return nil
}

// Normalize validates every field and puts the attributes in canonical
// form. It returns a *FieldError naming the first bad field.
func (r *Record) Normalize(now time.Time, futureTolerance time.Duration) error {
	if err := r.NormalizeFields(now, futureTolerance); err != nil {
		return err
	}
	if len(r.Attrs) == 0 {
		return &FieldError{"attrs", ErrMissing}
	}
	a, err := CanonicalAttrs(r.Attrs)
	if err != nil {
		return &FieldError{"attrs", err}
	}
	r.Attrs = a
	return nil
}

// NormalizeFields is Normalize without the attributes, for a caller that
// has already found them canonical with CanonicalObjectLen: the importer
// does that while it finds where they end, and a second pass over them was
// a tenth of its parsing cost.
func (r *Record) NormalizeFields(now time.Time, futureTolerance time.Duration) error {
	if r.Subject == "" {
		return &FieldError{"uscc", ErrMissing}
	}
	u, err := ParseUSCC(string(r.Subject))
	if err != nil {
		return &FieldError{"uscc", err}
	}
	r.Subject = u
	if err := ValidateSource(r.Source); err != nil {
		return &FieldError{"source", err}
	}
	if err := ValidateSourceID(r.SourceID); err != nil {
		return &FieldError{"source_id", err}
	}
	if r.Category == "" {
		return &FieldError{"category", ErrMissing}
	}
	if _, err := ParseCategory(string(r.Category)); err != nil {
		return &FieldError{"category", err}
	}
	if r.Date == "" {
		return &FieldError{"date", ErrMissing}
	}
	day, err := parseDate(string(r.Date))
	if err != nil {
		return &FieldError{"date", err}
	}
	if !now.IsZero() && day.After(now.Add(futureTolerance)) {
		return &FieldError{"date", fmt.Errorf("%s is in the future (tolerance %s)", r.Date, futureTolerance)}
	}
	return nil
}

// AppendCanonical appends the record's canonical encoding. The record must
// be normalised. It matches encoding/json's output for Record byte for byte
// and is written by hand because reports of hundreds of records are hashed
// on every answer.
func (r *Record) AppendCanonical(b []byte) []byte {
	b = append(b, `{"uscc":`...)
	b = appendJSONString(b, string(r.Subject))
	b = append(b, `,"source":`...)
	b = appendJSONString(b, r.Source)
	b = append(b, `,"source_id":`...)
	b = appendJSONString(b, r.SourceID)
	b = append(b, `,"category":`...)
	b = appendJSONString(b, string(r.Category))
	b = append(b, `,"date":`...)
	b = appendJSONString(b, string(r.Date))
	b = append(b, `,"attrs":`...)
	if len(r.Attrs) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, r.Attrs...)
	}
	return append(b, '}')
}

// Identity is a fixed-size digest of (Subject, Source, SourceID).
func (r *Record) Identity() [32]byte {
	// One buffer on the stack instead of a hash object and a string per
	// field: import computes this for every line.
	var buf [256]byte
	b := buf[:0]
	for _, s := range [3]string{string(r.Subject), r.Source, r.SourceID} {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
	}
	return sha256.Sum256(b)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string, as encoding/json writes it
// with HTML escaping off: the one string encoder of every canonical
// document and of the bank API's hand-written answers.
func AppendJSONString(b []byte, s string) []byte { return appendJSONString(b, s) }

// appendJSONString writes s as encoding/json does with HTML escaping off.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
