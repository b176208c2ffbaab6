package consortium

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// statusOfRegion is region id's part of a consolidated answer.
func statusOfRegion(res *node.Consolidated, id credit.RegionID) (node.RegionStatus, bool) {
	i := slices.IndexFunc(res.Regions, func(st node.RegionStatus) bool { return st.Region == id })
	if i < 0 {
		return node.RegionStatus{}, false
	}
	return res.Regions[i], true
}

// TestRegionJoinsAndLeavesWhileQueriesRun: three regions on TCP hosts,
// bank queries running throughout through Shenzhen's bank API. Dongguan
// (441900) proposes itself through its node's admin API and joins at two
// approvals of three; its records then appear in Shenzhen's consolidated
// answers with no node restarted. Zhuhai (440400) is retired by three
// votes of four: its slice is then reported retired and its peer is cut
// off from Shenzhen's host.
func TestRegionJoinsAndLeavesWhileQueriesRun(t *testing.T) {
	ctx := context.Background()
	c, err := Start(ctx, Options{Logger: testkit.LoggerAt(t, slog.LevelWarn), Tune: fastTune})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sz, gz, zh := c.Region("440300"), c.Region("440100"), c.Region("440400")
	bank := c.Banks[0]
	ent := certified(t, c, testkit.USCC(t, "440300", 7))
	mustPut(t, sz, rec(t, ent.USCC, credit.Tax, 1))
	mustPut(t, zh, rec(t, ent.USCC, credit.Penalty, 2))
	cats := []credit.Category{credit.Tax, credit.Penalty, credit.Judicial}
	grant, err := ent.Grant(bank.ID, sz.ID, cats, credit.PurposeLoanApplication, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if grant, _, err = sz.Node.RecordConsent(ctx, grant); err != nil {
		t.Fatal(err)
	}
	api := c.Client(sz)
	query := func() (*node.Consolidated, error) {
		q, err := bank.Query(ent.USCC, cats, credit.PurposeLoanApplication, &grant, time.Now())
		if err != nil {
			return nil, err
		}
		return api.Query(ctx, &q)
	}

	// Queries run in the background for the whole change; every one must
	// succeed, whatever the membership is at the time. The one exception:
	// Dongguan's part, asked between the deciding approval and its node
	// seeing it (the candidate learns of its acceptance by polling the
	// ledger, README "Changing the consortium"), may be unavailable or
	// refused; a query started after Dongguan first answered may not.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ran atomic.Int64
	var bgErr atomic.Value
	var dgAnsweredAt atomic.Int64 // unix nanoseconds; 0 until Dongguan's first ok part
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			started := time.Now().UnixNano()
			res, err := query()
			if err != nil {
				bgErr.CompareAndSwap(nil, err)
				return
			}
			for _, st := range res.Regions {
				if st.Region == "441900" && st.Status != node.StatusOK {
					if at := dgAnsweredAt.Load(); at == 0 || started < at {
						continue
					}
				}
				if st.Status != node.StatusOK && st.Status != node.StatusRetired {
					bgErr.CompareAndSwap(nil, fmt.Errorf("region %s: %s %s", st.Region, st.Status, st.Message))
					return
				}
			}
			ran.Add(1)
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
		if err, _ := bgErr.Load().(error); err != nil {
			t.Errorf("a query during the change: %v", err)
		}
		if ran.Load() == 0 {
			t.Error("no background query completed")
		}
	}()

	// Dongguan joins.
	dg, desc, err := c.AddCandidate(ctx, credit.Region{ID: "441900", Name: "Dongguan", Divisions: []string{"4419"}})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, dg, rec(t, ent.USCC, credit.Judicial, 3))
	if p, err := c.Client(dg).ProposeRegion(ctx, desc); err != nil || p.Needed != 2 {
		t.Fatalf("propose: %+v, %v", p, err)
	}
	if v, err := c.Client(sz).ApproveRegion(ctx, dg.ID); err != nil || !v.Counted || v.Proposal.Status != credit.ProposalOpen {
		t.Fatalf("first approval: %+v, %v", v, err)
	}
	v, err := c.Client(sz).ApproveRegion(ctx, dg.ID)
	if err != nil || v.Counted {
		t.Fatalf("Shenzhen approving twice: %+v, %v (want a refusal to count it)", v, err)
	}
	if _, err := c.Client(zh).ApproveRegion(ctx, dg.ID); err != nil {
		t.Fatalf("second approval: %v", err)
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		res, err := query()
		if err != nil {
			return err
		}
		st, ok := statusOfRegion(res, dg.ID)
		if !ok || st.Status != node.StatusOK || st.RecordCount != 1 || res.RecordCount != 3 {
			return fmt.Errorf("Dongguan's slice not in the answer yet: %+v (%d records)", st, res.RecordCount)
		}
		m, _ := sz.Node.View().Region(dg.ID)
		return st.Receipt.Verify(m.PubKey)
	})
	dgAnsweredAt.Store(time.Now().UnixNano())

	// Zhuhai retires: three votes of four.
	zhPeer := zh.Node.Host().ID()
	if sz.Node.Host().Network().Connectedness(zhPeer) != network.Connected {
		t.Fatalf("Shenzhen not connected to Zhuhai before the retirement")
	}
	for i, r := range []*Region{gz, dg, sz} {
		v, err := c.Client(r).RetireRegion(ctx, zh.ID)
		if err != nil {
			t.Fatalf("retirement vote by %s: %v", r.ID, err)
		}
		if want := credit.ProposalOpen; i < 2 && v.Proposal.Status != want {
			t.Fatalf("retired after %d votes of four: %+v", i+1, v)
		}
		if i == 2 && v.Proposal.Status != credit.ProposalAccepted {
			t.Fatalf("not retired after three votes of four: %+v", v)
		}
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		res, err := query()
		if err != nil {
			return err
		}
		st, ok := statusOfRegion(res, zh.ID)
		if !ok || st.Status != node.StatusRetired || st.Report != nil || st.Message == "" {
			return fmt.Errorf("Zhuhai not reported retired: %+v", st)
		}
		if res.RecordCount != 2 {
			return fmt.Errorf("%d records, want Shenzhen's and Dongguan's 2", res.RecordCount)
		}
		if sz.Node.Host().Network().Connectedness(zhPeer) == network.Connected {
			return fmt.Errorf("Shenzhen still connected to retired Zhuhai")
		}
		return nil
	})
	// The retired region can no longer act on the ledger, and its own node
	// says it is not ready, naming the retirement.
	if _, err := c.Client(zh).ApproveRegion(ctx, dg.ID); err == nil {
		t.Fatal("a retired region's vote was accepted")
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		err := zh.Node.Ready()
		if r := credit.RefusalOf(err); r == nil || r.Code != credit.CodeNotMember || !strings.Contains(r.Msg, "retired") {
			return fmt.Errorf("retired Zhuhai's readiness: %v", err)
		}
		return nil
	})
}
