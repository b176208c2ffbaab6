package p2p

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
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
		recs := SyntheticRecords(u, n, true)
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

// SyntheticRecords makes n records on u in report order for the tests
// and benchmarks; big ones are about 220 bytes (183 make an average
// enterprise's ~40 KB slice), small ones about 70.
func SyntheticRecords(u credit.USCC, n int, big bool) []credit.Record {
	cats := credit.AllCategories()
	out := make([]credit.Record, 0, n)
	for i := 0; i < n; i++ {
		c := cats[i*len(cats)/n]
		attrs := json.RawMessage(`{"n":` + strconv.Itoa(i) + `}`)
		if big {
			b, _ := json.Marshal(map[string]any{
				"amount": 1000 + i*37, "authority": "Shenzhen Market Supervision Administration",
				"decision": "DOC-" + strconv.Itoa(100000+i), "note": "synthetic record for protocol tests and benchmarks",
				"status": "closed",
			})
			attrs, _ = credit.CanonicalAttrs(b)
		}
		out = append(out, credit.Record{
			Subject: u, Source: "dept-" + string(c), SourceID: "src-" + strconv.Itoa(i), Category: c,
			Date: credit.Date(fmt.Sprintf("20%02d-%02d-%02d", 10+i%15, 1+i%12, 1+i%28)), Attrs: attrs,
		})
	}
	slices.SortStableFunc(out, func(a, b credit.Record) int {
		if d := a.Category.Ordinal() - b.Category.Ordinal(); d != 0 {
			return d
		}
		return strings.Compare(string(a.Date), string(b.Date))
	})
	return out
}
