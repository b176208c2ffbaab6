package credit

import (
	"crypto/sha256"
	"hash"
	"io"
	"sync"
)

// ReportWriter writes a report's canonical encoding (the bytes of
// Report.AppendCanonical) to an io.Writer as its records arrive, in report
// order and in any number of pieces: an answering node digests a slice it
// never holds whole, and a home node writes a large report to a bank
// without building its encoding in memory.
type ReportWriter struct {
	w     io.Writer
	buf   []byte
	count int
	cats  []Category
	err   error
}

// reportFlush is how much encoding a ReportWriter gathers before it writes;
// its buffers are reused through reportBufs.
const reportFlush = 8 << 10

var reportBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2*reportFlush); return &b }}

// NewReportWriter starts subject's report on w.
func NewReportWriter(w io.Writer, subject USCC) *ReportWriter {
	rw := &ReportWriter{w: w, buf: (*reportBufs.Get().(*[]byte))[:0], cats: []Category{}}
	rw.buf = append(rw.buf, `{"uscc":`...)
	rw.buf = appendJSONString(rw.buf, string(subject))
	rw.buf = append(rw.buf, `,"sections":[`...)
	return rw
}

// Add writes the next records; they continue the (category, date) order
// of those added before. It returns the writer's first error.
func (rw *ReportWriter) Add(recs []Record) error {
	for i := range recs {
		r := &recs[i]
		switch n := len(rw.cats); {
		case n == 0 || rw.cats[n-1] != r.Category:
			if n > 0 {
				rw.buf = append(rw.buf, "]},"...)
			}
			rw.cats = append(rw.cats, r.Category)
			rw.buf = append(rw.buf, `{"category":`...)
			rw.buf = appendJSONString(rw.buf, string(r.Category))
			rw.buf = append(rw.buf, `,"records":[`...)
		default:
			rw.buf = append(rw.buf, ',')
		}
		rw.buf = r.AppendCanonical(rw.buf)
		rw.count++
		if len(rw.buf) >= reportFlush {
			rw.flush()
		}
	}
	return rw.err
}

func (rw *ReportWriter) flush() {
	if rw.err == nil {
		_, rw.err = rw.w.Write(rw.buf)
	}
	rw.buf = rw.buf[:0]
}

// Count is the number of records added.
func (rw *ReportWriter) Count() int { return rw.count }

// Categories lists the categories of the records added, in order (empty,
// not nil, for none, as Report.Categories).
func (rw *ReportWriter) Categories() []Category { return rw.cats }

// Close ends the report and writes what is left; add nothing after it.
func (rw *ReportWriter) Close() error {
	if rw.buf == nil {
		return rw.err
	}
	if len(rw.cats) > 0 {
		rw.buf = append(rw.buf, "]}"...)
	}
	rw.buf = append(rw.buf, "]}"...)
	rw.flush()
	if cap(rw.buf) <= 4*reportFlush {
		b := rw.buf[:0]
		reportBufs.Put(&b)
	}
	rw.buf = nil
	return rw.err
}

// ReportDigest computes Report.Digest over records that arrive in report
// order in any number of pieces. Sum equals NewReport(subject,
// all).Digest().
type ReportDigest struct {
	h hash.Hash
	*ReportWriter
}

// NewReportDigest starts the digest of subject's report.
func NewReportDigest(subject USCC) *ReportDigest {
	h := sha256.New()
	h.Write([]byte(reportDigestTag))
	return &ReportDigest{h: h, ReportWriter: NewReportWriter(h, subject)}
}

// NewReportDigestTee is NewReportDigest that also writes the canonical
// encoding it digests to tee, which must not fail (a failed write would
// leave the digest short).
func NewReportDigestTee(subject USCC, tee io.Writer) *ReportDigest {
	h := sha256.New()
	h.Write([]byte(reportDigestTag))
	return &ReportDigest{h: h, ReportWriter: NewReportWriter(io.MultiWriter(h, tee), subject)}
}

// Add digests the next records, which continue the report order.
func (d *ReportDigest) Add(recs []Record) { _ = d.ReportWriter.Add(recs) }

// Sum ends the report and returns its digest; call it once.
func (d *ReportDigest) Sum() [32]byte {
	_ = d.Close() // a hash never fails to write
	var out [32]byte
	d.h.Sum(out[:0])
	return out
}
