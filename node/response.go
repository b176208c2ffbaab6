package node

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/prdcredit/ccnode/credit"
)

// responseWriters are the buffers bank API answers are written through.
var responseWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}

// writeConsolidated writes c as the JSON of Consolidated, region by region
// through a bounded buffer: each report in its canonical encoding straight
// from credit.ReportWriter, never built whole nor re-scanned by
// encoding/json (which validates and compacts every Marshaler's output).
func writeConsolidated(w http.ResponseWriter, c *Consolidated) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := responseWriters.Get().(*bufio.Writer)
	bw.Reset(w)
	defer func() {
		bw.Reset(nil)
		responseWriters.Put(bw)
	}()
	b := make([]byte, 0, 4096)
	b = append(b, `{"query_digest":`...)
	b = appendString(b, c.QueryDigest)
	b = append(b, `,"uscc":`...)
	b = appendString(b, string(c.Subject))
	b = append(b, `,"bank":`...)
	b = appendString(b, string(c.Bank))
	b = append(b, `,"home_region":`...)
	b = appendString(b, string(c.Home))
	b = append(b, `,"record_count":`...)
	b = strconv.AppendInt(b, int64(c.RecordCount), 10)
	b = append(b, `,"regions":[`...)
	for i := range c.Regions {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendRegionStatus(bw, b, &c.Regions[i]); err != nil {
			return err
		}
	}
	b = append(b, `],"elapsed_ms":`...)
	b = strconv.AppendFloat(b, c.Elapsed, 'f', -1, 64)
	b = append(b, "}\n"...)
	if _, err := bw.Write(b); err != nil {
		return err
	}
	return bw.Flush()
}

// appendRegionStatus appends st to b, writing b and then the report to w
// when st carries one; it returns what is left to write.
func appendRegionStatus(w io.Writer, b []byte, st *RegionStatus) ([]byte, error) {
	b = append(b, `{"region":`...)
	b = appendString(b, string(st.Region))
	b = append(b, `,"status":`...)
	b = appendString(b, st.Status)
	if st.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendString(b, string(st.Reason))
	}
	if st.Message != "" {
		b = append(b, `,"message":`...)
		b = appendString(b, st.Message)
	}
	b = append(b, `,"record_count":`...)
	b = strconv.AppendInt(b, int64(st.RecordCount), 10)
	if st.Report != nil {
		b = append(b, `,"report":`...)
		if _, err := w.Write(b); err != nil {
			return b[:0], err
		}
		b = b[:0]
		rw := credit.NewReportWriter(w, st.Report.Subject)
		for _, s := range st.Report.Sections {
			if err := rw.Add(s.Records); err != nil {
				return b, err
			}
		}
		if err := rw.Close(); err != nil {
			return b, err
		}
	}
	if st.Receipt != nil {
		leaf, err := st.Receipt.LeafBytes()
		if err != nil {
			return b, err
		}
		b = append(append(b, `,"receipt":`...), leaf...)
	}
	if st.LeafIndex != nil {
		b = append(b, `,"leaf_index":`...)
		b = strconv.AppendUint(b, *st.LeafIndex, 10)
	}
	if st.Ack != nil {
		ack, err := json.Marshal(st.Ack)
		if err != nil {
			return b, err
		}
		b = append(append(b, `,"ack":`...), ack...)
	}
	return append(b, '}'), nil
}

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD,
// as encoding/json writes it.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
