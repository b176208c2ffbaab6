package consortium

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/network/ledgerfault"
	"github.com/prdcredit/ccnode/node"
)

// While the ledger is down (within the grace period) queries are answered
// and logged; anchoring retries in the background and catches up when
// the ledger returns.
func TestAnchoringRetriesWithoutBlockingQueries(t *testing.T) {
	ctx := context.Background()
	faults := ledgerfault.New()
	c, err := Start(ctx, Options{Logger: testkit.LoggerAt(t, slog.LevelWarn), Mocknet: true, WrapLedger: faults.Wrap, Tune: func(cfg *node.Config) {
		cfg.Anchor.Interval = 50 * time.Millisecond
		cfg.Anchor.RetryMin, cfg.Anchor.RetryMax = 20*time.Millisecond, 100*time.Millisecond
		cfg.Ledger.GracePeriod = time.Minute
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sz, bank := c.Region("440300"), c.Banks[0]
	ent, g := taxConsent(t, c, 9)
	cats := g.Categories

	faults.SetDown(true)
	if err := sz.Node.AnchorNow(ctx); err != nil && !errors.Is(err, network.ErrUnavailable) {
		t.Fatalf("anchoring while down: %v", err)
	}
	for range 5 {
		q, _ := bank.Query(ent.USCC, cats, credit.PurposeCreditReview, &g, time.Now())
		if _, err := sz.Node.Query(ctx, &q); err != nil {
			t.Fatalf("query while the ledger is down, within grace: %v", err)
		}
	}
	size := sz.Node.Log().Size()
	if size < 5 {
		t.Fatalf("log size %d", size)
	}
	if _, ok, _ := sz.Node.LatestCheckpoint(); ok {
		t.Fatal("anchored while the ledger was down")
	}
	faults.SetDown(false)
	poll(t, "anchoring to catch up", func() bool {
		ac, err := sz.Ledger.LatestCheckpoint(ctx, sz.ID)
		return err == nil && ac.Size >= size
	})
}

// anchor.mode per_receipt: every receipt has its own checkpoint
// transaction, committed before the answer leaves its node, even with
// queries in flight together: the home node's own slice and the slices
// the other regions answer over p2p.
func TestAnchorPerReceiptCommitsBeforeAnswering(t *testing.T) {
	ctx := context.Background()
	c, err := Start(ctx, Options{Logger: testkit.LoggerAt(t, slog.LevelWarn), Mocknet: true, Tune: func(cfg *node.Config) {
		cfg.Anchor.Mode = node.AnchorPerReceipt
		// The answers wait for commits one after another; on a loaded
		// machine under -race that may take longer than the default.
		cfg.Query.RegionTimeout = 2 * time.Minute
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sz, bank := c.Region("440300"), c.Banks[0]
	ent, g := taxConsent(t, c, 11)
	cats := g.Categories
	const queries = 8
	errs := make(chan error, queries)
	for range queries {
		go func() {
			q, err := bank.Query(ent.USCC, cats, credit.PurposeCreditReview, &g, time.Now())
			if err != nil {
				errs <- err
				return
			}
			res, err := sz.Node.Query(ctx, &q)
			if err != nil {
				errs <- err
				return
			}
			for _, st := range res.Regions {
				if st.Status != node.StatusOK || st.LeafIndex == nil {
					errs <- fmt.Errorf("region %s: %s %s %s", st.Region, st.Status, st.Reason, st.Message)
					return
				}
				// Committed before the answer: the ledger already
				// covers this receipt.
				ac, err := sz.Ledger.LatestCheckpoint(ctx, st.Region)
				if err != nil || ac.Size <= *st.LeafIndex {
					errs <- fmt.Errorf("region %s: receipt %d answered, ledger checkpoint %d (%v)", st.Region, *st.LeafIndex, ac.Size, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range queries {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range c.Regions {
		hist, err := sz.Ledger.CheckpointHistory(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		size := r.Node.Log().Size()
		if size != queries || uint64(len(hist)) != size {
			t.Fatalf("region %s: %d receipts, %d checkpoints on the ledger; want %d of each", r.ID, size, len(hist), queries)
		}
		for i, h := range hist {
			if h.Size != uint64(i+1) {
				t.Fatalf("region %s: checkpoint %d has size %d, want one transaction per receipt", r.ID, i, h.Size)
			}
		}
	}
}

// taxConsent stores a tax record of enterprise n at Shenzhen and records
// the enterprise's consent for the first bank (credit review, tax); it
// returns once every region's view holds the consent.
func taxConsent(t *testing.T, c *Consortium, n int) (Enterprise, credit.ConsentGrant) {
	t.Helper()
	ctx := context.Background()
	sz, bank := c.Region("440300"), c.Banks[0]
	ent := certified(t, c, testkit.USCC(t, "440300", n))
	mustPut(t, sz, rec(t, ent.USCC, credit.Tax, 1))
	g, _ := ent.Grant(bank.ID, sz.ID, []credit.Category{credit.Tax}, credit.PurposeCreditReview, time.Now(), time.Hour)
	g, _, err := sz.Node.RecordConsent(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range c.Regions {
		poll(t, "consent at "+string(r.ID), func() bool {
			_, st, err := r.Node.ConsentStatus(ctx, g.ID)
			return err == nil && st == credit.ConsentActive
		})
	}
	return ent, g
}

// A region stopped with a checkpoint prepared but not anchored (the
// ledger was down) and restarted on a rotated key anchors again: the
// pending checkpoint, signed by the old key the record no longer names, is
// signed again with the new one instead of being refused for good.
func TestPendingCheckpointAfterKeyRotation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	log := testkit.LoggerAt(t, slog.LevelWarn)
	// Anchoring only when the test asks (AnchorNow).
	tune := func(cfg *node.Config) { cfg.Anchor.Interval = time.Hour }
	faults := ledgerfault.New()
	c, err := Start(ctx, Options{Dir: dir, Logger: log, Mocknet: true, WrapLedger: faults.Wrap, Tune: tune})
	if err != nil {
		t.Fatal(err)
	}
	sz, bank := c.Region("440300"), c.Banks[0]
	ent, g := taxConsent(t, c, 11)
	q, _ := bank.Query(ent.USCC, g.Categories, credit.PurposeCreditReview, &g, time.Now())
	if _, err := sz.Node.Query(ctx, &q); err != nil {
		t.Fatal(err)
	}
	faults.SetDown(true)
	if err := sz.Node.AnchorNow(ctx); !errors.Is(err, network.ErrUnavailable) {
		t.Fatalf("anchoring while the ledger is down: %v, want unavailable (the checkpoint stays pending)", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := node.RotateKey(node.DefaultConfig(sz.ID, filepath.Join(dir, string(sz.ID))), time.Now()); err != nil {
		t.Fatal(err)
	}

	c, err = Start(ctx, Options{Dir: dir, Logger: log, Mocknet: true, Tune: tune})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sz = c.Region("440300")
	if err := sz.Node.AnchorNow(ctx); err != nil {
		t.Fatalf("anchoring after the rotation: %v", err)
	}
	ac, err := sz.Ledger.LatestCheckpoint(ctx, sz.ID)
	if err != nil || ac.Size != sz.Node.Log().Size() || ac.Size == 0 {
		t.Fatalf("anchored %+v (%v), log size %d", ac, err, sz.Node.Log().Size())
	}
	if err := ac.Checkpoint.Verify(sz.Key.Public().(ed25519.PublicKey)); err != nil {
		t.Fatalf("the anchored checkpoint is not signed by the new key: %v", err)
	}
}
