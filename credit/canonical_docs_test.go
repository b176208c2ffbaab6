package credit

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// sameAsReflection fails t unless the hand-written encoding of each of v's
// documents is byte for byte encoding/json's, refusing what it refuses.
func sameAsReflection(t *testing.T, docs ...any) {
	t.Helper()
	for _, d := range docs {
		got, gotErr := appendCanonicalJSON(nil, d)
		want, wantErr := reflectJSON(d)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%T: hand-written error %v, encoding/json error %v", d, gotErr, wantErr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%T encodes differently:\nhand-written  %s\nencoding/json %s", d, got, want)
		}
	}
}

// docsOf returns the signed documents a receipt holds, as the signers and
// verifiers pass them: values, normalised and not.
func docsOf(r Receipt, a Ack) []any {
	out := []any{r, r.normalized(), r.Query, r.Query.normalized(), a}
	if r.Query.Consent != nil {
		out = append(out, *r.Query.Consent, r.Query.Consent.normalized())
	}
	return out
}

func TestCanonicalDocsMatchReflection(t *testing.T) {
	r := exportReceipt(t)
	g := ConsentGrant{Version: 1, ID: "consent-0001", Subject: r.Query.Subject, Grantee: "bank-a",
		Categories: []Category{Tax, Penalty}, Purpose: PurposeCreditReview,
		ValidFrom: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ValidUntil: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		Region: "sz", SignedAt: r.Query.Time, EnterpriseCert: [][]byte{bytes.Repeat([]byte{1}, 32), {5}}, EnterpriseSig: bytes.Repeat([]byte{2}, 64), RegionSig: []byte{}}
	r.Query.Consent = &g
	a, err := NewAck(&r, "gz", r.Time, testKey(t, 4))
	if err != nil {
		t.Fatal(err)
	}
	cst := time.FixedZone("CST", 8*3600)
	tests := []struct {
		name   string
		change func(r *Receipt, a *Ack)
	}{
		{"signed", func(*Receipt, *Ack) {}},
		{"no consent, nil slices", func(r *Receipt, a *Ack) {
			r.Query.Consent, r.Categories, r.Query.Categories, r.Sig, r.ReportDigest, a.Sig = nil, nil, nil, nil, nil, nil
		}},
		{"empty slices", func(r *Receipt, a *Ack) {
			r.Categories, r.Sig, a.ReceiptDigest = []Category{}, []byte{}, []byte{}
		}},
		{"escapes", func(r *Receipt, a *Ack) {
			r.ID = "a\"b\\c\n\r\t\b\f\x00\x1f\x7f<>&"
			r.Query.Nonce = "\u2028\u2029é中\U0001F600"
			a.ReceiptID = "bad utf-8 \xff\xc3 end \xed\xa0\x80"
			r.Query.Consent.ID = "\x01\u00e9"
			r.Categories = []Category{"tax", "\"x\""}
		}},
		{"times in another zone with nanoseconds", func(r *Receipt, a *Ack) {
			r.Time = time.Date(2026, 11, 2, 17, 30, 0, 123456789, cst)
			r.Query.Time = time.Date(2026, 11, 2, 17, 30, 0, 120000000, cst)
			a.Time = time.Date(2026, 11, 2, 17, 30, 0, 1, time.FixedZone("odd", -(3*3600+30*60+15)))
		}},
		{"zero times", func(r *Receipt, a *Ack) {
			r.Time, r.Query.Time, a.Time, r.Query.Consent.ValidFrom = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		}},
		{"year out of range", func(r *Receipt, a *Ack) { r.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"negative year", func(r *Receipt, a *Ack) { r.Query.Consent.ValidUntil = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"zone of 24 hours", func(r *Receipt, a *Ack) { a.Time = time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 24*3600)) }},
		{"extreme numbers", func(r *Receipt, a *Ack) {
			r.Version, r.RecordCount, a.Version, r.Query.Version = -1<<63, 1<<63-1, 0, -7
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r2, a2 := r, a
			q := r.Query
			c := *r.Query.Consent
			q.Consent = &c
			r2.Query = q
			tc.change(&r2, &a2)
			sameAsReflection(t, docsOf(r2, a2)...)
		})
	}
}

// FuzzCanonicalDocs holds the hand-written encodings to encoding/json's on
// documents decoded from arbitrary JSON and on arbitrary field values.
func FuzzCanonicalDocs(f *testing.F) {
	r := exportReceipt(f)
	leaf, _ := r.LeafBytes()
	f.Add(leaf, "x", []byte{1}, int64(0), int64(0), 0)
	f.Add([]byte(`{"v":1,"query":{"consent":{"v":1,"categories":[],"valid_from":"2026-01-01T00:00:00.5+08:00"}},"sig":""}`),
		"\xff\u2028\"\\\x00", []byte{}, int64(253402300800), int64(999999999), -86399)
	f.Fuzz(func(t *testing.T, doc []byte, s string, b []byte, sec, nsec int64, off int) {
		var r Receipt
		if json.Unmarshal(doc, &r) == nil {
			var a Ack
			_ = json.Unmarshal(doc, &a)
			sameAsReflection(t, docsOf(r, a)...)
			sameSignedMessages(t, &r, &a)
		}
		at := time.Unix(sec, nsec).In(time.FixedZone("z", off%(48*3600)))
		g := ConsentGrant{Version: off, ID: s, Subject: USCC(s), Grantee: BankID(s), Categories: []Category{Category(s)},
			Purpose: Purpose(s), ValidFrom: at, ValidUntil: at, Region: RegionID(s), SignedAt: at, EnterpriseCert: [][]byte{b, b}, EnterpriseSig: b, RegionSig: b}
		r = Receipt{Version: off, ID: s, Requester: RegionID(s), Answerer: RegionID(s), Categories: []Category{Category(s), Category(s)},
			ReportDigest: b, RecordCount: int(sec), Time: at, Sig: b,
			Query: Query{Version: int(nsec), Bank: BankID(s), Subject: USCC(s), Categories: []Category{}, Purpose: Purpose(s),
				ConsentID: s, Consent: &g, Nonce: s, Time: at, Sig: b}}
		a := Ack{Version: int(sec), ReceiptID: s, ReceiptDigest: b, Requester: RegionID(s), Time: at, Sig: b}
		sameAsReflection(t, docsOf(r, a)...)
		sameSignedMessages(t, &r, &a)
	})
}

func BenchmarkCanonicalReceipt(b *testing.B) {
	r := exportReceipt(b)
	g := ConsentGrant{Version: 1, ID: "consent-0001", Subject: r.Query.Subject, Grantee: "bank-a",
		Categories: []Category{Tax, Penalty}, Purpose: PurposeCreditReview,
		ValidFrom: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ValidUntil: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		Region: "sz", SignedAt: r.Query.Time, EnterpriseCert: [][]byte{bytes.Repeat([]byte{1}, 32), {5}}, EnterpriseSig: bytes.Repeat([]byte{2}, 64), RegionSig: bytes.Repeat([]byte{3}, 64)}
	r.Query.Consent = &g
	for _, enc := range []struct {
		name string
		f    func(any) ([]byte, error)
	}{{"encoder=hand-written", canonicalJSON}, {"encoder=reflection", reflectJSON}} {
		b.Run(enc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := enc.f(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestAppendSignedMessages holds the append forms to SignedMessage and
// Digest, on documents that need normalising and documents that do not.
func TestAppendSignedMessages(t *testing.T) {
	r := exportReceipt(t)
	g := ConsentGrant{Version: 1, ID: "consent-0001", Subject: r.Query.Subject, Grantee: "bank-a",
		Categories: []Category{Tax, Penalty, Tax}, Purpose: PurposeCreditReview,
		ValidFrom: time.Date(2026, 1, 1, 8, 0, 0, 0, time.FixedZone("CST", 8*3600)), ValidUntil: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		Region: "sz", SignedAt: r.Query.Time, EnterpriseCert: [][]byte{bytes.Repeat([]byte{1}, 32)}}
	a, err := NewAck(&r, "gz", r.Time, testKey(t, 4))
	if err != nil {
		t.Fatal(err)
	}
	unnormalized := r
	unnormalized.Query.Consent = &g
	unnormalized.Categories = []Category{"unknown", Tax, Penalty}
	unnormalized.Time = r.Time.In(time.FixedZone("CST", 8*3600))
	unnormalized.Query.Categories = nil
	ua := a
	ua.Time = a.Time.In(time.FixedZone("CST", 8*3600))
	for _, tc := range []struct {
		name string
		r    Receipt
		a    Ack
	}{{"normalized", r, a}, {"not normalized", unnormalized, ua}} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("kept")
			msg, d, err := tc.r.AppendSignedMessageAndDigest(prefix)
			wantMsg, _ := tc.r.SignedMessage()
			wantD, _ := tc.r.Digest()
			if err != nil || !bytes.Equal(msg, append([]byte("kept"), wantMsg...)) || d != wantD {
				t.Fatalf("receipt: %v\n%s\n%s", err, msg, wantMsg)
			}
			msg, err = tc.r.Query.AppendSignedMessage(prefix)
			wantMsg, _ = tc.r.Query.SignedMessage()
			if err != nil || !bytes.Equal(msg, append([]byte("kept"), wantMsg...)) {
				t.Fatalf("query: %v\n%s\n%s", err, msg, wantMsg)
			}
			sameSignedMessages(t, &tc.r, &tc.a)
			msg, err = tc.a.AppendSignedMessage(prefix)
			wantMsg, _ = tc.a.SignedMessage()
			if err != nil || !bytes.Equal(msg, append([]byte("kept"), wantMsg...)) {
				t.Fatalf("ack: %v\n%s\n%s", err, msg, wantMsg)
			}
		})
	}
	bad := r
	bad.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	if out, _, err := bad.AppendSignedMessageAndDigest([]byte("kept")); err == nil || string(out) != "kept" {
		t.Fatalf("a time RFC 3339 cannot write: %v, %q", err, out)
	}
}

// sameSignedMessages fails t unless the append forms agree with
// SignedMessage and Digest, errors included.
func sameSignedMessages(t *testing.T, r *Receipt, a *Ack) {
	t.Helper()
	msg, d, err := r.AppendSignedMessageAndDigest(nil)
	wantMsg, err1 := r.SignedMessage()
	wantD, err2 := r.Digest()
	if (err == nil) != (err1 == nil && err2 == nil) || (err == nil && (!bytes.Equal(msg, wantMsg) || d != wantD)) {
		t.Fatalf("receipt: %v / %v %v", err, err1, err2)
	}
	msg, err = r.Query.AppendSignedMessage(nil)
	wantMsg, err1 = r.Query.SignedMessage()
	if (err == nil) != (err1 == nil) || !bytes.Equal(msg, wantMsg) {
		t.Fatalf("query: %v / %v", err, err1)
	}
	msg, c, has, err := r.Query.AppendSignedMessageAndCommitment(nil)
	if (err == nil) != (err1 == nil) || !bytes.Equal(msg, wantMsg) || has != (err == nil && r.Query.Consent != nil) {
		t.Fatalf("query with commitment: %v / %v", err, err1)
	}
	if has {
		if want, err := r.Query.Consent.Commitment(); err != nil || c != want {
			t.Fatalf("commitment %x, want %x (%v)", c, want, err)
		}
	}
	msg, err = a.AppendSignedMessage(nil)
	wantMsg, err1 = a.SignedMessage()
	if (err == nil) != (err1 == nil) || !bytes.Equal(msg, wantMsg) {
		t.Fatalf("ack: %v / %v", err, err1)
	}
}
