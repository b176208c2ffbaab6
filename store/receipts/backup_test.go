package receipts

import (
	"context"
	"testing"

	"github.com/prdcredit/ccnode/credit"
)

// TestAdoptLedger: after a restore the outbox is made to say what the
// ledger says, in each direction: a ledger behind the outbox drops the
// anchored history above it and a pending checkpoint built on a base the
// ledger lacks; a ledger with no checkpoint clears the anchored one; a
// pending checkpoint built on the ledger's latest is kept.
func TestAdoptLedger(t *testing.T) {
	db := openDB(t, true, "")
	defer db.Close()
	l := openLog(t, db)
	defer l.Close()
	for i := range 6 {
		if _, err := l.Append(context.Background(), receipt(t, i)); err != nil {
			t.Fatal(err)
		}
	}
	o := NewOutbox(db, nil)
	anchored := func(size uint64) credit.AnchoredCheckpoint {
		root, err := l.Root(size)
		if err != nil {
			t.Fatal(err)
		}
		return credit.AnchoredCheckpoint{Checkpoint: credit.Checkpoint{Region: "440300", Size: size, Root: root}, TxID: "tx"}
	}
	for _, s := range []uint64{2, 4} {
		if err := o.MarkAnchored(anchored(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.SetPending(Pending{Checkpoint: anchored(6).Checkpoint, FromSize: 4}); err != nil {
		t.Fatal(err)
	}

	// The ledger is at 2 (restored older than the store).
	if err := o.AdoptLedger(anchored(2), true); err != nil {
		t.Fatal(err)
	}
	if ac, ok, _ := o.LastAnchored(); !ok || ac.Size != 2 {
		t.Fatalf("last anchored %d %v, want 2", ac.Size, ok)
	}
	if _, ok, _ := o.AnchoredAt(4); ok {
		t.Fatal("history keeps a checkpoint of size 4 the ledger does not hold")
	}
	if _, ok, _ := o.AnchoredAt(2); !ok {
		t.Fatal("history lost the ledger's checkpoint of size 2")
	}
	if _, ok, _ := o.Pending(); ok {
		t.Fatal("a pending checkpoint proved from size 4 survived a ledger at 2")
	}

	// A pending checkpoint built on the ledger's latest stays.
	if err := o.SetPending(Pending{Checkpoint: anchored(6).Checkpoint, FromSize: 2}); err != nil {
		t.Fatal(err)
	}
	if err := o.AdoptLedger(anchored(2), true); err != nil {
		t.Fatal(err)
	}
	if p, ok, _ := o.Pending(); !ok || p.FromSize != 2 {
		t.Fatalf("pending from the ledger's latest dropped: %+v %v", p, ok)
	}

	// The ledger holds nothing of this region.
	if err := o.AdoptLedger(credit.AnchoredCheckpoint{}, false); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := o.LastAnchored(); ok {
		t.Fatal("last anchored survived a ledger with no checkpoint")
	}
	if _, ok, _ := o.Pending(); ok {
		t.Fatal("a pending checkpoint with a proof survived a ledger with no checkpoint")
	}
}
