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

// csvScratch is a parser's memory for CSV lines, reused line after line.
type csvScratch struct {
	fields [][]byte
	unq    []byte // unquoted fields
}

// appendFastCSV is appendFastJSON for a CSV row: the fields are split
// into reused memory and validated as views of it, and the record is
// appended only when every field is valid. It appends nothing and returns
// false for anything else; the general path (ParseCSVLine, Normalize,
// LoadBatch.Append) then says what is wrong. FuzzAppendFastCSV holds the
// two paths to the same bytes.
func appendFastCSV(lb *store.LoadBatch, h *CSVHeader, line []byte, sc *csvScratch, now time.Time, tol time.Duration) bool {
	if !utf8.Valid(line) {
		return false
	}
	var err error
	sc.fields, sc.unq, err = splitCSVInto(line, sc.fields[:0], sc.unq[:0])
	if err != nil || len(sc.fields) != h.ncols {
		return false
	}
	// Views, as in appendFastJSON: r does not outlive Append, and an
	// error only says to take the general path.
	view := func(k int) string {
		b := sc.fields[h.pos[k]]
		return unsafe.String(unsafe.SliceData(b), len(b))
	}
	r := credit.Record{
		Subject:  credit.USCC(view(0)),
		Source:   view(1),
		SourceID: view(2),
		Category: credit.Category(view(3)),
		Date:     credit.Date(view(4)),
		Attrs:    sc.fields[h.pos[5]],
	}
	if r.Normalize(now, tol) != nil {
		return false
	}
	return lb.Append(&r) == nil
}
