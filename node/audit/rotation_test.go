package audit

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// After a key rotation (ccnode keys rotate for a region, ccnode bank
// rotate for a bank) the audit accepts what the old key signed before the
// change and refuses the old key after it: receipts and checkpoints of the
// region, queries of the bank.
func TestOldKeyAfterRotation(t *testing.T) {
	build := func(t *testing.T, oldAfter bool) Report {
		f := newFixture(t, 8)
		f.cpEvery = 2
		// sz changes key after receipt 3 (checkpoint 2 anchored before the
		// change), bank-a after receipt 5.
		regionAt, bankAt := f.when(3).Add(30*time.Second), f.when(5).Add(10*time.Second)
		rv := f.snap.RegionVersions[sz][0]
		rv.PubKey, rv.UpdatedAt = pub("sz-2"), regionAt
		f.snap.AddRegion(rv)
		bv := f.snap.BankVersions[bankA][0]
		bv.PubKey, bv.UpdatedAt = pub("bank-a-2"), bankAt
		f.snap.AddBank(bv)
		sign := func(i int, bank, region ed25519.PrivateKey) {
			r := &f.receipts[i]
			if err := r.Query.Sign(bank); err != nil {
				t.Fatal(err)
			}
			id, err := credit.ReceiptID(sz, &r.Query)
			if err != nil {
				t.Fatal(err)
			}
			r.ID = id
			if err := r.Sign(region); err != nil {
				t.Fatal(err)
			}
			f.acks[i] = []credit.Ack{f.ack(r)}
		}
		for i := 4; i < 8; i++ {
			bank := key("bank-a")
			if i >= 6 {
				bank = key("bank-a-2")
			}
			sign(i, bank, key("sz-2"))
		}
		if oldAfter {
			sign(5, key("bank-a"), key("sz"))   // sz's old key, after its change
			sign(7, key("bank-a"), key("sz-2")) // bank-a's old key, after its change
		}
		f.anchor()
		for i, cp := range f.snap.Anchored[sz] {
			k := key("sz-2")
			if cp.AnchoredAt.Before(regionAt) || (oldAfter && i == len(f.snap.Anchored[sz])-1) {
				k = key("sz")
			}
			if err := f.snap.Anchored[sz][i].Sign("test", k); err != nil {
				t.Fatal(err)
			}
		}
		if f.snap.Anchored[sz][0].AnchoredAt.After(regionAt) {
			t.Fatal("the fixture anchors no checkpoint before the change")
		}
		return runAudit(t, f, f.answeredLines(), nil, testOptions(t))
	}
	if rep := build(t, false); rep.Total != 0 {
		t.Fatalf("old keys before the changes, new keys after: %d findings %v, want none", rep.Total, rep.ByRule)
	}
	rep := build(t, true)
	for _, r := range []Rule{RuleReceiptSig, RuleQuerySig, RuleCheckpointSig} {
		if rep.ByRule[r] == 0 {
			t.Errorf("old key used after the change: no %s finding (%v)", r, rep.ByRule)
		}
	}
}

// A retired region anchors the rest of its log after its retirement, with
// the key it retired with: those checkpoints verify, and each receipt is
// still held to the key of its own time, so one signed after the
// retirement is a finding.
func TestRetiredRegionAnchorsItsLog(t *testing.T) {
	build := func(t *testing.T, retiredAfter int) Report {
		f := newFixture(t, 8)
		f.cpEvery = 4
		rv := f.snap.RegionVersions[sz][0]
		rv.Status, rv.UpdatedAt = credit.StatusRetired, f.when(retiredAfter).Add(time.Second)
		f.snap.AddRegion(rv)
		f.anchor()
		last := f.snap.Anchored[sz][len(f.snap.Anchored[sz])-1]
		if !last.AnchoredAt.After(rv.UpdatedAt) {
			t.Fatal("the fixture anchors no checkpoint after the retirement")
		}
		return runAudit(t, f, f.answeredLines(), nil, testOptions(t))
	}
	if rep := build(t, 7); rep.Total != 0 {
		t.Fatalf("every receipt before the retirement, the last checkpoint after it: %d findings %v, want none", rep.Total, rep.ByRule)
	}
	rep := build(t, 5)
	if rep.ByRule[RuleReceiptSig] != 2 || rep.ByRule[RuleCheckpointSig] != 0 {
		t.Fatalf("two receipts after the retirement: findings %v, want 2 %s and no %s", rep.ByRule, RuleReceiptSig, RuleCheckpointSig)
	}
}
