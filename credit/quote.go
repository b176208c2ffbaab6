package credit

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// QuoteBytes is how much of an offending input an error message quotes.
// An error that echoed a whole field let a 1 MiB request cost megabytes
// more in its refusal (four times over for invalid UTF-8, escaped as \x..).
const QuoteBytes = 64

// MaxErrorText bounds the text of an error built from another party's
// input (BoundError).
const MaxErrorText = 512

// Quote is strconv.Quote of at most the first QuoteBytes bytes of s, cut
// on a character boundary, followed by "…(N bytes)" when s was longer:
// what every validation error that names its input prints.
func Quote(s string) string {
	if len(s) <= QuoteBytes {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:cutAt(s, QuoteBytes)]) + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// cutAt is the largest index <= n that does not split a UTF-8 sequence
// of s (an invalid byte is a boundary of its own).
func cutAt(s string, n int) int {
	if n >= len(s) {
		return len(s)
	}
	i := n
	for i > 0 && n-i < utf8.UTFMax && !utf8.RuneStart(s[i]) {
		i--
	}
	if !utf8.RuneStart(s[i]) {
		return n // not UTF-8 text: any cut will do
	}
	return i
}

// BoundError returns err with a message that quotes at most a short,
// escaped prefix of the input it names: decoding errors of encoding/json
// and time echo the whole offending value (an unknown field's name, a
// number, a timestamp). errors.Is and errors.As still see err.
func BoundError(err error) error {
	if err == nil {
		return nil
	}
	var msg string
	var te *json.UnmarshalTypeError
	var pe *time.ParseError
	switch {
	case errors.As(err, &te):
		// Value is "number <the literal>" for a number: quote the literal.
		v := te.Value
		if lit, ok := strings.CutPrefix(v, "number "); ok {
			v = "number " + Quote(lit)
		}
		field := te.Field
		if te.Struct != "" {
			field = te.Struct + "." + field
		}
		msg = fmt.Sprintf("json: cannot unmarshal %s into field %s of type %s", v, Quote(field), te.Type)
	case errors.As(err, &pe):
		msg = fmt.Sprintf("time %s: want RFC 3339 (%s)", Quote(pe.Value), pe.Layout)
	default:
		msg = err.Error()
		if len(msg) <= MaxErrorText {
			return err
		}
		msg = strings.ToValidUTF8(msg[:cutAt(msg, MaxErrorText)], "\uFFFD") + "…(" + strconv.Itoa(len(msg)) + " bytes)"
	}
	return &boundError{msg: msg, err: err}
}

type boundError struct {
	msg string
	err error
}

func (e *boundError) Error() string { return e.msg }
func (e *boundError) Unwrap() error { return e.err }
