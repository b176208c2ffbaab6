package chaincode

import (
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/prdcredit/ccnode/credit"
)

func vote(t *testing.T, l *memLedger, msp string, at time.Time, f func(Contract, TxContext) (credit.RegionVote, error)) (credit.RegionVote, []memEvent) {
	t.Helper()
	var v credit.RegionVote
	evs, err := l.run(msp, at, func(x TxContext) (err error) { v, err = f(Contract{}, x); return })
	if err != nil {
		t.Fatalf("vote by %s: %v", msp, err)
	}
	return v, evs
}

func approve(id string) func(Contract, TxContext) (credit.RegionVote, error) {
	return func(c Contract, x TxContext) (credit.RegionVote, error) { return c.ApproveRegion(x, id) }
}

// retireByVote retires region id by the votes of msps, a second apart
// from at, as the consortium does (a region cannot retire itself through
// its record); the last vote must decide.
func retireByVote(t *testing.T, l *memLedger, id string, at time.Time, msps ...string) {
	t.Helper()
	var v credit.RegionVote
	for i, msp := range msps {
		v, _ = vote(t, l, msp, at.Add(time.Duration(i)*time.Second), func(c Contract, x TxContext) (credit.RegionVote, error) { return c.RetireRegion(x, id) })
	}
	if v.Proposal.Status != credit.ProposalAccepted {
		t.Fatalf("retiring %s by the votes of %v: %+v, want accepted", id, msps, v)
	}
}

// A region's own record cannot retire it: only the vote does.
func TestRegionCannotRetireItself(t *testing.T) {
	l, rs := bootstrapped(t)
	gz := rs[1].member
	gz.Status = credit.StatusRetired
	_, err := l.run("GZMSP", t0.Add(time.Minute), func(c TxContext) error { return Contract{}.UpdateRegion(c, mustJSON(gz)) })
	if CodeOf(err) != CodeDenied || !strings.Contains(err.Error(), "majority") {
		t.Fatalf("a region retiring itself through its record: %v, want denied naming the vote", err)
	}
	if r, _ := (Contract{}).GetRegion(&memTx{l: l}, "440100"); r.Status != credit.StatusActive {
		t.Fatalf("after the refused change: %+v, want active", r)
	}
}

// Only the votes of regions active at the deciding vote count: a region
// that approved and then retired no longer carries the proposal, and the
// majority is of the active regions then.
func TestRetiredVoterNoLongerCounts(t *testing.T) {
	l, _ := bootstrapped(t)
	at := t0.Add(time.Minute)
	dg := testRegion(t, "441900", "DGMSP", "4419")
	if _, err := l.run("DGMSP", at, func(x TxContext) error { _, err := Contract{}.ProposeRegion(x, mustJSON(dg.member)); return err }); err != nil {
		t.Fatal(err)
	}
	// Zhuhai approves, then is retired.
	vote(t, l, "ZHMSP", at.Add(time.Second), approve("441900"))
	retireByVote(t, l, "440400", at.Add(2*time.Second), "GZMSP", "ZHMSP")
	// Two active regions: the majority is two, and Zhuhai's vote is gone.
	v, evs := vote(t, l, "SZMSP", at.Add(5*time.Second), approve("441900"))
	if v.Proposal.Status != credit.ProposalOpen || v.Proposal.Needed != 2 || len(evs) != 1 || evs[0].name != EventRegionApproved {
		t.Fatalf("after Shenzhen's vote: %+v, events %+v", v, evs)
	}
	v, evs = vote(t, l, "GZMSP", at.Add(4*time.Second), approve("441900"))
	if v.Proposal.Status != credit.ProposalAccepted || len(evs) != 1 || evs[0].name != EventMemberChanged {
		t.Fatalf("after Guangzhou's vote: %+v, events %+v", v, evs)
	}
	// The retired region's vote is refused outright.
	_, err := l.run("ZHMSP", at.Add(5*time.Second), func(x TxContext) error { _, err := Contract{}.RetireRegion(x, "441900"); return err })
	if CodeOf(err) != CodeDenied {
		t.Fatalf("a retired region's vote: %v", err)
	}
}

// The last active region cannot be voted out: the consortium would have
// nobody left to approve anything.
func TestLastRegionCannotRetire(t *testing.T) {
	l, _ := bootstrapped(t)
	at := t0.Add(time.Minute)
	retireByVote(t, l, "440100", at, "GZMSP", "ZHMSP")
	retireByVote(t, l, "440400", at.Add(10*time.Second), "SZMSP", "ZHMSP")
	_, err := l.run("SZMSP", at.Add(time.Minute), func(x TxContext) error { _, err := Contract{}.RetireRegion(x, "440300"); return err })
	if CodeOf(err) != CodeConflict || !strings.Contains(err.Error(), "last active region") {
		t.Fatalf("retiring the last region: %v", err)
	}
}

// Two candidates for the same divisions may both be proposed, but the
// second cannot be activated once the first holds them.
func TestOverlapCheckedAgainAtActivation(t *testing.T) {
	l, _ := bootstrapped(t)
	at := t0.Add(time.Minute)
	a, b := testRegion(t, "441900", "DGMSP", "4419"), testRegion(t, "441901", "DG2MSP", "4419")
	for _, r := range []region{a, b} {
		if _, err := l.run(r.member.MSPID, at, func(x TxContext) error { _, err := Contract{}.ProposeRegion(x, mustJSON(r.member)); return err }); err != nil {
			t.Fatal(err)
		}
	}
	vote(t, l, "SZMSP", at.Add(time.Second), approve("441900"))
	vote(t, l, "GZMSP", at.Add(2*time.Second), approve("441900"))
	// Four active regions now: the third vote would decide.
	vote(t, l, "SZMSP", at.Add(3*time.Second), approve("441901"))
	vote(t, l, "GZMSP", at.Add(4*time.Second), approve("441901"))
	_, err := l.run("ZHMSP", at.Add(5*time.Second), func(x TxContext) error { _, err := Contract{}.ApproveRegion(x, "441901"); return err })
	if CodeOf(err) != CodeConflict {
		t.Fatalf("activating a candidate whose divisions an active region now holds: %v", err)
	}
}

// A retired region still anchors its receipt log (the receipts its node
// issued until it saw the retirement), with the key it retired with and a
// consistency proof as before; everything else it may no longer do.
func TestRetiredRegionAnchorsItsLog(t *testing.T) {
	l, rs := bootstrapped(t)
	zh := rs[2]
	tree := testonly.New(rfc6962.DefaultHasher)
	anchor := func(at time.Time, leaves ...string) error {
		from := tree.Size()
		for _, s := range leaves {
			tree.AppendData([]byte(s))
		}
		cp := credit.Checkpoint{Region: zh.member.ID, Size: tree.Size(), Root: tree.Hash()}
		if err := cp.Sign("test", zh.key); err != nil {
			t.Fatal(err)
		}
		proofJSON := ""
		if from > 0 {
			p, err := tree.ConsistencyProof(from, tree.Size())
			if err != nil {
				t.Fatal(err)
			}
			proofJSON = mustJSON(p)
		}
		_, err := l.run("ZHMSP", at, func(x TxContext) error { _, err := Contract{}.AnchorCheckpoint(x, mustJSON(cp), proofJSON); return err })
		return err
	}
	at := t0.Add(time.Minute)
	if err := anchor(at, "r0"); err != nil {
		t.Fatal(err)
	}
	for i, msp := range []string{"SZMSP", "GZMSP"} {
		if _, err := l.run(msp, at.Add(time.Duration(i+1)*time.Second), func(x TxContext) error { _, err := Contract{}.RetireRegion(x, "440400"); return err }); err != nil {
			t.Fatal(err)
		}
	}
	if r, _ := (Contract{}).GetRegion(&memTx{l: l}, "440400"); r.Status != credit.StatusRetired {
		t.Fatalf("Zhuhai after two votes of three: %s", r.Status)
	}
	if err := anchor(at.Add(5*time.Second), "r1", "r2"); err != nil {
		t.Fatalf("a retired region anchoring the rest of its log: %v", err)
	}
	latest, err := Contract{}.GetLatestCheckpoint(&memTx{l: l}, "440400")
	if err != nil || latest.Size != 3 {
		t.Fatalf("Zhuhai's latest checkpoint: %+v, %v", latest, err)
	}
	_, err = l.run("ZHMSP", at.Add(6*time.Second), func(x TxContext) error {
		return Contract{}.RecordConsent(x, mustJSON(credit.ConsentCommitment{ID: "consent-zh", Commitment: make([]byte, 32), Region: "440400", ValidFrom: t0, ValidUntil: t0.Add(time.Hour)}))
	})
	if CodeOf(err) != CodeDenied {
		t.Fatalf("a retired region recording a consent: %v", err)
	}
}
