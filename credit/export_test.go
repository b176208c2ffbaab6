package credit

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func exportReceipt(t testing.TB) Receipt {
	t.Helper()
	at := time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC)
	r := Receipt{
		Version: 1, ID: "0123456789abcdef", Requester: "gz", Answerer: "sz",
		Categories: []Category{Penalty}, ReportDigest: bytes.Repeat([]byte{7}, 32),
		RecordCount: 3, Time: at,
		Query: Query{Version: 1, Bank: "bank-a", Subject: "91440300708461136T", Categories: []Category{Penalty},
			Purpose: PurposeCreditReview, ConsentID: "consent-0001", Nonce: "nonce-0001", Time: at},
	}
	if err := r.Sign(testKey(t, 3)); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestExportRoundTrip(t *testing.T) {
	r := exportReceipt(t)
	leaf, err := r.LeafBytes()
	if err != nil {
		t.Fatal(err)
	}
	ack, err := NewAck(&r, "gz", r.Time.Add(time.Second), testKey(t, 4))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := NewExportWriter(&buf, ExportHeader{Kind: ExportAnswered, Region: "sz", Size: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint64(2) {
		if err := w.Write(ExportLine{Index: i, Receipt: leaf, Acks: []Ack{ack}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	rd, err := NewExportReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if h := rd.Header(); h.Format != ExportFormat || h.Kind != ExportAnswered || h.Region != "sz" || h.Size != 2 {
		t.Fatalf("header %+v", h)
	}
	for i := range uint64(2) {
		b, err := rd.Next()
		if err != nil {
			t.Fatal(err)
		}
		l, err := DecodeExportLine(b)
		if err != nil {
			t.Fatal(err)
		}
		if l.Index != i || !bytes.Equal(l.Receipt, leaf) || len(l.Acks) != 1 {
			t.Fatalf("line %d: %+v", i, l)
		}
		got, err := DecodeReceipt(l.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		if err := got.Verify(testKey(t, 3).Public().(ed25519.PublicKey)); err != nil {
			t.Fatal(err)
		}
		if err := l.Acks[0].Verify(&got, testKey(t, 4).Public().(ed25519.PublicKey)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rd.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after last line: %v, want io.EOF", err)
	}
}

func TestExportReaderRefuses(t *testing.T) {
	long := `{"format":"ccnode-receipts/1","kind":"answered","region":"sz"}` + "\n" + strings.Repeat(" ", MaxExportLine+10) + "x\n"
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"unknown format", `{"format":"ccnode-receipts/9","kind":"answered","region":"sz"}`},
		{"unknown kind", `{"format":"ccnode-receipts/1","kind":"other","region":"sz"}`},
		{"bad region", `{"format":"ccnode-receipts/1","kind":"answered","region":"SZ!"}`},
		{"not json", `hello`},
		{"two objects", `{"format":"ccnode-receipts/1","kind":"answered","region":"sz"}{}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewExportReader(strings.NewReader(tc.in)); !errors.Is(err, ErrExportFormat) {
				t.Fatalf("err %v, want ErrExportFormat", err)
			}
		})
	}
	t.Run("long line", func(t *testing.T) {
		rd, err := NewExportReader(strings.NewReader(long + `{"index":1,"receipt":{}}` + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rd.Next(); !errors.Is(err, ErrExportFormat) {
			t.Fatalf("err %v, want ErrExportFormat", err)
		}
		// The reader goes on at the next line.
		b, err := rd.Next()
		if err != nil || rd.Line() != 3 || !strings.HasPrefix(string(b), `{"index":1`) {
			t.Fatalf("after the long line: %q, line %d, err %v", b, rd.Line(), err)
		}
	})
	lines := []struct{ name, in string }{
		{"receipt not object", `{"index":1,"receipt":"x"}`},
		{"receipt missing", `{"index":1}`},
		{"negative index", `{"index":-1,"receipt":{}}`},
		{"trailing", `{"index":1,"receipt":{}} 5`},
	}
	for _, tc := range lines {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeExportLine([]byte(tc.in)); !errors.Is(err, ErrExportFormat) {
				t.Fatalf("err %v, want ErrExportFormat", err)
			}
		})
	}
}

// FuzzDecodeExportLine feeds the decoders bytes from another party: they
// must never panic, and what they accept must survive a write and read.
func FuzzDecodeExportLine(f *testing.F) {
	r := exportReceipt(f)
	leaf, _ := r.LeafBytes()
	f.Add([]byte(`{"index":3,"receipt":` + string(leaf) + `}`))
	f.Add([]byte(`{"index":0,"receipt":{},"acks":[{"v":1,"receipt_id":"x","receipt_digest":"AAAA","requester":"gz","time":"2026-11-02T09:30:00Z","sig":""}]}`))
	f.Add([]byte(`{"format":"ccnode-receipts/1","kind":"received","region":"gz","size":1}`))
	f.Add([]byte(`{"index":1,"receipt":{"v":1,"time":"bad"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := DecodeExportHeader(b); err == nil {
			var buf bytes.Buffer
			if _, err := NewExportWriter(&buf, h); err != nil {
				t.Fatalf("accepted header does not write: %v", err)
			}
		}
		l, err := DecodeExportLine(b)
		if err != nil {
			if !errors.Is(err, ErrExportFormat) {
				t.Fatalf("error %v does not match ErrExportFormat", err)
			}
			return
		}
		if rc, err := DecodeReceipt(l.Receipt); err == nil {
			_, _ = rc.LeafBytes()
			_, _ = rc.Digest()
		}
		var buf bytes.Buffer
		w, err := NewExportWriter(&buf, ExportHeader{Kind: ExportAnswered, Region: "sz"})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(l); err != nil {
			return // an oversize line may be refused
		}
		w.Flush()
		rd, err := NewExportReader(&buf)
		if err != nil {
			t.Fatal(err)
		}
		nb, err := rd.Next()
		if err != nil {
			t.Fatal(err)
		}
		l2, err := DecodeExportLine(nb)
		if err != nil {
			t.Fatalf("re-read of %s: %v", nb, err)
		}
		if l2.Index != l.Index || len(l2.Acks) != len(l.Acks) {
			t.Fatalf("round trip changed the line: %+v vs %+v", l, l2)
		}
	})
}

func TestSignedMessageMatchesVerify(t *testing.T) {
	r := exportReceipt(t)
	q := r.Query
	if err := q.Sign(testKey(t, 5)); err != nil {
		t.Fatal(err)
	}
	r.Query = q
	if err := r.Sign(testKey(t, 3)); err != nil {
		t.Fatal(err)
	}
	a, err := NewAck(&r, "gz", r.Time, testKey(t, 4))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		msg  func() ([]byte, error)
		key  ed25519.PrivateKey
		sig  []byte
	}{
		{"query", q.SignedMessage, testKey(t, 5), q.Sig},
		{"receipt", r.SignedMessage, testKey(t, 3), r.Sig},
		{"ack", a.SignedMessage, testKey(t, 4), a.Sig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tc.msg()
			if err != nil {
				t.Fatal(err)
			}
			if !ed25519.Verify(tc.key.Public().(ed25519.PublicKey), m, tc.sig) {
				t.Fatal("signature does not verify over SignedMessage")
			}
			if ed25519.Verify(testKey(t, 9).Public().(ed25519.PublicKey), m, tc.sig) {
				t.Fatal("verifies with another key")
			}
		})
	}
}
