package node

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/prdcredit/ccnode/credit"
)

// responseWriters are the buffers bank API answers are written through.
var responseWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}

// answerBufs holds the buffers of bank API answers built whole.
var answerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 128<<10); return &b }}

// writeConsolidated writes c as the JSON of Consolidated, region by region:
// each report in its canonical encoding straight from credit.ReportWriter
// or as its status holds it, never built whole nor re-scanned by
// encoding/json (which validates and compacts every Marshaler's output).
// When every report's encoding is held (each at most heldCanonicalMax),
// the answer is built in one buffer and sent with its length in one
// write, instead of chunk by chunk (two system calls each); otherwise it
// goes through a bounded buffer.
func writeConsolidated(w http.ResponseWriter, c *Consolidated) error {
	w.Header().Set("Content-Type", "application/json")
	if allHeld(c) {
		bp := answerBufs.Get().(*[]byte)
		buf := bytes.NewBuffer((*bp)[:0])
		defer func() {
			if b := buf.Bytes(); cap(b) <= heldCanonicalMax {
				*bp = b[:0]
				answerBufs.Put(bp)
			}
		}()
		if err := encodeConsolidated(buf, c); err != nil {
			return err
		}
		w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
		w.WriteHeader(http.StatusOK)
		_, err := w.Write(buf.Bytes())
		return err
	}
	w.WriteHeader(http.StatusOK)
	bw := responseWriters.Get().(*bufio.Writer)
	bw.Reset(w)
	defer func() {
		bw.Reset(nil)
		responseWriters.Put(bw)
	}()
	if err := encodeConsolidated(bw, c); err != nil {
		return err
	}
	return bw.Flush()
}

// allHeld tells whether c's statuses hold the encoding of each of their reports.
func allHeld(c *Consolidated) bool {
	for i := range c.Regions {
		if c.Regions[i].Report != nil && c.Regions[i].Canon == nil {
			return false
		}
	}
	return true
}

// encodeConsolidated writes c's JSON to w.
func encodeConsolidated(w io.Writer, c *Consolidated) error {
	b := make([]byte, 0, 4096)
	b = append(b, `{"query_digest":`...)
	b = credit.AppendJSONString(b, c.QueryDigest)
	b = append(b, `,"uscc":`...)
	b = credit.AppendJSONString(b, string(c.Subject))
	b = append(b, `,"bank":`...)
	b = credit.AppendJSONString(b, string(c.Bank))
	b = append(b, `,"home_region":`...)
	b = credit.AppendJSONString(b, string(c.Home))
	b = append(b, `,"record_count":`...)
	b = strconv.AppendInt(b, int64(c.RecordCount), 10)
	b = append(b, `,"regions":[`...)
	for i := range c.Regions {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendRegionStatus(w, b, &c.Regions[i]); err != nil {
			return err
		}
	}
	b = append(b, `],"elapsed_ms":`...)
	b = strconv.AppendFloat(b, c.Elapsed, 'f', -1, 64)
	b = append(b, "}\n"...)
	_, err := w.Write(b)
	return err
}

// appendRegionStatus appends st to b, writing b and then the report to w
// when st carries one; it returns what is left to write.
func appendRegionStatus(w io.Writer, b []byte, st *RegionStatus) ([]byte, error) {
	b = append(b, `{"region":`...)
	b = credit.AppendJSONString(b, string(st.Region))
	b = append(b, `,"status":`...)
	b = credit.AppendJSONString(b, st.Status)
	if st.Reason != "" {
		b = append(b, `,"reason":`...)
		b = credit.AppendJSONString(b, string(st.Reason))
	}
	if st.Message != "" {
		b = append(b, `,"message":`...)
		b = credit.AppendJSONString(b, st.Message)
	}
	b = append(b, `,"record_count":`...)
	b = strconv.AppendInt(b, int64(st.RecordCount), 10)
	if st.Report != nil {
		b = append(b, `,"report":`...)
		if _, err := w.Write(b); err != nil {
			return b[:0], err
		}
		b = b[:0]
		if err := writeReport(w, st); err != nil {
			return b, err
		}
	}
	if st.Receipt != nil {
		leaf := st.Leaf
		if leaf == nil {
			var err error
			if leaf, err = st.Receipt.LeafBytes(); err != nil {
				return b, err
			}
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

// writeReport writes st's report: the canonical bytes the status holds
// (encoded for its digest, or while the other regions answered), else
// encoded now.
func writeReport(w io.Writer, st *RegionStatus) error {
	if st.Canon != nil {
		_, err := w.Write(st.Canon)
		return err
	}
	rw := credit.NewReportWriter(w, st.Report.Subject)
	for _, s := range st.Report.Sections {
		if err := rw.Add(s.Records); err != nil {
			return err
		}
	}
	return rw.Close()
}
