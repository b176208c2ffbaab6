package credit

import (
	"crypto/sha256"
	"hash"
)

// ReportDigest computes Report.Digest over records that arrive in report
// order in any number of pieces, so that an answering node can digest a
// slice it never holds whole. Sum equals NewReport(subject, all).Digest().
type ReportDigest struct {
	h     hash.Hash
	buf   []byte
	count int
	cats  []Category
}

// NewReportDigest starts the digest of subject's report.
func NewReportDigest(subject USCC) *ReportDigest {
	d := &ReportDigest{h: sha256.New(), buf: make([]byte, 0, 16<<10), cats: []Category{}}
	d.buf = append(d.buf, "ccnode/report/v1\n"...)
	d.buf = append(d.buf, `{"uscc":`...)
	d.buf = appendJSONString(d.buf, string(subject))
	d.buf = append(d.buf, `,"sections":[`...)
	return d
}

// Add digests the next records; they must continue the (category, date)
// order of those added before.
func (d *ReportDigest) Add(recs []Record) {
	for i := range recs {
		r := &recs[i]
		switch n := len(d.cats); {
		case n == 0 || d.cats[n-1] != r.Category:
			if n > 0 {
				d.buf = append(d.buf, "]},"...)
			}
			d.cats = append(d.cats, r.Category)
			d.buf = append(d.buf, `{"category":`...)
			d.buf = appendJSONString(d.buf, string(r.Category))
			d.buf = append(d.buf, `,"records":[`...)
		default:
			d.buf = append(d.buf, ',')
		}
		d.buf = r.AppendCanonical(d.buf)
		d.count++
		if len(d.buf) >= 8<<10 {
			d.h.Write(d.buf)
			d.buf = d.buf[:0]
		}
	}
}

// Count is the number of records added.
func (d *ReportDigest) Count() int { return d.count }

// Categories lists the categories of the records added, in order (empty,
// not nil, for none, as Report.Categories).
func (d *ReportDigest) Categories() []Category { return d.cats }

// Sum ends the report and returns its digest; call it once.
func (d *ReportDigest) Sum() [32]byte {
	if len(d.cats) > 0 {
		d.buf = append(d.buf, "]}"...)
	}
	d.buf = append(d.buf, "]}"...)
	d.h.Write(d.buf)
	var out [32]byte
	d.h.Sum(out[:0])
	return out
}
