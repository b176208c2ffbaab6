package p2p

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"testing"

	"github.com/prdcredit/ccnode/credit"
)

// BenchmarkWire is the transport's own share of an answer with the
// generated code: the server cutting a slice into Chunk frames and the
// client decoding them, for an average enterprise (183 records, ~40 KB)
// and a large one (100,000 records), at the default chunk size.
func BenchmarkWire(b *testing.B) {
	u, _ := credit.CompleteUSCC("91440100MA5FABCD1")
	for _, n := range []int{183, 100_000} {
		recs := benchRecords(u, n)
		var frames bytes.Buffer
		w := &answerWriter{st: &frames, max: DefaultChunkBytes}
		w.begun = true
		if err := w.Records(recs); err != nil {
			b.Fatal(err)
		}
		if err := w.flush(true); err != nil {
			b.Fatal(err)
		}
		wire := frames.Bytes()
		b.Run(fmt.Sprintf("encode/%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			w := &answerWriter{st: io.Discard, max: DefaultChunkBytes, begun: true}
			for b.Loop() {
				if err := w.Records(recs); err != nil {
					b.Fatal(err)
				}
				if err := w.flush(true); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("decode/%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				r := bytes.NewReader(wire)
				out := make([]credit.Record, 0, n)
				for {
					f, err := readFrame(r, MaxChunkFrame, buf)
					if err != nil {
						b.Fatal(err)
					}
					buf = f[:0]
					var last bool
					if out, last, err = DecodeChunk(f, u, out); err != nil {
						b.Fatal(err)
					}
					if last {
						break
					}
				}
				if len(out) != n {
					b.Fatalf("%d records", len(out))
				}
			}
		})
	}
}

// benchRecords are records of about 220 bytes, as an average enterprise's.
func benchRecords(u credit.USCC, n int) []credit.Record {
	out := make([]credit.Record, n)
	for i := range out {
		attrs, _ := json.Marshal(map[string]any{
			"amount": 1000 + i*37, "authority": "Shenzhen Market Supervision Administration",
			"decision": "DOC-" + strconv.Itoa(100000+i), "note": "synthetic record for protocol tests and benchmarks",
			"status": "closed",
		})
		a, _ := credit.CanonicalAttrs(attrs)
		out[i] = credit.Record{Subject: u, Source: "dept-tax", SourceID: "src-" + strconv.Itoa(i), Category: credit.Tax,
			Date: credit.Date(fmt.Sprintf("20%02d-%02d-%02d", 10+i%15, 1+i%12, 1+i%28)), Attrs: a}
	}
	return out
}
