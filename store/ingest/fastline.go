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
	f, ok := scanFlatLine(line, true)
	if !ok || f.seen != allFields {
		return false
	}
	for k, v := range f.val {
		if f.hi&(1<<k) != 0 && !utf8.Valid(v) {
			return false
		}
	}
	// Views of the line, not copies: r lives only until Append below has
	// copied its fields into lb, and no error that could hold them leaves
	// this function.
	view := func(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
	r := credit.Record{
		Subject:  credit.USCC(view(f.val[0])),
		Source:   view(f.val[1]),
		SourceID: view(f.val[2]),
		Category: credit.Category(view(f.val[3])),
		Date:     credit.Date(view(f.val[4])),
		Attrs:    f.attrs,
	}
	if r.NormalizeFields(now, tol) != nil {
		return false
	}
	return lb.Append(&r) == nil
}
