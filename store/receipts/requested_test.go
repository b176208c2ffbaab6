package receipts

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/prdcredit/ccnode/credit"
)

// queryReceipts are one query's receipts from three answering regions,
// each with the requester's ack, as a home node keeps them.
func queryReceipts(t testing.TB, i int) []Held {
	t.Helper()
	base := receipt(t, i)
	var hs []Held
	for j, answerer := range []credit.RegionID{"440100", "440300", "440400"} {
		r := *base
		r.Answerer, r.ID, r.Sig = answerer, fmt.Sprintf("%s-%d", base.ID, j), nil
		leaf, err := r.SignLeaf(testKey)
		if err != nil {
			t.Fatal(err)
		}
		ack, err := credit.NewAck(&r, r.Requester, r.Time.Add(time.Millisecond), testKey)
		if err != nil {
			t.Fatal(err)
		}
		h := Held{Receipt: r, Ack: ack, ReceivedAt: r.Time.Add(2 * time.Millisecond).UTC()}
		if j != 1 { // the middle one leaves Put to encode its leaf
			h.Leaf = leaf
		}
		hs = append(hs, h)
	}
	return hs
}

// TestRequestedKeepsQueryGroups: a query's received receipts come back
// from Scan and Get as they were put, signatures, acks and times intact,
// beside receipts kept one per key by earlier versions; the query is
// stored once, and a damaged value is reported corrupt.
func TestRequestedKeepsQueryGroups(t *testing.T) {
	db := openDB(t, true, "")
	defer db.Close()
	req := NewRequested(db, nil)
	pub := testKey.Public().(ed25519.PublicKey)

	want := map[string]Held{}
	for i := 1; i <= 3; i++ {
		hs := queryReceipts(t, i)
		if err := req.Put(hs...); err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			want[h.Receipt.ID] = h
		}
	}
	// A receipt kept by an earlier version: one JSON Held under its id.
	legacy := queryReceipts(t, 9)[0]
	legacy.Leaf = nil
	old, err := json.Marshal(legacy)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(requestedKey(legacy.Receipt.ID), old) }); err != nil {
		t.Fatal(err)
	}
	want[legacy.Receipt.ID] = legacy

	got := map[string]Held{}
	if err := req.Scan(func(h Held) error { got[h.Receipt.ID] = h; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Scan gave %d receipts, want %d", len(got), len(want))
	}
	// ScanCounted counts groups and single values alike, before it gives
	// the same receipts.
	counted, scanned := -1, 0
	err = req.ScanCounted(func(n int) error {
		if scanned != 0 {
			t.Fatal("ScanCounted counted after it scanned")
		}
		counted = n
		return nil
	}, func(h Held) error {
		if _, ok := got[h.Receipt.ID]; !ok {
			t.Fatalf("ScanCounted gave receipt %s, which Scan did not", h.Receipt.ID)
		}
		scanned++
		return nil
	})
	if err != nil || counted != len(want) || scanned != len(want) {
		t.Fatalf("ScanCounted: counted %d, gave %d, %v; want %d", counted, scanned, err, len(want))
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			t.Fatalf("receipt %s missing from Scan", id)
		}
		if err := g.Receipt.Verify(pub); err != nil {
			t.Errorf("receipt %s: %v", id, err)
		}
		if err := g.Ack.Verify(&g.Receipt, pub); err != nil {
			t.Errorf("ack of %s: %v", id, err)
		}
		wl, _ := w.Receipt.LeafBytes()
		if g.Leaf != nil && !bytes.Equal(g.Leaf, wl) {
			t.Errorf("receipt %s: leaf differs from the receipt's LeafBytes", id)
		}
		if !g.ReceivedAt.Equal(w.ReceivedAt) || g.Ack.ReceiptID != id || g.Receipt.Answerer != w.Receipt.Answerer {
			t.Errorf("receipt %s came back as %+v", id, g)
		}
	}
	for _, id := range []string{legacy.Receipt.ID, queryReceipts(t, 2)[2].Receipt.ID} {
		if h, err := req.Get(id); err != nil || h.Receipt.ID != id {
			t.Errorf("Get(%s) = %s, %v", id, h.Receipt.ID, err)
		}
	}
	if _, err := req.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of an unknown id: %v, want ErrNotFound", err)
	}

	// The query, most of each receipt, is stored once.
	hs := queryReceipts(t, 4)
	v, err := encodeGroup(hs)
	if err != nil {
		t.Fatal(err)
	}
	q, _, _ := hs[0].Receipt.Query.CanonicalAndDigest()
	if n := bytes.Count(v, q); n != 1 {
		t.Errorf("the query is stored %d times in its group, want 1", n)
	}

	for cut := 1; cut < len(v); cut += len(v) / 7 {
		if err := decodeGroup(v[:cut], func(Held) error { return nil }); !errors.Is(err, ErrCorrupt) {
			t.Errorf("a group cut at %d of %d bytes: %v, want ErrCorrupt", cut, len(v), err)
		}
	}
	bad := append([]byte{0x7f}, v[1:]...)
	if err := decodeGroup(bad, func(Held) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Errorf("unknown format byte: %v, want ErrCorrupt", err)
	}
}

// BenchmarkRequestedPut encodes one query's three received receipts as
// Requested.Put stores them (group), and as one JSON value per receipt
// (json, how they were stored before), reporting the bytes written.
func BenchmarkRequestedPut(b *testing.B) {
	hs := queryReceipts(b, 1)
	for i := range hs {
		if hs[i].Leaf == nil {
			hs[i].Leaf, _ = hs[i].Receipt.LeafBytes()
		}
	}
	b.Run("group", func(b *testing.B) {
		n := 0
		for b.Loop() {
			v, err := encodeGroup(hs)
			if err != nil {
				b.Fatal(err)
			}
			n = len(v)
		}
		b.ReportMetric(float64(n), "bytes/query")
	})
	b.Run("json", func(b *testing.B) {
		n := 0
		for b.Loop() {
			n = 0
			for _, h := range hs {
				v, err := json.Marshal(h)
				if err != nil {
					b.Fatal(err)
				}
				n += len(v)
			}
		}
		b.ReportMetric(float64(n), "bytes/query")
	})
}
