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
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/p2p"
	"github.com/prdcredit/ccnode/p2p/p2ptest"
)

// seedRequest is a valid encoded request.
func seedRequest(f testing.TB) []byte {
	b, err := p2p.EncodeRequest(&p2p.Request{Requester: "440100", Query: *seedQuery(f)})
	if err != nil {
		f.Fatal(err)
	}
	return b
}

func seedReceipt(f testing.TB) credit.Receipt {
	return credit.Receipt{Version: 1, ID: "0123456789abcdef", Query: *seedQuery(f), Requester: "440100", Answerer: "440300"}
}

func seedQuery(f testing.TB) *credit.Query {
	r, _ := p2ptest.NewRegion("440300", "4403")
	bank, _ := p2ptest.NewBank("bank-a", "440300")
	u, _ := credit.CompleteUSCC("91440100MA5FABCD1")
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	g, err := p2ptest.Consent("consent-0001", u, bank.Member.ID, []credit.Category{credit.Tax}, r, now, now.Add(time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	q, err := p2ptest.Query(bank, g, []credit.Category{credit.Tax}, now)
	if err != nil {
		f.Fatal(err)
	}
	return q
}

// FuzzReadFrame: any bytes either give a frame within the limit, or an
// error; never a panic or an allocation past the limit.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0x00})
	f.Add([]byte{0x03, 'a', 'b', 'c'})
	f.Add([]byte{0x80, 0x80, 0x04})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add(frame(seedRequest(f)))
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 1 << 10
		r := bytes.NewReader(in)
		b, err := p2p.ReadFrame(r, max)
		if err != nil {
			if b != nil {
				t.Fatal("data with an error")
			}
			if !errors.Is(err, p2p.ErrFrameTooLarge) && !errors.Is(err, p2p.ErrMalformed) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if len(b) > max {
			t.Fatalf("frame of %d bytes past the limit", len(b))
		}
		// Re-encoding gives back the bytes consumed.
		var w bytes.Buffer
		if err := p2p.WriteFrame(&w, b); err != nil {
			t.Fatal(err)
		}
		if consumed := len(in) - r.Len(); !bytes.Equal(w.Bytes(), in[:consumed]) && consumed == w.Len() {
			t.Fatalf("round trip differs")
		}
	})
}

// FuzzDecodeRequest: a request that decodes is valid and re-encodes to a
// request that decodes to the same query.
func FuzzDecodeRequest(f *testing.F) {
	good := seedRequest(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{0x08, 0x01})
	f.Add([]byte{0x08, 0x01, 0x12, 0x06, '4', '4', '0', '1', '0', '0', 0x1a, 0x02, '{', '}'})
	f.Add([]byte{0x0b, 0x0c})
	f.Fuzz(func(t *testing.T, in []byte) {
		req, err := p2p.DecodeRequest(in)
		if err != nil {
			if !errors.Is(err, p2p.ErrMalformed) {
				t.Fatalf("error without ErrMalformed: %v", err)
			}
			return
		}
		if err := req.Query.Validate(); err != nil {
			t.Fatalf("decoded an invalid query: %v", err)
		}
		b, err := p2p.EncodeRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := p2p.DecodeRequest(b)
		if err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		d1, _ := req.Query.Digest()
		d2, _ := again.Query.Digest()
		if d1 != d2 || again.Requester != req.Requester {
			t.Fatal("round trip changed the request")
		}
	})
}

// FuzzDecodeResponse: the requester's decoder of answers never panics, and
// an answer it decodes re-encodes to the same report digest.
func FuzzDecodeResponse(f *testing.F) {
	u, _ := credit.CompleteUSCC("91440100MA5FABCD1")
	rep := credit.NewReport(u, p2ptest.Records(u, 5))
	ok, _ := p2p.EncodeResponse(&p2p.Response{Receipt: seedReceipt(f), Report: rep, LeafIndex: 7})
	refused, _ := p2p.EncodeResponse(&p2p.Response{Err: &p2p.Error{Code: p2p.CodeStale, Msg: "clock"}})
	f.Add(ok)
	f.Add(refused)
	f.Add(ok[:len(ok)-3])
	f.Add([]byte{0x08, 0x01, 0x12, 0x03, 0x0a, 0x01, 'x'})
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := p2p.DecodeResponse(in)
		if err != nil {
			if !errors.Is(err, p2p.ErrMalformed) {
				t.Fatalf("error without ErrMalformed: %v", err)
			}
			return
		}
		if r.Err != nil {
			if !r.Err.Code.Known() {
				t.Fatalf("unknown code %q passed through", r.Err.Code)
			}
			return
		}
		b, err := p2p.EncodeResponse(r)
		if err != nil {
			t.Fatal(err)
		}
		again, err := p2p.DecodeResponse(b)
		if err != nil {
			t.Fatalf("re-encoded answer does not decode: %v", err)
		}
		if again.Report.Digest() != r.Report.Digest() || again.Report.Count() != r.Report.Count() {
			t.Fatal("round trip changed the report")
		}
	})
}

func TestResponseRoundTrip(t *testing.T) {
	u, _ := credit.CompleteUSCC("91440100MA5FABCD1")
	tests := []struct {
		name string
		n    int
	}{{"empty", 0}, {"one", 1}, {"average enterprise", 183}, {"large", 2000}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := credit.NewReport(u, p2ptest.Records(u, tt.n))
			b, err := p2p.EncodeResponse(&p2p.Response{Receipt: seedReceipt(t), Report: rep, LeafIndex: 42})
			if err != nil {
				t.Fatal(err)
			}
			r, err := p2p.DecodeResponse(b)
			if err != nil {
				t.Fatal(err)
			}
			if r.Report.Digest() != rep.Digest() || r.Report.Count() != tt.n || r.LeafIndex != 42 || r.Receipt.ID != "0123456789abcdef" {
				t.Fatalf("round trip differs: %d records", r.Report.Count())
			}
		})
	}
}

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz seed corpus")

// TestFuzzSeeds writes the seed corpus of the fuzz targets (with
// -update-seeds) and otherwise checks it is present.
func TestFuzzSeeds(t *testing.T) {
	u, _ := credit.CompleteUSCC("91440100MA5FABCD1")
	req := seedRequest(t)
	ok, _ := p2p.EncodeResponse(&p2p.Response{Receipt: seedReceipt(t), Report: credit.NewReport(u, p2ptest.Records(u, 5)), LeafIndex: 7})
	refused, _ := p2p.EncodeResponse(&p2p.Response{Err: &p2p.Error{Code: p2p.CodeNoConsent, Msg: "consent x"}})
	seeds := map[string][][]byte{
		"FuzzReadFrame":      {frame(req), {0x80, 0x80, 0x80, 0x80, 0x01}, frame(nil)},
		"FuzzDecodeRequest":  {req, req[:40], append(append([]byte{}, req...), 0x28, 0x01)},
		"FuzzDecodeResponse": {ok, refused, ok[:len(ok)/2]},
	}
	for target, ins := range seeds {
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
