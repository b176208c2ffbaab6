package p2p

import (
	"bytes"
	"testing"

	"github.com/prdcredit/ccnode/credit"
)

// writes records each Write the answer writer makes on its stream.
type writes struct{ calls [][]byte }

func (w *writes) Write(p []byte) (int, error) {
	w.calls = append(w.calls, bytes.Clone(p))
	return len(p), nil
}

// TestAnswerWriterSendsReceiptWithFirstChunk: the Response frame goes out
// in the same Write as the first Chunk, so a slice that fits one chunk is
// one write (one stream frame, one wakeup of the requester), and a larger
// one is a Write per chunk; the frames decode as sent.
func TestAnswerWriterSendsReceiptWithFirstChunk(t *testing.T) {
	u, _ := credit.CompleteUSCC("91440100MA5FABCD1")
	leaf := []byte(`{"receipt":"leaf bytes"}`)
	for _, tc := range []struct {
		name   string
		n      int
		chunk  int
		writes int // 0: more than one
	}{{"empty", 0, DefaultChunkBytes, 1}, {"one chunk", 183, DefaultChunkBytes, 1}, {"many chunks", 2000, MinChunkBytes, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			recs := SyntheticRecords(u, tc.n, true)
			var st writes
			w := &answerWriter{st: &st, max: tc.chunk}
			if err := w.Begin(leaf, 7); err != nil {
				t.Fatal(err)
			}
			if len(st.calls) != 0 {
				t.Fatalf("Begin wrote %d times before any chunk", len(st.calls))
			}
			if err := w.Records(recs); err != nil {
				t.Fatal(err)
			}
			if err := w.flush(true); err != nil {
				t.Fatal(err)
			}
			if tc.writes > 0 && len(st.calls) != tc.writes {
				t.Fatalf("%d writes, want %d", len(st.calls), tc.writes)
			}
			if tc.writes == 0 && len(st.calls) < 2 {
				t.Fatalf("%d writes for %d records in chunks of %d bytes", len(st.calls), tc.n, tc.chunk)
			}
			r := bytes.NewReader(bytes.Join(st.calls, nil))
			b, err := ReadFrame(r, MaxResponseFrame)
			if err != nil {
				t.Fatal(err)
			}
			gotLeaf, idx, err := DecodeResponse(b)
			if err != nil || !bytes.Equal(gotLeaf, leaf) || idx != 7 {
				t.Fatalf("response: %q %d %v", gotLeaf, idx, err)
			}
			var got []credit.Record
			for last := false; !last; {
				b, err := ReadFrame(r, MaxChunkFrame)
				if err != nil {
					t.Fatalf("chunk after %d records: %v", len(got), err)
				}
				if got, last, err = DecodeChunk(b, u, got); err != nil {
					t.Fatal(err)
				}
			}
			if r.Len() != 0 || len(got) != tc.n {
				t.Fatalf("%d records and %d bytes left, want %d records", len(got), r.Len(), tc.n)
			}
			for i := range got {
				if got[i].SourceID != recs[i].SourceID || !bytes.Equal(got[i].Attrs, recs[i].Attrs) {
					t.Fatalf("record %d: %+v, sent %+v", i, got[i], recs[i])
				}
			}
		})
	}
}
