package credit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
	"unicode/utf8"
)

func testKey(t testing.TB, seed byte) ed25519.PrivateKey {
	t.Helper()
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func TestCanonicalAttrs(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{`{}`, `{}`, true},
		{`{"a":1,"b":"x"}`, `{"a":1,"b":"x"}`, true},
		{`{ "b" : 2, "a" : 1.50 }`, `{"a":1.50,"b":2}`, true},
		{`{"z":{"y":[1,{"b":true,"a":null}]},"a":"<&>"}`, `{"a":"<&>","z":{"y":[1,{"a":null,"b":true}]}}`, true},
		{`{"a":"\u00e9"}`, `{"a":"é"}`, true},
		{`{"a":12345678901234567890123}`, `{"a":12345678901234567890123}`, true},
		{`[1,2]`, ``, false},
		{`"x"`, ``, false},
		{`{"a":1`, ``, false},
		{`{"a":1}{}`, ``, false},
		{`{"a":01}`, ``, false},
	}
	for _, tc := range tests {
		got, err := CanonicalAttrs([]byte(tc.in))
		if tc.ok != (err == nil) {
			t.Errorf("CanonicalAttrs(%s): err %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if err != nil && !errors.Is(err, ErrAttrs) {
			t.Errorf("CanonicalAttrs(%s): error %v does not match ErrAttrs", tc.in, err)
		}
		if tc.ok && string(got) != tc.want {
			t.Errorf("CanonicalAttrs(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func FuzzCanonicalAttrs(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"b":"x"}`, `{ "b" : 2, "a" : 1 }`, `{"a":"\u2028"}`, `{"a":[1,2,{"c":null}]}`, `{"b":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := CanonicalAttrs(in)
		if err != nil {
			return
		}
		// Canonical form is a fixed point and is valid JSON that decodes
		// to the same value as the input.
		again, err := CanonicalAttrs(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not a fixed point: %s -> %s (%v)", out, again, err)
		}
		var a, b any
		if json.Unmarshal(in, &a) != nil || json.Unmarshal(out, &b) != nil {
			t.Fatalf("invalid JSON accepted: %q", in)
		}
	})
}

func sampleRecord(r *rand.Rand) Record {
	cats := AllCategories()
	strs := []string{"plain", "with \"quote\"", "tab\there", "中文名称", "line\u2028sep", "ctl\x01", "<&>", `back\slash`}
	return Record{
		Subject:  "91440300708461136T",
		Source:   "sz-tax",
		SourceID: strs[r.IntN(len(strs))],
		Category: cats[r.IntN(len(cats))],
		Date:     "2024-03-01",
		Attrs:    json.RawMessage(`{"amount":"12.50","note":"x"}`),
	}
}

func TestRecordCanonicalMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var recs []Record
	for range 50 {
		recs = append(recs, sampleRecord(r))
	}
	rep := Report{Subject: "91440300708461136T", Sections: []Section{{Category: Tax, Records: recs}}}
	type plainRecord struct {
		Subject  USCC            `json:"uscc"`
		Source   string          `json:"source"`
		SourceID string          `json:"source_id"`
		Category Category        `json:"category"`
		Date     Date            `json:"date"`
		Attrs    json.RawMessage `json:"attrs"`
	}
	for _, rec := range recs {
		want, err := canonicalJSON(plainRecord(rec))
		if err != nil {
			t.Fatal(err)
		}
		if got := rec.AppendCanonical(nil); !bytes.Equal(got, want) {
			t.Fatalf("record encoding differs:\n got %s\nwant %s", got, want)
		}
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Digest() != rep.Digest() {
		t.Fatal("digest changed across a JSON round trip")
	}
}

func TestRecordNormalize(t *testing.T) {
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	base := Record{Subject: "91440300708461136t", Source: "sz-tax", SourceID: "T-1", Category: Tax, Date: "2025-01-02", Attrs: json.RawMessage(`{"b":1, "a":2}`)}
	ok := base
	if err := ok.Normalize(now, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if ok.Subject != "91440300708461136T" || string(ok.Attrs) != `{"a":2,"b":1}` {
		t.Fatalf("not normalised: %+v", ok)
	}
	tests := []struct {
		name  string
		field string
		edit  func(*Record)
	}{
		{"missing uscc", "uscc", func(r *Record) { r.Subject = "" }},
		{"bad uscc", "uscc", func(r *Record) { r.Subject = "91440300708461136U" }},
		{"missing source", "source", func(r *Record) { r.Source = "" }},
		{"bad source", "source", func(r *Record) { r.Source = "SZ TAX" }},
		{"missing source id", "source_id", func(r *Record) { r.SourceID = "" }},
		{"control in source id", "source_id", func(r *Record) { r.SourceID = "a\nb" }},
		{"bad category", "category", func(r *Record) { r.Category = "gossip" }},
		{"bad date", "date", func(r *Record) { r.Date = "2025-02-30" }},
		{"future date", "date", func(r *Record) { r.Date = "2026-12-30" }},
		{"array attrs", "attrs", func(r *Record) { r.Attrs = json.RawMessage(`[1]`) }},
		{"missing attrs", "attrs", func(r *Record) { r.Attrs = nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			tc.edit(&r)
			err := r.Normalize(now, 24*time.Hour)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("Normalize = %v, want a FieldError on %s", err, tc.field)
			}
		})
	}
}

func TestSignaturesBindEveryField(t *testing.T) {
	bank, region, ent, other := testKey(t, 1), testKey(t, 2), testKey(t, 3), testKey(t, 4)
	now := time.Date(2026, 11, 26, 8, 0, 0, 0, time.FixedZone("CST", 8*3600))
	g := ConsentGrant{Version: ConsentVersion, ID: "consent-0001", Subject: "91440300708461136T", Grantee: "bank-a",
		Categories: []Category{Tax, Registration}, Purpose: PurposeLoanApplication,
		ValidFrom: now, ValidUntil: now.Add(90 * 24 * time.Hour), Region: "440300"}
	chain := newTestCA(t, 5, "440300", "4403").issue(t, g.Subject, ent, caFrom, now.AddDate(1, 0, 0))
	if err := g.SignEnterprise(ent, chain, now); err != nil {
		t.Fatal(err)
	}
	if err := g.Countersign(region); err != nil {
		t.Fatal(err)
	}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := g.VerifyEnterprise(); err != nil {
		t.Fatal(err)
	}
	if err := g.VerifyRegion(region.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	// The time zone of the signer does not matter, the instant does.
	g2 := g
	g2.ValidFrom = g.ValidFrom.UTC()
	if err := g2.VerifyEnterprise(); err != nil {
		t.Fatalf("UTC copy: %v", err)
	}
	g2.Purpose = PurposeGuarantee
	if err := g2.VerifyEnterprise(); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("altered purpose verified: %v", err)
	}
	if err := g.VerifyRegion(other.Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrong region key verified: %v", err)
	}

	q := Query{Version: 1, Bank: "bank-a", Subject: g.Subject, Categories: []Category{Tax}, Purpose: g.Purpose,
		ConsentID: g.ID, Consent: &g, Nonce: "nonce-000000001", Time: now}
	if err := q.Sign(bank); err != nil {
		t.Fatal(err)
	}
	if err := q.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := q.Verify(bank.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	q2 := q
	q2.Categories = []Category{Tax, Judicial}
	if err := q2.Verify(bank.Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("altered categories verified: %v", err)
	}

	id, err := ReceiptID("440100", &q)
	if err != nil {
		t.Fatal(err)
	}
	rc := Receipt{Version: 1, ID: id, Query: q, Requester: "440300", Answerer: "440100", Categories: q.Categories,
		ReportDigest: bytes.Repeat([]byte{7}, 32), RecordCount: 3, Time: now}
	if err := rc.Sign(other); err != nil {
		t.Fatal(err)
	}
	if err := rc.Verify(other.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	rc2 := rc
	rc2.RecordCount = 4
	if err := rc2.Verify(other.Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("altered count verified: %v", err)
	}
	ack, err := NewAck(&rc, "440300", now, region)
	if err != nil {
		t.Fatal(err)
	}
	if err := ack.Verify(&rc, region.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	if err := ack.Verify(&rc2, region.Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("ack verified against another receipt: %v", err)
	}
	// A receipt signature is not a checkpoint signature.
	cp := Checkpoint{Region: "440100", Size: 10, Root: bytes.Repeat([]byte{1}, 32)}
	if err := cp.Sign("test", other); err != nil {
		t.Fatal(err)
	}
	if err := cp.Verify(other.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	cp.Note = replaceNoteSig(t, cp.Note, rc.Sig)
	if err := cp.Verify(other.Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadSignature) {
		t.Fatal("receipt signature accepted as checkpoint signature")
	}
}

func TestConsentStatusAt(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rev := t0.Add(48 * time.Hour)
	c := ConsentCommitment{RecordedAt: t0, ValidFrom: t0.Add(time.Hour), ValidUntil: t0.Add(72 * time.Hour), RevokedAt: &rev}
	for _, tc := range []struct {
		at   time.Time
		want ConsentStatus
	}{
		{t0.Add(-time.Second), ConsentNotExists},
		{t0, ConsentNotYet},
		{t0.Add(time.Hour), ConsentActive},
		{rev.Add(-time.Nanosecond), ConsentActive},
		{rev, ConsentRevoked},
		{t0.Add(100 * time.Hour), ConsentRevoked},
	} {
		if got := c.StatusAt(tc.at); got != tc.want {
			t.Errorf("StatusAt(%s) = %s, want %s", tc.at, got, tc.want)
		}
	}
	c.RevokedAt = nil
	if got := c.StatusAt(t0.Add(72 * time.Hour)); got != ConsentExpired {
		t.Errorf("at end of window: %s", got)
	}
}

func TestRegionMap(t *testing.T) {
	m, err := NewRegionMap(append(PearlRiverDelta(), Region{ID: "qianhai", Name: "Qianhai", Divisions: []string{"440305"}}))
	if err != nil {
		t.Fatal(err)
	}
	for div, want := range map[string]RegionID{"440300": "440300", "440306": "440300", "440305": "qianhai", "440101": "440100", "442000": "442000"} {
		if got, ok := m.RegionOfDivision(div); !ok || got != want {
			t.Errorf("RegionOfDivision(%s) = %s, %v; want %s", div, got, ok, want)
		}
	}
	if _, ok := m.RegionOfDivision("110000"); ok {
		t.Error("Beijing resolved to a PRD region")
	}
	if _, err := NewRegionMap([]Region{{ID: "a1", Divisions: []string{"4403"}}, {ID: "b1", Divisions: []string{"4403"}}}); err == nil {
		t.Error("duplicate prefix accepted")
	}
	if _, err := NewRegionMap([]Region{{ID: "a1", Divisions: []string{"44x3"}}}); err == nil {
		t.Error("non-digit prefix accepted")
	}
}

func TestParseCategories(t *testing.T) {
	cs, err := ParseCategories("tax, registration,tax")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0] != Registration || cs[1] != Tax {
		t.Fatalf("got %v", cs)
	}
	if _, err := ParseCategories("tax,weather"); err == nil {
		t.Fatal("unknown category accepted")
	}
	if len(AllCategories()) != 12 {
		t.Fatal("vocabulary changed size")
	}
}

func BenchmarkReportDigest183(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	recs := make([]Record, 183)
	for i := range recs {
		recs[i] = sampleRecord(r)
		recs[i].Attrs = json.RawMessage(`{"amount":"1234.50","authority":"Shenzhen Municipal Tax Service","period":"2025-Q3","status":"paid","type":"vat"}`)
	}
	rep := NewReport("91440300708461136T", recs)
	b.ResetTimer()
	for b.Loop() {
		rep.Digest()
	}
}

func BenchmarkCanonicalAttrsFast(b *testing.B) {
	in := []byte(`{"amount":"1234.50","authority":"Shenzhen Municipal Tax Service","period":"2025-Q3","status":"paid","type":"vat"}`)
	for b.Loop() {
		if _, err := CanonicalAttrs(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanonicalAttrsSlow(b *testing.B) {
	in := []byte(`{"type":"vat","amount":"1234.50","authority":"Shenzhen Municipal Tax Service","period":"2025-Q3","status":"paid"}`)
	for b.Loop() {
		if _, err := CanonicalAttrs(in); err != nil {
			b.Fatal(err)
		}
	}
}

// plain3 must accept exactly the three-byte sequences scanPlainString took
// through utf8.DecodeRune before.
func TestPlain3AgreesWithDecodeRune(t *testing.T) {
	for c0 := 0xe0; c0 <= 0xef; c0++ {
		for c1 := 0; c1 < 256; c1++ {
			for c2 := 0; c2 < 256; c2++ {
				b := []byte{byte(c0), byte(c1), byte(c2)}
				r, size := utf8.DecodeRune(b)
				want := size == 3 && r != utf8.RuneError && r != '\u2028' && r != '\u2029'
				if got := plain3(b[0], b[1], b[2]); got != want {
					t.Fatalf("% x: plain3 %v, DecodeRune %U size %d", b, got, r, size)
				}
			}
		}
	}
}

// TestNewReportSections: each run of one category is a section, in order,
// and a section appended to does not write over the next one's records.
func TestNewReportSections(t *testing.T) {
	cats := AllCategories()
	r := rand.New(rand.NewPCG(3, 4))
	recs := make([]Record, 4)
	for i, c := range []Category{cats[0], cats[0], cats[1], cats[0]} {
		recs[i] = sampleRecord(r)
		recs[i].Category, recs[i].SourceID = c, fmt.Sprint(i)
	}
	rep := NewReport("91440300708461136T", recs)
	var got []string
	for _, s := range rep.Sections {
		ids := ""
		for _, rec := range s.Records {
			if rec.Category != s.Category {
				t.Fatalf("record %s of %s in section %s", rec.SourceID, rec.Category, s.Category)
			}
			ids += rec.SourceID
		}
		got = append(got, string(s.Category)+":"+ids)
	}
	want := []string{string(cats[0]) + ":01", string(cats[1]) + ":2", string(cats[0]) + ":3"}
	if !slices.Equal(got, want) || rep.Count() != 4 {
		t.Fatalf("sections %v (count %d), want %v", got, rep.Count(), want)
	}
	rep.Sections[0].Records = append(rep.Sections[0].Records, sampleRecord(r))
	if rep.Sections[1].Records[0].SourceID != "2" {
		t.Fatal("appending to a section wrote over the next")
	}
	if empty := NewReport("91440300708461136T", nil); empty.Sections == nil || len(empty.Sections) != 0 {
		t.Fatalf("report of no records: %+v", empty)
	}
}
