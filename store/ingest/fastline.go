package ingest

import (
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/store"
)

// appendFastJSON parses, validates and encodes one JSON line into lb in
// one pass over the line, for the shape almost every line of a feed has:
// one flat object with the six known keys, each once, string values without
// escapes, attrs an object already in canonical form (credit's
// CanonicalObjectLen), every string valid UTF-8. It appends nothing and
// returns false for anything else, valid or not, and the caller takes the
// general path (utf8.Valid, ParseJSONLine, Normalize, LoadBatch.Append),
// which also says why a bad line is bad. FuzzAppendFastJSON holds the two
// paths to the same bytes.
//
// The general path read the line four times (UTF-8, syntax, the attrs'
// end, their canonical form) and copied every field into a string of its
// own; this reads it once and allocates nothing.
func appendFastJSON(lb *store.LoadBatch, line []byte, now time.Time, tol time.Duration) bool {
	i := skipWS(line, 0)
	if i >= len(line) || line[i] != '{' {
		return false
	}
	i++
	var seen uint8
	var r credit.Record
	for {
		i = skipWS(line, i)
		key, next, ok := plainString(line, i)
		if !ok {
			return false
		}
		i = skipWS(line, next)
		if i >= len(line) || line[i] != ':' {
			return false
		}
		i = skipWS(line, i+1)
		var bit uint8
		if string(key) == "attrs" {
			bit = 1 << 5
			n, ok := credit.CanonicalObjectLen(line[i:])
			if !ok {
				return false
			}
			r.Attrs = line[i : i+n : i+n]
			i += n
		} else {
			val, next, hi, ok := plainStringHi(line, i)
			if !ok || hi && !utf8.Valid(val) {
				return false
			}
			i = next
			// Views of the line, not copies: r lives only until Append
			// below has copied its fields into lb, and no error that
			// could hold them leaves this function.
			s := unsafe.String(unsafe.SliceData(val), len(val))
			switch string(key) {
			case "uscc":
				bit = 1 << 0
				r.Subject = credit.USCC(s)
			case "source":
				bit = 1 << 1
				r.Source = s
			case "source_id":
				bit = 1 << 2
				r.SourceID = s
			case "category":
				bit = 1 << 3
				r.Category = credit.Category(s)
			case "date":
				bit = 1 << 4
				r.Date = credit.Date(s)
			default:
				return false
			}
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		i = skipWS(line, i)
		if i >= len(line) {
			return false
		}
		if line[i] == '}' {
			if skipWS(line, i+1) != len(line) || seen != 1<<6-1 {
				return false
			}
			break
		}
		if line[i] != ',' {
			return false
		}
		i++
	}
	if r.NormalizeFields(now, tol) != nil {
		return false
	}
	return lb.Append(&r) == nil
}
