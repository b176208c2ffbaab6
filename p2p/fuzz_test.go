package p2p_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/p2p"
	"github.com/prdcredit/ccnode/p2p/pb"
)

// The fuzz targets cover every decoder of another region's bytes: the
// frame reader, and the request, response, chunk and ack messages. Their
// seed corpora are in testdata/fuzz (TestFuzzSeeds writes them).

func message(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seeds are valid messages of each kind and a few broken ones.
type seeds struct {
	request, response, refusal, chunk, ack []byte
}

func makeSeeds(t testing.TB) seeds {
	ans := newRegion(t, 1)
	q, qj := newQuery(t, testSubject(t), ans)
	req := &p2p.Request{Requester: "440300", Query: *q, QueryJSON: qj}
	recs := testRecords(q.Subject, 5, true)
	rc, err := credit.DecodeReceipt(signedReceipt(t, ans, req, recs))
	if err != nil {
		t.Fatal(err)
	}
	ack, err := credit.NewAck(&rc, "440300", rc.Time, newRegion(t, 0).Key)
	if err != nil {
		t.Fatal(err)
	}
	var chunk pb.Chunk
	for _, r := range recs {
		chunk.Records = append(chunk.Records, &pb.Record{Source: r.Source, SourceId: r.SourceID, Category: string(r.Category), Date: string(r.Date), Attrs: r.Attrs})
	}
	chunk.Last = true
	aj, _ := ackJSON(ack)
	return seeds{
		request:  message(t, &pb.Request{Requester: "440300", Query: qj}),
		response: message(t, &pb.Response{Receipt: signedReceipt(t, ans, req, recs), LeafIndex: 7}),
		refusal:  message(t, &pb.Response{Error: &pb.Error{Code: string(credit.CodeConsentRevoked), Message: "consent x"}}),
		chunk:    message(t, &chunk),
		ack:      message(t, &pb.Ack{Ack: aj}),
	}
}

// FuzzReadFrame: any bytes give a frame within the limit or an error;
// never a panic or an allocation past the limit.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0x00})
	f.Add([]byte{0x03, 'a', 'b', 'c'})
	f.Add([]byte{0x80, 0x80, 0x04})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 1 << 10
		r := bytes.NewReader(in)
		b, err := p2p.ReadFrame(r, max)
		if err != nil {
			if len(in) > 0 && !errors.Is(err, p2p.ErrFrameTooLarge) && !errors.Is(err, p2p.ErrMalformed) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(b) > max {
			t.Fatalf("frame of %d bytes past the limit", len(b))
		}
		// The frame is the bytes right after its length prefix, and
		// nothing past them was consumed.
		end := len(in) - r.Len()
		if !bytes.Equal(in[end-len(b):end], b) {
			t.Fatal("the frame read is not the bytes after its length")
		}
	})
}

// FuzzDecodeRequest: a request decodes to a valid query or is refused;
// what decodes encodes to a request that decodes the same.
func FuzzDecodeRequest(f *testing.F) {
	s := makeSeeds(f)
	f.Add(s.request)
	f.Add(s.request[:40])
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := p2p.DecodeRequest(in)
		if err != nil {
			if !errors.Is(err, p2p.ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if err := r.Query.Validate(); err != nil {
			t.Fatalf("decoded an invalid query: %v", err)
		}
		frame := p2p.EncodeRequest(r.Requester, r.QueryJSON)
		b, err := p2p.ReadFrame(bytes.NewReader(frame), p2p.MaxRequestFrame+16)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := p2p.DecodeRequest(b)
		if err != nil || r2.Requester != r.Requester || !bytes.Equal(r2.QueryJSON, r.QueryJSON) {
			t.Fatalf("re-encoded request: %v", err)
		}
	})
}

// FuzzDecodeResponse: an answer's first frame is a refusal with a known
// code, a receipt, or ErrMalformed.
func FuzzDecodeResponse(f *testing.F) {
	s := makeSeeds(f)
	f.Add(s.response)
	f.Add(s.refusal)
	f.Add(s.response[:len(s.response)/2])
	f.Fuzz(func(t *testing.T, in []byte) {
		receipt, _, err := p2p.DecodeResponse(in)
		if r := credit.RefusalOf(err); r != nil {
			if !r.Code.Known() {
				t.Fatalf("refusal with unknown code %q", r.Code)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, p2p.ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if len(receipt) == 0 {
			t.Fatal("an answer without a receipt")
		}
	})
}

// FuzzDecodeChunk: a chunk gives records on the subject, or ErrMalformed
// and the records given before it unchanged.
func FuzzDecodeChunk(f *testing.F) {
	s := makeSeeds(f)
	f.Add(s.chunk)
	f.Add(s.chunk[:len(s.chunk)/3])
	f.Fuzz(func(t *testing.T, in []byte) {
		u := testSubject(t)
		prev := []credit.Record{{Subject: u, Source: "before"}}
		recs, _, err := p2p.DecodeChunk(in, u, prev)
		if err != nil {
			if !errors.Is(err, p2p.ErrMalformed) || len(recs) != 1 {
				t.Fatalf("error %v with %d records", err, len(recs))
			}
			return
		}
		for _, r := range recs {
			if r.Subject != u {
				t.Fatalf("record on %q", r.Subject)
			}
		}
	})
}

// FuzzDecodeAck: an ack decodes with a valid receipt id and region, or
// ErrMalformed.
func FuzzDecodeAck(f *testing.F) {
	s := makeSeeds(f)
	f.Add(s.ack)
	f.Add(s.ack[:len(s.ack)-5])
	f.Fuzz(func(t *testing.T, in []byte) {
		a, err := p2p.DecodeAck(in)
		if err != nil {
			if !errors.Is(err, p2p.ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if credit.ValidateID("receipt id", a.ReceiptID) != nil || credit.ValidateRegionID(a.Requester) != nil {
			t.Fatalf("decoded an invalid ack %+v", a)
		}
	})
}

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the testdata/fuzz seed corpus")

// TestFuzzSeeds writes the seed corpus of the fuzz targets (with
// -update-seeds) and otherwise checks it is present.
func TestFuzzSeeds(t *testing.T) {
	s := makeSeeds(t)
	var req bytes.Buffer
	p2p.WriteFrame(&req, s.request)
	corpus := map[string][][]byte{
		"FuzzReadFrame":      {req.Bytes(), {0x80, 0x80, 0x80, 0x80, 0x01}, {0x00}},
		"FuzzDecodeRequest":  {s.request, s.request[:40], append(bytes.Clone(s.request), 0x28, 0x01)},
		"FuzzDecodeResponse": {s.response, s.refusal, s.response[:len(s.response)/2]},
		"FuzzDecodeChunk":    {s.chunk, s.chunk[:len(s.chunk)/3], message(t, &pb.Chunk{Last: true})},
		"FuzzDecodeAck":      {s.ack, s.ack[:len(s.ack)-5], message(t, &pb.Ack{Ack: []byte(`{"receipt_id":"r"}`)})},
	}
	for target, ins := range corpus {
		dir := filepath.Join("testdata", "fuzz", target)
		for i, in := range ins {
			path := filepath.Join(dir, fmt.Sprintf("seed%d", i))
			if !*updateSeeds {
				if _, err := os.Stat(path); err != nil {
					t.Errorf("seed corpus missing (run go test -run TestFuzzSeeds -update-seeds): %v", err)
				}
				continue
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", in)
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
