package consortium

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network/ledgerfault"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/p2p"
	"github.com/prdcredit/ccnode/store"
	"github.com/prdcredit/ccnode/store/receipts"
)

func rec(t testing.TB, u credit.USCC, cat credit.Category, i int) credit.Record {
	t.Helper()
	r := credit.Record{Subject: u, Source: "dept-" + string(cat), SourceID: fmt.Sprintf("r%d", i),
		Category: cat, Date: credit.Date(fmt.Sprintf("2024-01-%02d", i%28+1)), Attrs: []byte(`{"n":1}`)}
	if err := r.Normalize(time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	return r
}

func mustPut(t testing.TB, r *Region, recs ...credit.Record) {
	t.Helper()
	if _, err := r.Store.Put(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
}

// certified is the enterprise u with a key that the authority of u's
// region certified.
// ownSliceAsker records a consent of enterprise u for c's first bank at
// region r (categories cats) and returns a function that queries r with it
// and gives r's own part of each answer.
func ownSliceAsker(t *testing.T, c *Consortium, r *Region, u credit.USCC, cats []credit.Category) func() node.RegionStatus {
	t.Helper()
	ctx := context.Background()
	ent := certified(t, c, u)
	bank := c.Banks[0]
	grant, err := ent.Grant(bank.ID, r.ID, cats, credit.PurposeLoanApplication, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if grant, _, err = r.Node.RecordConsent(ctx, grant); err != nil {
		t.Fatal(err)
	}
	return func() node.RegionStatus {
		t.Helper()
		q, _ := bank.Query(ent.USCC, cats, credit.PurposeLoanApplication, &grant, time.Now())
		res, err := r.Node.Query(ctx, &q)
		if err != nil {
			t.Fatalf("query: %v", err)
		}
		for _, st := range res.Regions {
			if st.Region == r.ID {
				return st
			}
		}
		t.Fatalf("no answer from %s: %+v", r.ID, res.Regions)
		return node.RegionStatus{}
	}
}

func certified(t testing.TB, c *Consortium, u credit.USCC) Enterprise {
	t.Helper()
	e, err := c.Enterprise(u)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func fastTune(c *node.Config) {
	c.Anchor.Interval = time.Hour // tests anchor with AnchorNow
	c.Ledger.GracePeriod = 2 * time.Second
}

// failWriter is an AnswerWriter for answers that must be refused.
type failWriter struct{ t *testing.T }

func (w failWriter) Begin([]byte, uint64) error {
	w.t.Error("an answer began that must be refused")
	return errors.New("refused answer began")
}

func (w failWriter) Records([]credit.Record) error { return errors.New("refused answer wrote records") }

func poll(t *testing.T, what string, ok func() bool) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, func() error {
		if ok() {
			return nil
		}
		return fmt.Errorf("timed out waiting for %s", what)
	})
}

func TestConsortiumScenario(t *testing.T) {
	ctx := context.Background()
	faults := ledgerfault.New()
	c, err := Start(ctx, Options{Logger: testkit.LoggerAt(t, slog.LevelWarn), Tune: fastTune, Mocknet: true, WrapLedger: faults.Wrap})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sz, gz := c.Region("440300"), c.Region("440100")
	bankSZ, bankGZ := c.Banks[0], c.Banks[1]
	ent := certified(t, c, testkit.USCC(t, "440300", 1))
	mustPut(t, sz, rec(t, ent.USCC, credit.Tax, 1), rec(t, ent.USCC, credit.Penalty, 2))
	mustPut(t, gz, rec(t, ent.USCC, credit.Judicial, 3), rec(t, ent.USCC, credit.Customs, 4))

	cats := []credit.Category{credit.Tax, credit.Penalty, credit.Judicial}
	grant, err := ent.Grant(bankSZ.ID, sz.ID, cats, credit.PurposeLoanApplication, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	grant, _, err = sz.Node.RecordConsent(ctx, grant)
	if err != nil {
		t.Fatal(err)
	}

	q, _ := bankSZ.Query(ent.USCC, cats, credit.PurposeLoanApplication, &grant, time.Now())
	res, err := sz.Node.Query(ctx, &q)
	if err != nil {
		t.Fatalf("consented query: %v", err)
	}
	if res.RecordCount != 3 || len(res.Regions) != 3 {
		t.Fatalf("consolidated: %d records from %d regions, want 3 from 3", res.RecordCount, len(res.Regions))
	}
	var szReceipt string
	for _, st := range res.Regions {
		if st.Status != node.StatusOK {
			t.Fatalf("region %s: %s %s", st.Region, st.Status, st.Message)
		}
		m, _ := sz.Node.View().Region(st.Region)
		if err := st.Receipt.Verify(m.PubKey); err != nil {
			t.Fatal(err)
		}
		if st.Region == sz.ID {
			szReceipt = st.Receipt.ID
		}
	}

	// The same query again is a replay.
	if _, err := sz.Node.Query(ctx, &q); credit.CodeOf(err) != credit.CodeReplayedNonce {
		t.Fatalf("replay: %v", err)
	}

	unrecorded, _ := ent.Grant(bankSZ.ID, sz.ID, cats, credit.PurposeLoanApplication, time.Now(), time.Hour)
	otherBank := *bankGZ
	refusals := []struct {
		name string
		home *Region
		q    func() credit.Query
		want credit.Code
	}{
		{"no consent", sz, func() credit.Query {
			q, _ := bankSZ.Query(ent.USCC, cats, credit.PurposeLoanApplication, &unrecorded, time.Now())
			return q
		}, credit.CodeConsentNotFound},
		{"category out of scope", sz, func() credit.Query {
			q, _ := bankSZ.Query(ent.USCC, []credit.Category{credit.Customs}, credit.PurposeLoanApplication, &grant, time.Now())
			return q
		}, credit.CodeCategoryOutOfScope},
		{"another bank's consent", gz, func() credit.Query {
			q, _ := otherBank.Query(ent.USCC, cats, credit.PurposeLoanApplication, &grant, time.Now())
			return q
		}, credit.CodeConsentOtherBank},
		{"forged signature", sz, func() credit.Query {
			q, _ := bankSZ.Query(ent.USCC, cats, credit.PurposeLoanApplication, &grant, time.Now())
			q.Sig[0] ^= 1
			return q
		}, credit.CodeBadSignature},
		{"wrong purpose", sz, func() credit.Query {
			q, _ := bankSZ.Query(ent.USCC, cats, credit.PurposeGuarantee, &grant, time.Now())
			return q
		}, credit.CodePurposeMismatch},
		{"stale time", sz, func() credit.Query {
			q, _ := bankSZ.Query(ent.USCC, cats, credit.PurposeLoanApplication, &grant, time.Now().Add(-time.Hour))
			return q
		}, credit.CodeStaleQuery},
		{"not the bank's home", gz, func() credit.Query {
			q, _ := bankSZ.Query(ent.USCC, cats, credit.PurposeLoanApplication, &grant, time.Now())
			return q
		}, credit.CodeWrongHomeRegion},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q()
			_, err := tc.home.Node.Query(ctx, &q)
			if got := credit.CodeOf(err); got != tc.want {
				t.Fatalf("refusal %q: got %v, want reason %s", tc.name, err, tc.want)
			}
		})
	}

	// A region answering Shenzhen's peer directly (the p2p server's
	// handler) refuses too: defence in depth against a home node that
	// skips its checks.
	fq, _ := bankSZ.Query(ent.USCC, []credit.Category{credit.Customs}, credit.PurposeLoanApplication, &grant, time.Now())
	err = gz.Node.Answer(ctx, sz.Node.Host().ID(), &p2p.Request{Requester: sz.ID, Query: fq}, failWriter{t})
	if credit.CodeOf(err) != credit.CodeCategoryOutOfScope {
		t.Fatalf("answering side let an out-of-scope query through: %v", err)
	}
	// Nor does it answer a peer that is not the region it names.
	fq, _ = bankSZ.Query(ent.USCC, cats, credit.PurposeLoanApplication, &grant, time.Now())
	err = gz.Node.Answer(ctx, c.Region("440400").Node.Host().ID(), &p2p.Request{Requester: sz.ID, Query: fq}, failWriter{t})
	if credit.CodeOf(err) != credit.CodeNotMember {
		t.Fatalf("answering side answered a peer claiming another region: %v", err)
	}

	// Anchor, then prove the Shenzhen receipt against the anchored root.
	for _, r := range c.Regions {
		if err := r.Node.AnchorNow(ctx); err != nil {
			t.Fatalf("anchor %s: %v", r.ID, err)
		}
	}
	rp, err := sz.Node.Proof(ctx, szReceipt)
	if err != nil {
		t.Fatal(err)
	}
	if rp.Checkpoint == nil {
		t.Fatal("receipt not covered by an anchored checkpoint after anchoring")
	}
	onLedger, err := sz.Ledger.LatestCheckpoint(ctx, sz.ID)
	if err != nil || onLedger.Size != rp.TreeSize || string(onLedger.Root) != string(rp.Root) {
		t.Fatalf("ledger checkpoint %+v differs from proof's (%d): %v", onLedger, rp.TreeSize, err)
	}
	if err := onLedger.Verify(sz.Key.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	leaf, _ := rp.Receipt.LeafBytes()
	if err := proof.VerifyInclusion(receipts.Hasher, rp.LeafIndex, rp.TreeSize, receipts.Hasher.HashLeaf(leaf), rp.Proof, rp.Root); err != nil {
		t.Fatalf("inclusion proof: %v", err)
	}
	if len(rp.Acks) != 1 || rp.Acks[0].Verify(&rp.Receipt, sz.Key.Public().(ed25519.PublicKey)) != nil {
		t.Fatalf("ack beside receipt: %+v", rp.Acks)
	}
	// The requester kept Guangzhou's receipt with its ack.
	for _, st := range res.Regions {
		if _, err := sz.Node.Requested().Get(st.Receipt.ID); err != nil {
			t.Fatalf("requester did not keep %s's receipt: %v", st.Region, err)
		}
	}

	// Revocation reaches every node through ledger events.
	if _, err := sz.Node.RevokeConsent(ctx, grant.ID); err != nil {
		t.Fatal(err)
	}
	for _, r := range c.Regions {
		poll(t, "revocation at "+string(r.ID), func() bool {
			cm, st, err := r.Node.ConsentStatus(ctx, grant.ID)
			return err == nil && st == credit.ConsentRevoked && cm.RevokedAt != nil
		})
	}
	rq, _ := bankSZ.Query(ent.USCC, cats, credit.PurposeLoanApplication, &grant, time.Now())
	if _, err := sz.Node.Query(ctx, &rq); credit.CodeOf(err) != credit.CodeConsentRevoked {
		t.Fatalf("revoked: %v", err)
	}

	// Fail closed: with the ledger down past the grace period the node
	// refuses and says why; it recovers when the ledger returns.
	faults.SetDown(true)
	poll(t, "node to go unready", func() bool { return sz.Node.Ready() != nil })
	if err := sz.Node.Ready(); !errors.Is(err, node.ErrNotReady) || credit.CodeOf(err) != credit.CodeLedgerViewStale {
		t.Fatalf("readiness: %v", err)
	}
	sq, _ := bankSZ.Query(ent.USCC, cats, credit.PurposeLoanApplication, &grant, time.Now())
	if _, err := sz.Node.Query(ctx, &sq); credit.CodeOf(err) != credit.CodeLedgerViewStale {
		t.Fatalf("stale view: %v", err)
	}
	faults.SetDown(false)
	poll(t, "node to recover", func() bool { return sz.Node.Ready() == nil })
}

// copyDir copies a live Badger directory: every acknowledged write was
// synced, so the copy is what a crash at this instant would leave.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		if d.Name() == "LOCK" {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(filepath.Join(dst, rel))
		if err != nil {
			return err
		}
		defer out.Close()
		_, err = io.Copy(out, in)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCrashRestartKeepsAcknowledgedReceipts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, err := Start(ctx, Options{Dir: dir, Logger: testkit.LoggerAt(t, slog.LevelWarn), Tune: fastTune})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sz := c.Region("440300")
	bank := c.Banks[0]
	ent := certified(t, c, testkit.USCC(t, "440300", 7))
	mustPut(t, sz, rec(t, ent.USCC, credit.Tax, 1))
	cats := []credit.Category{credit.Tax}
	grant, _ := ent.Grant(bank.ID, sz.ID, cats, credit.PurposeCreditReview, time.Now(), time.Hour)
	if grant, _, err = sz.Node.RecordConsent(ctx, grant); err != nil {
		t.Fatal(err)
	}
	ask := func(n int) (ids []string) {
		for range n {
			q, _ := bank.Query(ent.USCC, cats, credit.PurposeCreditReview, &grant, time.Now())
			res, err := sz.Node.Query(ctx, &q)
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range res.Regions {
				if st.Region == sz.ID && st.Status == node.StatusOK {
					ids = append(ids, st.Receipt.ID)
				}
			}
		}
		return ids
	}
	acked := ask(5)
	if err := sz.Node.AnchorNow(ctx); err != nil {
		t.Fatal(err)
	}
	acked = append(acked, ask(7)...) // answered, not yet anchored

	// Crash: take the disk as it is, without closing anything.
	crashed := filepath.Join(t.TempDir(), "crashed")
	copyDir(t, filepath.Join(sz.Dir, "db"), crashed)

	db, err := store.Open(ctx, store.Options{Dir: crashed})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := sz.Node.Config()
	cfg.HTTP.Addr = "127.0.0.1:0"
	sz.Node.Close() // the crashed process is gone; its successor takes over
	n2, err := node.New(ctx, cfg, node.Deps{Store: db, Ledger: sz.Ledger, Key: sz.Key, Logger: testkit.LoggerAt(t, slog.LevelWarn)})
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	for _, id := range acked {
		if _, err := n2.Log().IndexOf(id); err != nil {
			t.Fatalf("acknowledged receipt %s lost: %v", id, err)
		}
	}
	if err := n2.AnchorNow(ctx); err != nil {
		t.Fatal(err)
	}
	ac, err := sz.Ledger.LatestCheckpoint(ctx, sz.ID)
	if err != nil || ac.Size != n2.Log().Size() || ac.Size < uint64(len(acked)) {
		t.Fatalf("after restart: anchored %d, log %d, acked %d (%v)", ac.Size, n2.Log().Size(), len(acked), err)
	}
}

// TestAnswersAcknowledgedOnTheirStreams: once the home node's query
// returned and each answering region settled its exchanges, every
// answering region holds the home node's signed ack of the receipt it
// issued (sent on the answer's own stream), and the home node holds each
// received receipt with that same ack.
func TestAnswersAcknowledgedOnTheirStreams(t *testing.T) {
	ctx := context.Background()
	c, err := Start(ctx, Options{Logger: testkit.LoggerAt(t, slog.LevelWarn), Tune: fastTune, Mocknet: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sz, gz := c.Region("440300"), c.Region("440100")
	bank := c.Banks[0]
	ent, err := c.Enterprise(testkit.USCC(t, "440300", 11))
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, sz, rec(t, ent.USCC, credit.Tax, 1))
	mustPut(t, gz, rec(t, ent.USCC, credit.Tax, 2), rec(t, ent.USCC, credit.Tax, 3))
	cats := []credit.Category{credit.Tax}
	grant, _ := ent.Grant(bank.ID, sz.ID, cats, credit.PurposeCreditReview, time.Now(), time.Hour)
	if grant, _, err = sz.Node.RecordConsent(ctx, grant); err != nil {
		t.Fatal(err)
	}
	q, _ := bank.Query(ent.USCC, cats, credit.PurposeCreditReview, &grant, time.Now())
	res, err := sz.Node.Query(ctx, &q)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Regions) != len(c.Regions) {
		t.Fatalf("%d regions answered, want %d", len(res.Regions), len(c.Regions))
	}
	szPub := sz.Key.Public().(ed25519.PublicKey)
	for _, st := range res.Regions {
		if st.Status != node.StatusOK || st.Ack == nil {
			t.Fatalf("region %s: %s %s %s", st.Region, st.Status, st.Reason, st.Message)
		}
		// The home node answers without waiting for the region to store
		// its ack; Settle waits for the exchange to end.
		if err := c.Region(st.Region).Node.Settle(ctx); err != nil {
			t.Fatal(err)
		}
		acks, err := c.Region(st.Region).Node.Log().Acks(st.Receipt.ID)
		if err != nil || len(acks) != 1 {
			t.Fatalf("region %s keeps %d acks of %s (%v), want 1", st.Region, len(acks), st.Receipt.ID, err)
		}
		if a := acks[0]; a.Requester != sz.ID || !bytes.Equal(a.Sig, st.Ack.Sig) || a.Verify(st.Receipt, szPub) != nil {
			t.Fatalf("region %s keeps ack %+v, the home node signed %+v", st.Region, a, st.Ack)
		}
		h, err := sz.Node.Requested().Get(st.Receipt.ID)
		if err != nil || !bytes.Equal(h.Ack.Sig, st.Ack.Sig) || h.Receipt.ID != st.Receipt.ID {
			t.Fatalf("home node's copy of %s's receipt: %+v, %v", st.Region, h, err)
		}
	}
	if n := res.Regions[0].RecordCount + res.Regions[1].RecordCount + res.Regions[2].RecordCount; n != 3 {
		t.Fatalf("%d records, want 3", n)
	}
}
