package audit

// This test runs the ledger side on the embedded ledger in memory: the
// contract Fabric runs, under a clock the test moves. Only the test
// depends on it: the audit package itself reads a ledger through
// network's interface alone.

import (
	"context"
	"crypto/ed25519"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/network/embedded"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// TestContractRefusesRewrittenLog: region sz anchors size 4 of its log,
// then rewrites receipt 2 and tries to anchor size 8 of the rewritten log.
// The contract refuses it; the honest size 8 is anchored; the audit of the
// honest exports against a snapshot taken from the ledger is clean, and the
// audit of the rewritten export fails completeness.
func TestContractRefusesRewrittenLog(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 8)
	rw := newFixtureWith(t, 8, f.pki)
	rw.receipts[2] = rw.receipt(2, bankA, "consent-a-0001", []credit.Category{credit.Licensing})
	rw.resign(2)
	f.anchor()
	rw.anchor()

	clock := &testClock{t: t0.Add(-time.Hour)}
	// Each MSP identity signs its proposals with the key of its name.
	ids := map[string]ed25519.PublicKey{}
	for _, msp := range []string{"szMSP", "gzMSP", "auditorMSP"} {
		ids[msp] = pub(msp)
	}
	srv, err := embedded.Open("", embedded.Options{InMemory: true, Now: clock.now, Identities: ids})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	szl := srv.Client("szMSP", key("szMSP"))
	var regions []credit.RegionMember
	for _, r := range []struct {
		id       credit.RegionID
		division string
	}{{sz, "4403"}, {gz, "4401"}} {
		m := f.snap.RegionVersions[r.id][0]
		// The contract wants what a node needs to reach the region.
		m.MSPID, m.PeerID, m.Divisions = string(r.id)+"MSP", "peer-"+string(r.id), []string{r.division}
		regions = append(regions, m)
	}
	var banks []credit.BankMember
	for _, b := range []credit.BankID{bankA, bankB} {
		banks = append(banks, f.snap.BankVersions[b][0])
	}
	if err := szl.Bootstrap(ctx, regions, banks); err != nil {
		t.Fatal(err)
	}
	// sz registers the authority that certified the enterprise's key;
	// the contract sets its time.
	registered := t0.Add(-30 * time.Minute)
	clock.set(registered)
	if err := szl.RegisterAuthority(ctx, f.pki.authority()); err != nil {
		t.Fatal(err)
	}
	clock.set(t0.Add(time.Minute))
	c := f.snap.ConsentRecords["consent-a-0001"]
	if err := szl.RecordConsent(ctx, c); err != nil {
		t.Fatal(err)
	}

	cp4 := f.snap.Anchored[sz][0].Checkpoint
	clock.set(f.when(3).Add(2 * time.Minute))
	if _, err := szl.AnchorCheckpoint(ctx, cp4, nil); err != nil {
		t.Fatal(err)
	}
	clock.set(f.when(7).Add(2 * time.Minute))
	rwProof, err := rw.tree.ConsistencyProof(4, 8)
	if err != nil {
		t.Fatal(err)
	}
	_, err = szl.AnchorCheckpoint(ctx, rw.snap.Anchored[sz][1].Checkpoint, rwProof)
	if !errors.Is(err, network.ErrConflict) && !errors.Is(err, network.ErrDenied) {
		t.Fatalf("anchoring the rewritten log: %v, want a refusal", err)
	}
	honestProof, err := f.tree.ConsistencyProof(4, 8)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := szl.AnchorCheckpoint(ctx, f.snap.Anchored[sz][1].Checkpoint, honestProof); err != nil {
		t.Fatal(err)
	}

	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	snap, err := TakeSnapshot(tctx, srv.Client("auditorMSP", key("auditorMSP")), 50*time.Millisecond, t0.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(snap.Anchored[sz]); n != 2 {
		t.Fatalf("snapshot holds %d checkpoints of sz, want 2", n)
	}
	if a, ok := snap.AuthorityRecords[f.pki.caID]; !ok || !a.RegisteredAt.Equal(registered) {
		t.Fatalf("snapshot's authority %+v, want registered at %s", a, registered)
	}
	audit := func(lines []credit.ExportLine, received []credit.ExportLine) Report {
		in := Inputs{Exports: []Source{BytesSource("sz.jsonl", encodeExport(t, credit.ExportAnswered, sz, lines))}}
		if received != nil {
			in.Exports = append(in.Exports, BytesSource("gz-received.jsonl", encodeExport(t, credit.ExportReceived, gz, received)))
		}
		rep, err := Run(ctx, in, snap, testOptions(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, fd := range rep.Findings {
			t.Logf("finding: %s", fd)
		}
		return rep
	}
	t.Run("honest", func(t *testing.T) {
		checkFindings(t, audit(f.answeredLines(), f.receivedLines()), nil)
	})
	t.Run("rewritten", func(t *testing.T) {
		checkFindings(t, audit(rw.answeredLines(), nil), []want{{RuleCompleteness, -1}})
	})
}
