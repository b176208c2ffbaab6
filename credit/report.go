package credit

import (
	"crypto/sha256"
	"encoding/json"
	"slices"
	"sync"
)

// Section holds a report's records of one category, oldest first.
type Section struct {
	Category Category `json:"category"`
	Records  []Record `json:"records"`
}

// Report is one region's records about one subject, grouped by category in
// report order. A consolidated report is a set of these, one per region.
type Report struct {
	Subject  USCC      `json:"uscc"`
	Sections []Section `json:"sections"`
}

// NewReport groups records, which must be in (category, date) order as the
// store returns them, into sections. The caller hands records over: each
// section is a run of them, not a copy (capped, so that appending to one
// section never writes over the next).
func NewReport(subject USCC, records []Record) Report {
	rep := Report{Subject: subject, Sections: []Section{}}
	start := 0
	for i := 1; i <= len(records); i++ {
		if i == len(records) || records[i].Category != records[start].Category {
			rep.Sections = append(rep.Sections, Section{Category: records[start].Category, Records: records[start:i:i]})
			start = i
		}
	}
	return rep
}

// Count is the number of records in the report.
func (r *Report) Count() int {
	n := 0
	for _, s := range r.Sections {
		n += len(s.Records)
	}
	return n
}

// Categories lists the categories that have records.
func (r *Report) Categories() []Category {
	out := make([]Category, 0, len(r.Sections))
	for _, s := range r.Sections {
		out = append(out, s.Category)
	}
	return out
}

// AppendCanonical appends the report's canonical encoding, equal to
// encoding/json's output for Report with normalised records.
func (r *Report) AppendCanonical(b []byte) []byte {
	b = append(b, `{"uscc":`...)
	b = appendJSONString(b, string(r.Subject))
	b = append(b, `,"sections":[`...)
	for i, s := range r.Sections {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"category":`...)
		b = appendJSONString(b, string(s.Category))
		b = append(b, `,"records":`...)
		if s.Records == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, '[')
			for j := range s.Records {
				if j > 0 {
					b = append(b, ',')
				}
				b = s.Records[j].AppendCanonical(b)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// MarshalJSON emits the canonical encoding. The buffer is sized once from
// canonicalSize: grown record by record from nil, a report of ~180
// records was copied and cleared about twenty times over, which cost the
// home node more than the encoding itself (BenchmarkReportJSON).
func (r Report) MarshalJSON() ([]byte, error) {
	return r.AppendCanonical(make([]byte, 0, r.canonicalSize())), nil
}

// canonicalSize is the length of the canonical encoding when no string
// needs escaping (the usual case), and a lower bound otherwise.
func (r *Report) canonicalSize() int {
	n := len(`{"uscc":"","sections":[]}`) + len(r.Subject)
	for i := range r.Sections {
		s := &r.Sections[i]
		n += len(`{"category":"","records":[]},`) + len(s.Category)
		for j := range s.Records {
			n += s.Records[j].canonicalSize() + 1
		}
	}
	return n
}

// Digest is SHA-256 over "ccnode/report/v1\n" and the canonical encoding;
// receipts carry it so the answer can be checked against the receipt.
func (r *Report) Digest() [32]byte {
	// The canonical form (~40 KB for an average enterprise) is only
	// hashed, never kept, and both sides of every answer compute it: the
	// buffer is reused rather than left to the garbage collector.
	p := digestBufs.Get().(*[]byte)
	b := slices.Grow((*p)[:0], len(reportDigestTag)+r.canonicalSize())
	b = r.AppendCanonical(append(b, reportDigestTag...))
	out := sha256.Sum256(b)
	if cap(b) <= maxPooledDigestBuf {
		*p = b[:0]
		digestBufs.Put(p)
	}
	return out
}

// DigestCanonical is Digest, and also the canonical encoding it hashed,
// appended to b: a home node writes those bytes to the bank instead of
// encoding the report again.
func (r *Report) DigestCanonical(b []byte) ([32]byte, []byte) {
	start := len(b)
	b = r.AppendCanonical(slices.Grow(b, r.canonicalSize()))
	h := sha256.New()
	h.Write([]byte(reportDigestTag))
	h.Write(b[start:])
	var out [32]byte
	h.Sum(out[:0])
	return out, b
}

const reportDigestTag = "ccnode/report/v1\n"

var digestBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// maxPooledDigestBuf: a very large report's buffer is not kept.
const maxPooledDigestBuf = 1 << 20

// MarshalJSON emits the canonical encoding, into a buffer sized once.
func (r Record) MarshalJSON() ([]byte, error) {
	return r.AppendCanonical(make([]byte, 0, r.canonicalSize())), nil
}

// canonicalSize is Record.AppendCanonical's length when no string needs
// escaping, and a lower bound otherwise.
func (r *Record) canonicalSize() int {
	n := len(`{"uscc":"","source":"","source_id":"","category":"","date":"","attrs":}`) +
		len(r.Subject) + len(r.Source) + len(r.SourceID) + len(r.Category) + len(r.Date)
	if len(r.Attrs) == 0 {
		return n + len("null")
	}
	return n + len(r.Attrs)
}

var _ json.Marshaler = Record{}
