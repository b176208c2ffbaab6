package consortium

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network/ledgerfault"
	"github.com/prdcredit/ccnode/node"
)

// BenchmarkQuery measures consented bank queries through the bank API of
// a three-region consortium on disk, each answer's three receipts logged
// durably, under three designs:
//
//   - anchor=off: receipts logged, never anchored (the floor);
//   - anchor=interval: this node's design, a checkpoint every 100 ms
//     (50x the default rate, to make any interference visible);
//   - anchor=per-receipt: what a user would otherwise build, one ledger
//     transaction per receipt submitted before answering.
//
// The ledger is the embedded one with a modelled commit delay of 260 ms
// (the Fabric sequential submit measured in shared/FABRIC.md) on every
// write (network/ledgerfault).
// It reports p50/p99 latency, queries/s and ledger transactions per
// receipt.
func BenchmarkQuery(b *testing.B) {
	for _, design := range []string{"off", "interval", "per-receipt"} {
		for _, inflight := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("anchor=%s/inflight=%d", design, inflight), func(b *testing.B) {
				benchQuery(b, design, inflight)
			})
		}
	}
}

func benchQuery(b *testing.B, design string, inflight int) {
	ctx := context.Background()
	led := ledgerfault.New()
	c, err := Start(ctx, Options{Dir: b.TempDir(), WrapLedger: led.Wrap, Tune: func(cfg *node.Config) {
		switch design {
		case "off":
			cfg.Anchor.Mode = node.AnchorOff
		case "interval":
			cfg.Anchor.Interval = 100 * time.Millisecond
		case "per-receipt":
			cfg.Anchor.Mode = node.AnchorPerReceipt
			cfg.Query.RegionTimeout = time.Minute
		}
		cfg.Query.Window = time.Hour
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	sz := c.Region("440300")
	bank := c.Banks[0]
	ent := certified(b, c, testkit.USCC(b, "440300", 1))
	var recs []credit.Record
	for i := range 60 {
		recs = append(recs, rec(b, ent.USCC, []credit.Category{credit.Tax, credit.Penalty, credit.Judicial}[i%3], i))
	}
	for _, r := range c.Regions {
		mustPut(b, r, recs[:20]...)
		recs = recs[20:]
	}
	cats := []credit.Category{credit.Tax, credit.Penalty, credit.Judicial}
	g, _ := ent.Grant(bank.ID, sz.ID, cats, credit.PurposeCreditReview, time.Now(), time.Hour)
	if g, _, err = sz.Node.RecordConsent(ctx, g); err != nil {
		b.Fatal(err)
	}
	led.SetCommitDelay(260 * time.Millisecond)
	cl := c.Client(sz)
	qs := make([]credit.Query, b.N)
	for i := range qs {
		qs[i], _ = bank.Query(ent.USCC, cats, credit.PurposeCreditReview, &g, time.Now())
	}
	txBefore := c.LedgerTransactions()
	lat := make([]time.Duration, b.N)
	next := make(chan int)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				if _, err := cl.Query(ctx, &qs[i]); err != nil {
					b.Error(err)
					continue
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	for i := range b.N {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "queries/s")
	if design == "interval" {
		for _, r := range c.Regions {
			if err := r.Node.AnchorNow(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(c.LedgerTransactions()-txBefore)/float64(3*b.N), "ledger-tx/receipt")
}
