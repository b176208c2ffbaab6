package receipts

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// TestReceiptDecodesAsJSON: a logged receipt read back (Receipt, Lookup,
// Entry.Receipt) is what encoding/json makes of its leaf bytes, and a leaf
// that is not in canonical form still decodes.
func TestReceiptDecodesAsJSON(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			db := openDB(t, m.memory, t.TempDir())
			defer db.Close()
			l := openLog(t, db)
			defer l.Close()
			for i := range 5 {
				r := receipt(t, i)
				if i == 3 {
					r.Query.Consent = &credit.ConsentGrant{Version: credit.ConsentVersion, ID: "consent-0001", Subject: r.Query.Subject, Grantee: "bank-a",
						Categories: []credit.Category{credit.Tax, credit.Penalty}, Purpose: credit.PurposeCreditReview,
						ValidFrom: time.Unix(1_780_000_000, 0), ValidUntil: time.Unix(1_800_000_000, 0), Region: "440300",
						SignedAt: time.Unix(1_780_000_000, 0), EnterpriseCert: [][]byte{make([]byte, 420)}, EnterpriseSig: make([]byte, 64), RegionSig: make([]byte, 64)}
					if err := r.Sign(testKey); err != nil {
						t.Fatal(err)
					}
				}
				idx, err := l.Append(context.Background(), r)
				if err != nil {
					t.Fatal(err)
				}
				got, err := l.Receipt(r.ID)
				if err != nil {
					t.Fatal(err)
				}
				e, err := l.Entry(idx)
				if err != nil {
					t.Fatal(err)
				}
				var want credit.Receipt
				if err := json.Unmarshal(e.Leaf, &want); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("receipt %d: got %+v, want %+v", i, got, want)
				}
				if err := got.Verify(testKey.Public().(ed25519.PublicKey)); err != nil {
					t.Fatalf("receipt %d read back does not verify: %v", i, err)
				}
			}
			// A leaf with insignificant space is not canonical: decoded by
			// encoding/json all the same.
			e := Entry{Index: 9, Leaf: []byte(` {"v":1,"id":"x"} `)}
			r, err := e.Receipt()
			if err != nil || r.ID != "x" || r.Version != 1 {
				t.Fatalf("non-canonical leaf: %+v, %v", r, err)
			}
			e = Entry{Index: 9, Leaf: []byte(`{"v":`)}
			if _, err := e.Receipt(); err == nil {
				t.Fatal("truncated leaf decoded")
			}
		})
	}
}

// TestPutAckUnknownReceipt: an ack of a receipt not in the log is refused
// and not stored.
func TestPutAckUnknownReceipt(t *testing.T) {
	db := openDB(t, true, "")
	defer db.Close()
	l := openLog(t, db)
	defer l.Close()
	err := l.PutAck(credit.Ack{Version: 1, ReceiptID: "receipt-99999999", Requester: "440100"})
	if err == nil {
		t.Fatal("ack of an unknown receipt stored")
	}
	if acks, err := l.Acks("receipt-99999999"); err != nil || len(acks) != 0 {
		t.Fatalf("acks %v, %v", acks, err)
	}
}

// BenchmarkAckPath is what an answering node does with each ack it
// receives, less the signature check: read the receipt it names, then
// store the ack.
func BenchmarkAckPath(b *testing.B) {
	db := openDB(b, false, b.TempDir())
	defer db.Close()
	l := openLog(b, db)
	defer l.Close()
	const n = 256
	ids := make([]string, n)
	for i := range n {
		r := receipt(b, i)
		if _, err := l.Append(context.Background(), r); err != nil {
			b.Fatal(err)
		}
		ids[i] = r.ID
	}
	i := 0
	for b.Loop() {
		id := ids[i%n]
		i++
		r, err := l.Receipt(id)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.PutAck(credit.Ack{Version: 1, ReceiptID: r.ID, ReceiptDigest: r.ReportDigest, Requester: r.Requester, Time: r.Time, Sig: r.Sig}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEntryReceipt decodes a logged receipt's leaf: Entry.Receipt
// against encoding/json, which it used before.
func BenchmarkEntryReceipt(b *testing.B) {
	leaf, err := receipt(b, 1).LeafBytes()
	if err != nil {
		b.Fatal(err)
	}
	e := Entry{Leaf: leaf}
	b.Run("entry_receipt", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.Receipt(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		for b.Loop() {
			var r credit.Receipt
			if err := json.Unmarshal(leaf, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestPutAckAfterReopen: an ack of a receipt the log holds is stored
// whether the receipt was appended by this Log (PutAck finds it among the
// recent ids) or before it was opened (PutAck reads the index).
func TestPutAckAfterReopen(t *testing.T) {
	db := openDB(t, false, t.TempDir())
	defer db.Close()
	l := openLog(t, db)
	r := receipt(t, 1)
	if _, err := l.Append(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if !l.recent.has(r.ID) {
		t.Fatal("an appended id is not among the recent ones")
	}
	l.Close()
	l = openLog(t, db)
	defer l.Close()
	if l.recent.has(r.ID) {
		t.Fatal("a new Log starts with recent ids")
	}
	if err := l.PutAck(credit.Ack{Version: 1, ReceiptID: r.ID, Requester: "440100"}); err != nil {
		t.Fatalf("ack of a receipt logged before the log was opened: %v", err)
	}
	if acks, err := l.Acks(r.ID); err != nil || len(acks) != 1 {
		t.Fatalf("acks %v, %v", acks, err)
	}
}

// TestRecentIDsForgetsOldest: the set holds the last cap ids added.
func TestRecentIDsForgetsOldest(t *testing.T) {
	r := newRecentIDs(3)
	r.add("a", "b")
	r.add("c", "d")
	for id, want := range map[string]bool{"a": false, "b": true, "c": true, "d": true, "e": false} {
		if r.has(id) != want {
			t.Errorf("has(%s) = %v, want %v", id, !want, want)
		}
	}
}
