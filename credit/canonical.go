package credit

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// canonicalJSON encodes v as compact JSON without HTML escaping. Struct
// fields come out in declaration order and map keys sorted, which is what
// makes the result canonical for the types of this package.
func canonicalJSON(v any) ([]byte, error) {
	// A receipt with its query and consent document is about 1.7 KB.
	return appendCanonicalJSON(make([]byte, 0, 2048), v)
}

// appendCanonicalJSON appends v's canonical encoding to dst. The signed
// documents encode themselves (canonical_docs.go) to the same bytes
// reflectJSON would write, in a fraction of the time; anything else goes
// through encoding/json.
func appendCanonicalJSON(dst []byte, v any) ([]byte, error) {
	switch d := v.(type) {
	case Receipt:
		return d.appendCanonical(dst, 0)
	case Query:
		return d.appendCanonical(dst, 0)
	case ConsentGrant:
		return d.appendCanonical(dst, 0)
	case Ack:
		return d.appendCanonical(dst, 0)
	}
	b, err := reflectJSON(v)
	if err != nil {
		return nil, err
	}
	return append(dst, b...), nil
}

// reflectJSON is canonicalJSON by encoding/json's reflection, for every
// type: the reference the hand-written encodings are tested against.
func reflectJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// digest is SHA-256 over a domain tag and the canonical encoding of v.
func digest(tag string, v any) ([32]byte, error) {
	var stack [4096]byte
	b := append(stack[:0], tag...)
	b = append(b, '\n')
	b, err := appendCanonicalJSON(b, v)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// ErrAttrs is matched by errors about a record's attributes.
var ErrAttrs = errors.New("invalid attrs")

// MaxAttrsBytes bounds the canonical size of a record's attributes.
const MaxAttrsBytes = 16 << 10

// CanonicalAttrs checks that raw is a JSON object and returns its canonical
// form: compact, keys sorted at every depth, numbers as written.
func CanonicalAttrs(raw []byte) (json.RawMessage, error) {
	if fast, ok := alreadyCanonicalObject(raw); ok {
		return fast, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAttrs, err)
	}
	// Decoder.More only looks inside an array or object: after the top
	// value a stray '}' or ']' passed it, so "{}}" was accepted as {}.
	for _, c := range raw[dec.InputOffset():] {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return nil, fmt.Errorf("%w: trailing data after the object", ErrAttrs)
		}
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("%w: want a JSON object", ErrAttrs)
	}
	out, err := canonicalJSON(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAttrs, err)
	}
	if len(out) > MaxAttrsBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrAttrs, len(out), MaxAttrsBytes)
	}
	return out, nil
}

// alreadyCanonicalObject recognises, without allocating a tree, the common
// case of attributes already in canonical form (see CanonicalObjectLen).
func alreadyCanonicalObject(raw []byte) (json.RawMessage, bool) {
	if n, ok := CanonicalObjectLen(raw); ok && n == len(raw) {
		return raw, true
	}
	return nil, false
}

// CanonicalObjectLen reports whether raw starts with a flat JSON object
// that CanonicalAttrs would return unchanged, and its length: keys sorted,
// values strings, numbers, booleans or null, no insignificant space,
// strings of valid UTF-8 that need no escaping, at most MaxAttrsBytes.
// Import sees millions of such lines and checks them, and finds where the
// object ends, in this one pass; anything else takes CanonicalAttrs.
func CanonicalObjectLen(raw []byte) (int, bool) {
	if len(raw) < 2 || raw[0] != '{' {
		return 0, false
	}
	if raw[1] == '}' {
		return 2, true
	}
	i := 1
	var prevKey []byte
	for {
		key, next, ok := scanPlainString(raw, i)
		if !ok || (prevKey != nil && bytes.Compare(prevKey, key) >= 0) {
			return 0, false
		}
		prevKey = key
		i = next
		if i >= len(raw) || raw[i] != ':' {
			return 0, false
		}
		i++
		if i >= len(raw) {
			return 0, false
		}
		switch c := raw[i]; {
		case c == '"':
			_, next, ok = scanPlainString(raw, i)
			if !ok {
				return 0, false
			}
			i = next
		case c == '-' || (c >= '0' && c <= '9'):
			next, ok = scanNumber(raw, i)
			if !ok {
				return 0, false
			}
			i = next
		case bytes.HasPrefix(raw[i:], []byte("true")):
			i += 4
		case bytes.HasPrefix(raw[i:], []byte("false")):
			i += 5
		case bytes.HasPrefix(raw[i:], []byte("null")):
			i += 4
		default:
			return 0, false
		}
		if i >= len(raw) || i >= MaxAttrsBytes {
			return 0, false
		}
		if raw[i] == '}' {
			return i + 1, true
		}
		if raw[i] != ',' {
			return 0, false
		}
		i++
	}
}

// scanPlainString reads a string starting at raw[i] == '"' that contains no
// escapes, no control characters and only valid UTF-8 that encoding/json
// would write unchanged.
func scanPlainString(raw []byte, i int) (content []byte, next int, ok bool) {
	if i >= len(raw) || raw[i] != '"' {
		return nil, 0, false
	}
	j := i + 1
	for j < len(raw) {
		c := raw[j]
		switch {
		case plainASCII[c]:
			j++
		case c == '"':
			return raw[i+1 : j], j + 1, true
		case c < utf8.RuneSelf: // a control character or a backslash
			return nil, 0, false
		case c&0xf0 == 0xe0 && j+2 < len(raw) && plain3(c, raw[j+1], raw[j+2]):
			// Three bytes, the CJK text of most attributes, checked
			// without decoding.
			j += 3
		default:
			r, size := utf8.DecodeRune(raw[j:])
			if r == utf8.RuneError || r == '\u2028' || r == '\u2029' {
				return nil, 0, false
			}
			j += size
		}
	}
	return nil, 0, false
}

// plainASCII marks the bytes a JSON string holds as they are: printable
// ASCII but the quote and the backslash. One table lookup per byte instead
// of three comparisons: import scans every attribute string with it.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plain3 reports whether c0 c1 c2 (c0 = 0xe0-0xef) is a valid three-byte
// UTF-8 sequence other than U+2028 and U+2029, which encoding/json escapes,
// and U+FFFD, which is also what utf8.DecodeRune says of invalid input:
// what the DecodeRune branch accepts, by the ranges of RFC 3629 (no
// overlong forms, no surrogates).
func plain3(c0, c1, c2 byte) bool {
	lo, hi := byte(0x80), byte(0xbf)
	switch c0 {
	case 0xe0:
		lo = 0xa0
	case 0xed:
		hi = 0x9f
	case 0xe2:
		if c1 == 0x80 && (c2 == 0xa8 || c2 == 0xa9) {
			return false
		}
	case 0xef:
		if c1 == 0xbf && c2 == 0xbd {
			return false
		}
	}
	return lo <= c1 && c1 <= hi && c2&0xc0 == 0x80
}

// scanNumber checks the JSON number grammar from raw[i].
func scanNumber(raw []byte, i int) (int, bool) {
	start := i
	if raw[i] == '-' {
		i++
	}
	if i >= len(raw) {
		return 0, false
	}
	if raw[i] == '0' {
		i++
	} else if raw[i] >= '1' && raw[i] <= '9' {
		for i < len(raw) && raw[i] >= '0' && raw[i] <= '9' {
			i++
		}
	} else {
		return 0, false
	}
	if i < len(raw) && raw[i] == '.' {
		i++
		d := i
		for i < len(raw) && raw[i] >= '0' && raw[i] <= '9' {
			i++
		}
		if i == d {
			return 0, false
		}
	}
	if i < len(raw) && (raw[i] == 'e' || raw[i] == 'E') {
		i++
		if i < len(raw) && (raw[i] == '+' || raw[i] == '-') {
			i++
		}
		d := i
		for i < len(raw) && raw[i] >= '0' && raw[i] <= '9' {
			i++
		}
		if i == d {
			return 0, false
		}
	}
	return i, i > start
}
