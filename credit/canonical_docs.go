package credit

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// The signed documents (consent, query, receipt, acknowledgement) are
// encoded by hand: every signature and every receipt digest covers these
// bytes, and an auditor encodes three documents per receipt, so the
// reflection of encoding/json was a large part of an audit's cost. Strings
// go through appendJSONString (record.go), shared with the records. The
// output is byte for byte what encoding/json writes for the same value
// with HTML escaping off (fields in declaration order, []byte as standard
// base64, nil slices and pointers as null, times as RFC 3339 with
// nanoseconds): a signature made before this encoder existed still
// verifies. TestCanonicalDocsMatchReflection and FuzzCanonicalDocs hold
// the two together; a field added to one of these types must be added
// here too, or those tests fail.

// encFlags change what appendCanonical writes.
type encFlags uint8

const (
	// encNormalized writes the document as normalized() would make it
	// (times in UTC, categories in report order), without the copies.
	encNormalized encFlags = 1 << iota
	// encUnsigned writes the document's own signature as null: the
	// bytes its signer signed.
	encUnsigned
)

// time returns t as the flags want it written.
func (f encFlags) time(t time.Time) time.Time {
	if f&encNormalized != 0 {
		return utc(t)
	}
	return t
}

// categories returns cs as the flags want them written.
func (f encFlags) categories(cs []Category) []Category {
	if f&encNormalized != 0 {
		return normalizedCategories(cs)
	}
	return cs
}

// normalizedCategories is NormalizeCategories(cs) without its copy when cs
// is already in report order without repeats, as in every document an
// honest party signed.
func normalizedCategories(cs []Category) []Category {
	prev := -1
	for i, c := range cs {
		o := c.Ordinal()
		if o < 0 || (i > 0 && o <= prev) {
			return NormalizeCategories(cs)
		}
		prev = o
	}
	return cs
}

func (g *ConsentGrant) appendCanonical(dst []byte, f encFlags) ([]byte, error) {
	var err error
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, int64(g.Version), 10)
	dst = append(dst, `,"id":`...)
	dst = appendJSONString(dst, g.ID)
	dst = append(dst, `,"uscc":`...)
	dst = appendJSONString(dst, string(g.Subject))
	dst = append(dst, `,"grantee":`...)
	dst = appendJSONString(dst, string(g.Grantee))
	dst = append(dst, `,"categories":`...)
	dst = appendJSONCategories(dst, f.categories(g.Categories))
	dst = append(dst, `,"purpose":`...)
	dst = appendJSONString(dst, string(g.Purpose))
	dst = append(dst, `,"valid_from":`...)
	if dst, err = appendJSONTime(dst, f.time(g.ValidFrom)); err != nil {
		return nil, fmt.Errorf("consent valid_from: %w", err)
	}
	dst = append(dst, `,"valid_until":`...)
	if dst, err = appendJSONTime(dst, f.time(g.ValidUntil)); err != nil {
		return nil, fmt.Errorf("consent valid_until: %w", err)
	}
	dst = append(dst, `,"region":`...)
	dst = appendJSONString(dst, string(g.Region))
	dst = append(dst, `,"signed_at":`...)
	if dst, err = appendJSONTime(dst, f.time(g.SignedAt)); err != nil {
		return nil, fmt.Errorf("consent signed_at: %w", err)
	}
	dst = append(dst, `,"enterprise_cert":`...)
	if g.EnterpriseCert == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i, c := range g.EnterpriseCert {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONBytes(dst, c)
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"enterprise_sig":`...)
	dst = appendJSONBytes(dst, g.EnterpriseSig)
	dst = append(dst, `,"region_sig":`...)
	dst = appendJSONBytes(dst, g.RegionSig)
	return append(dst, '}'), nil
}

func (q *Query) appendCanonical(dst []byte, f encFlags) ([]byte, error) {
	dst, _, _, err := q.appendCanonicalSpan(dst, f)
	return dst, err
}

// appendCanonicalSpan is appendCanonical that also says where in the
// output the consent document is (an empty span when there is none).
func (q *Query) appendCanonicalSpan(dst []byte, f encFlags) (out []byte, cStart, cEnd int, err error) {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, int64(q.Version), 10)
	dst = append(dst, `,"bank":`...)
	dst = appendJSONString(dst, string(q.Bank))
	dst = append(dst, `,"uscc":`...)
	dst = appendJSONString(dst, string(q.Subject))
	dst = append(dst, `,"categories":`...)
	dst = appendJSONCategories(dst, f.categories(q.Categories))
	dst = append(dst, `,"purpose":`...)
	dst = appendJSONString(dst, string(q.Purpose))
	dst = append(dst, `,"consent_id":`...)
	dst = appendJSONString(dst, q.ConsentID)
	dst = append(dst, `,"consent":`...)
	if q.Consent == nil {
		dst = append(dst, "null"...)
	} else {
		cStart = len(dst)
		if dst, err = q.Consent.appendCanonical(dst, f&^encUnsigned); err != nil {
			return nil, 0, 0, fmt.Errorf("query consent: %w", err)
		}
		cEnd = len(dst)
	}
	dst = append(dst, `,"nonce":`...)
	dst = appendJSONString(dst, q.Nonce)
	if dst, err = appendTimeSig(dst, f, "query", q.Time, q.Sig); err != nil {
		return nil, 0, 0, err
	}
	return dst, cStart, cEnd, nil
}

func (r *Receipt) appendCanonical(dst []byte, f encFlags) ([]byte, error) {
	var err error
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, int64(r.Version), 10)
	dst = append(dst, `,"id":`...)
	dst = appendJSONString(dst, r.ID)
	dst = append(dst, `,"query":`...)
	if dst, err = r.Query.appendCanonical(dst, f&^encUnsigned); err != nil {
		return nil, fmt.Errorf("receipt query: %w", err)
	}
	dst = append(dst, `,"requester":`...)
	dst = appendJSONString(dst, string(r.Requester))
	dst = append(dst, `,"answerer":`...)
	dst = appendJSONString(dst, string(r.Answerer))
	dst = append(dst, `,"categories":`...)
	dst = appendJSONCategories(dst, f.categories(r.Categories))
	dst = append(dst, `,"report_digest":`...)
	dst = appendJSONBytes(dst, r.ReportDigest)
	dst = append(dst, `,"record_count":`...)
	dst = strconv.AppendInt(dst, int64(r.RecordCount), 10)
	return appendTimeSig(dst, f, "receipt", r.Time, r.Sig)
}

func (a *Ack) appendCanonical(dst []byte, f encFlags) ([]byte, error) {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, int64(a.Version), 10)
	dst = append(dst, `,"receipt_id":`...)
	dst = appendJSONString(dst, a.ReceiptID)
	dst = append(dst, `,"receipt_digest":`...)
	dst = appendJSONBytes(dst, a.ReceiptDigest)
	dst = append(dst, `,"requester":`...)
	dst = appendJSONString(dst, string(a.Requester))
	return appendTimeSig(dst, f, "ack", a.Time, a.Sig)
}

// appendTimeSig appends the "time" and "sig" fields that end the query,
// the receipt and the acknowledgement, and the closing brace.
func appendTimeSig(dst []byte, f encFlags, doc string, t time.Time, sig []byte) ([]byte, error) {
	dst = append(dst, `,"time":`...)
	dst, err := appendJSONTime(dst, f.time(t))
	if err != nil {
		return nil, fmt.Errorf("%s time: %w", doc, err)
	}
	dst = append(dst, `,"sig":`...)
	if f&encUnsigned != 0 {
		dst = append(dst, "null"...)
	} else {
		dst = appendJSONBytes(dst, sig)
	}
	return append(dst, '}'), nil
}

// appendJSONBytes appends b as encoding/json does: standard base64 in
// quotes, null for a nil slice.
func appendJSONBytes(dst, b []byte) []byte {
	if b == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, '"')
}

// appendJSONCategories appends cs as a JSON array of strings, null when nil.
func appendJSONCategories(dst []byte, cs []Category) []byte {
	if cs == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, c := range cs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, string(c))
	}
	return append(dst, ']')
}

// errJSONTime is what time.Time's MarshalJSON refuses: a time RFC 3339
// cannot write.
var errJSONTime = errors.New("time cannot be written as RFC 3339")

// appendJSONTime appends t as time.Time's MarshalJSON does, refusing what
// it refuses: a year outside 0..9999 and a zone offset of 24 hours or more.
func appendJSONTime(dst []byte, t time.Time) ([]byte, error) {
	dst = append(dst, '"')
	if t.Location() == time.UTC {
		// Every time of a normalised document: written directly, which
		// costs a fraction of AppendFormat's general layout machinery.
		year, month, day := t.Date()
		if year >= 0 && year <= 9999 {
			hour, minute, sec := t.Clock()
			dst = appendDigits(dst, year, 4)
			dst = append(dst, '-')
			dst = appendDigits(dst, int(month), 2)
			dst = append(dst, '-')
			dst = appendDigits(dst, day, 2)
			dst = append(dst, 'T')
			dst = appendDigits(dst, hour, 2)
			dst = append(dst, ':')
			dst = appendDigits(dst, minute, 2)
			dst = append(dst, ':')
			dst = appendDigits(dst, sec, 2)
			if ns := t.Nanosecond(); ns != 0 {
				// RFC3339Nano's ".999999999": trailing zeros dropped.
				digits := 9
				for ns%10 == 0 {
					ns /= 10
					digits--
				}
				dst = append(dst, '.')
				dst = appendDigits(dst, ns, digits)
			}
			return append(dst, 'Z', '"'), nil
		}
	}
	n0 := len(dst)
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	if dst[n0+len("9999")] != '-' {
		return nil, fmt.Errorf("%w: year outside of range [0,9999]", errJSONTime)
	}
	if dst[len(dst)-1] != 'Z' {
		c := dst[len(dst)-len("Z07:00")]
		h := dst[len(dst)-len("07:00"):]
		if ('0' <= c && c <= '9') || 10*(h[0]-'0')+(h[1]-'0') >= 24 {
			return nil, fmt.Errorf("%w: timezone hour outside of range [0,23]", errJSONTime)
		}
	}
	return append(dst, '"'), nil
}

// appendDigits appends v, which is not negative, as exactly width decimal
// digits.
func appendDigits(dst []byte, v, width int) []byte {
	var buf [9]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:width]...)
}
