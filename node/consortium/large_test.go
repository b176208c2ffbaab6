package consortium

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// No size cliff: a region's slice of 100,000 records reaches the bank
// through the bank API, streamed over p2p in chunks under one receipt
// whose digest covers the whole slice; the home region's own slice of
// more than one chunk is read twice from one snapshot and served too.
func TestHundredThousandRecordSlice(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 120,000 records")
	}
	ctx := context.Background()
	c, err := Start(ctx, Options{Logger: testkit.LoggerAt(t, slog.LevelWarn), Mocknet: true, Tune: func(cfg *node.Config) {
		fastTune(cfg)
		cfg.Query.RegionTimeout = 2 * time.Minute // -race on a loaded machine
		cfg.HTTP.WriteTimeout = 5 * time.Minute
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sz, gz := c.Region("440300"), c.Region("440100")
	bank := c.Banks[0]
	ent := certified(t, c, testkit.USCC(t, "440300", 42))
	cats := []credit.Category{credit.Tax, credit.Penalty, credit.Judicial}
	load := func(r *Region, n int) {
		batch := make([]credit.Record, 0, 5000)
		for i := range n {
			rc := credit.Record{Subject: ent.USCC, Source: "dept-" + string(r.ID), SourceID: fmt.Sprintf("%s-%d", r.ID, i),
				Category: cats[i%len(cats)], Date: credit.Date(fmt.Sprintf("20%02d-%02d-%02d", 10+i%15, 1+i%12, 1+i%28)),
				Attrs: []byte(fmt.Sprintf(`{"amount_cny":%d,"note":"a record of ordinary size"}`, i))}
			if err := rc.Normalize(time.Time{}, 0); err != nil {
				t.Fatal(err)
			}
			if batch = append(batch, rc); len(batch) == cap(batch) || i == n-1 {
				mustPut(t, r, batch...)
				batch = batch[:0]
			}
		}
	}
	load(gz, 100_000)
	load(sz, 20_000)
	g, _ := ent.Grant(bank.ID, sz.ID, cats, credit.PurposeLoanApplication, time.Now(), time.Hour)
	if g, _, err = sz.Node.RecordConsent(ctx, g); err != nil {
		t.Fatal(err)
	}
	q, _ := bank.Query(ent.USCC, cats, credit.PurposeLoanApplication, &g, time.Now())
	cl := c.Client(sz)
	res, err := cl.Query(ctx, &q)
	if err != nil {
		t.Fatal(err)
	}
	want := map[credit.RegionID]int{sz.ID: 20_000, gz.ID: 100_000, "440400": 0}
	for _, st := range res.Regions {
		if st.Status != node.StatusOK || st.RecordCount != want[st.Region] || st.Report == nil || st.Report.Count() != want[st.Region] {
			t.Fatalf("region %s: %s %s %s, %d records, want %d", st.Region, st.Status, st.Reason, st.Message, st.RecordCount, want[st.Region])
		}
		// The bank checks each slice against its receipt, as the home
		// node did.
		d := st.Report.Digest()
		if string(d[:]) != string(st.Receipt.ReportDigest) {
			t.Fatalf("region %s: the slice the bank got does not match its receipt", st.Region)
		}
	}
	if res.RecordCount != 120_000 {
		t.Fatalf("%d records in all, want 120,000", res.RecordCount)
	}
}
