package node

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// writeConsolidated writes the JSON encoding/json would write for the same
// Consolidated, up to the encoding of strings: decoding either gives the
// same value.
func TestWriteConsolidatedDecodesAsEncodingJSON(t *testing.T) {
	subject := credit.USCC("91440300708461136T")
	recs := []credit.Record{
		{Subject: subject, Source: "tax", SourceID: "t1", Category: credit.Tax, Date: "2024-01-02", Attrs: []byte(`{"n":1}`)},
		{Subject: subject, Source: "court", SourceID: "j1", Category: credit.Judicial, Date: "2024-02-03", Attrs: []byte(`{"case":"<a&b>"}`)},
	}
	rep := credit.NewReport(subject, recs)
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	r := &credit.Receipt{Version: 1, ID: "r1", Requester: "440300", Answerer: "440100", Categories: []credit.Category{credit.Tax},
		ReportDigest: []byte{1, 2}, RecordCount: 2, Time: now, Sig: []byte{3},
		Query: credit.Query{Version: 1, Bank: "bank-a", Subject: subject, Categories: []credit.Category{credit.Tax}, Time: now}}
	idx := uint64(7)
	ack := &credit.Ack{Version: 1, ReceiptID: "r1", ReceiptDigest: []byte{4}, Requester: "440300", Time: now, Sig: []byte{5}}
	c := &Consolidated{QueryDigest: "ab", Subject: subject, Bank: "bank-a", Home: "440300", RecordCount: 2, Elapsed: 12.5,
		Regions: []RegionStatus{
			{Region: "440100", Status: StatusOK, RecordCount: 2, Report: &rep, Receipt: r, LeafIndex: &idx, Ack: ack},
			{Region: "440400", Status: StatusDenied, Reason: credit.CodePurposeMismatch, Message: "quote \" and \x01 and \xff"},
			{Region: "440500", Status: StatusUnavailable, Message: "unreachable"},
		}}
	rec := httptest.NewRecorder()
	if err := writeConsolidated(rec, c); err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var got, exp any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, rec.Body)
	}
	if err := json.Unmarshal(want, &exp); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, exp) {
		t.Fatalf("written\n%s\nencoding/json\n%s", rec.Body, want)
	}
	// A status holding its report's canonical bytes (kept from its digest)
	// and its receipt's leaf bytes writes the same answer byte for byte.
	c.Regions[0].Canon = rep.AppendCanonical(nil)
	leaf, err := r.LeafBytes()
	if err != nil {
		t.Fatal(err)
	}
	c.Regions[0].Leaf = leaf
	held := httptest.NewRecorder()
	if err := writeConsolidated(held, c); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(held.Body.Bytes(), rec.Body.Bytes()) {
		t.Fatalf("with the held encoding\n%s\nencoded again\n%s", held.Body, rec.Body)
	}
	// Built whole, it is sent with its length; streamed, without.
	if got, want := held.Header().Get("Content-Length"), strconv.Itoa(held.Body.Len()); got != want {
		t.Errorf("held answer's Content-Length %q, want %q", got, want)
	}
	if got := rec.Header().Get("Content-Length"); got != "" {
		t.Errorf("streamed answer's Content-Length %q, want none", got)
	}
}

// The home node's own slice keeps the canonical encoding serve digested
// (credit.NewReportDigestTee into memWriter's sink): the same bytes as
// the report's AppendCanonical, with the same digest; past
// heldCanonicalMax nothing is kept and the digest is unchanged.
func TestOwnSliceKeepsDigestedEncoding(t *testing.T) {
	subject := credit.USCC("91440300708461136T")
	var recs []credit.Record
	for i := range 300 {
		cat := credit.Tax
		if i >= 150 {
			cat = credit.Judicial
		}
		recs = append(recs, credit.Record{Subject: subject, Source: "src", SourceID: string(rune('a'+i%26)) + "x", Category: cat,
			Date: "2024-01-02", Attrs: []byte(`{"n":1,"s":"` + string(bytes.Repeat([]byte("é"), i%40)) + `"}`)})
	}
	rep := credit.NewReport(subject, recs)
	var w memWriter
	d := credit.NewReportDigestTee(subject, w.canonicalSink())
	d.Add(recs[:100])
	d.Add(recs[100:])
	if got, want := d.Sum(), rep.Digest(); got != want {
		t.Fatalf("digest through the tee %x, want %x", got, want)
	}
	if want := rep.AppendCanonical(nil); !bytes.Equal(w.canon, want) {
		t.Fatalf("kept encoding differs from AppendCanonical (%d against %d bytes)", len(w.canon), len(want))
	}

	big := memWriter{}
	sink := big.canonicalSink()
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	for written := 0; written <= heldCanonicalMax; written += len(chunk) {
		if n, err := sink.Write(chunk); n != len(chunk) || err != nil {
			t.Fatalf("sink write: %d, %v", n, err)
		}
	}
	if big.canon != nil || !big.over {
		t.Fatalf("past %d bytes the sink kept %d bytes", heldCanonicalMax, len(big.canon))
	}
}
