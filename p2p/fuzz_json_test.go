package p2p

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// FuzzDecodeJSON holds decodeJSON (goccy/go-json behind encoding/json's
// scanner) and decodeQuery and decodeReceipt (credit's one-pass decoders
// of the canonical layout first) to encoding/json for the two signed
// documents read off the wire: all refuse the same inputs and decode the
// others to the same value.
func FuzzDecodeJSON(f *testing.F) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	q := credit.Query{
		Version: 1, Bank: "bank-a", Subject: "91440100MA5FABCD1X", Categories: []credit.Category{credit.Tax}, Purpose: credit.PurposeLoanApplication,
		ConsentID: "consent-0001", Consent: &credit.ConsentGrant{Version: 1, ID: "consent-0001", Categories: []credit.Category{credit.Tax}, ValidFrom: t0, EnterpriseKey: []byte{1, 2, 3}},
		Nonce: "nonce-00000001", Time: t0, Sig: make([]byte, 64),
	}
	qj, _ := json.Marshal(&q)
	rj, _ := json.Marshal(&credit.Receipt{Version: 1, ID: "0123456789abcdef", Query: q, Requester: "440100", Answerer: "440300", ReportDigest: make([]byte, 32), RecordCount: 183, Time: t0})
	// Canonical forms, as the wire carries them, of a query whose codes are
	// valid (the one-pass path takes these).
	qv := q
	qv.Subject = "91440100MA5FABCD1E"
	gv := *q.Consent
	gv.Subject = qv.Subject
	qv.Consent = &gv
	qc, _, _ := qv.CanonicalAndDigest()
	rc := credit.Receipt{Version: 1, ID: "0123456789abcdef", Query: qv, Requester: "440100", Answerer: "440300", Categories: []credit.Category{credit.Tax}, ReportDigest: make([]byte, 32), RecordCount: 183, Time: t0, Sig: []byte{}}
	rcj, _ := rc.LeafBytes()
	// And with empty signatures and no consent document: "" is an empty
	// slice, not nil, as encoding/json has it.
	qe := qv
	qe.Consent, qe.Sig = nil, []byte{}
	qec, _, _ := qe.CanonicalAndDigest()
	for _, s := range [][]byte{qj, rj, qc, rcj, qec, []byte(`{"v":1,"bank":"b\u00e9","x":[1,{"y":null}]}`), []byte(`{"uscc":"bad"}`), []byte("{\"bank\":\"\xff\"}"), []byte(`{"v":1}{}`), []byte(`{"time":"2026-13-01T00:00:00Z"}`), []byte(`{"categories":null,"sig":"!!"}`)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		same(t, in, func(b []byte, v *credit.Query) error { return decodeJSON(b, v) })
		same(t, in, func(b []byte, v *credit.Receipt) error { return decodeJSON(b, v) })
		same(t, in, decodeQuery)
		same(t, in, decodeReceipt)
	})
}

func same[T any](t *testing.T, in []byte, dec func([]byte, *T) error) {
	var got, want T
	gotErr := dec(in, &got)
	wantErr := json.Unmarshal(in, &want)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%T: decodeJSON error %v, encoding/json error %v", got, gotErr, wantErr)
	}
	if gotErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%T: decodeJSON %+v, encoding/json %+v", got, got, want)
	}
}
