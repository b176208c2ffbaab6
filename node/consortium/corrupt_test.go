package consortium

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/store"
)

// TestCorruptedStoreIsNeverAnswered: a region whose store has one byte
// flipped in a table block (an imported store's amount) starts, says on
// /readyz that its store fails its checksums, refuses the bank's query
// for its region (no receipt is signed) while the other regions answer,
// and its admin API's verification names the table.
func TestCorruptedStoreIsNeverAnswered(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	u := testkit.USCC(t, "440300", 1)
	amount := `"amount":16501.07`
	// As ccnode import leaves it: uncompressed tables, closed.
	db, err := store.Open(ctx, store.Options{Dir: filepath.Join(root, "440300", "db"), NoCompression: true, Logger: testkit.LoggerAt(t, slog.LevelWarn)})
	if err != nil {
		t.Fatal(err)
	}
	recs := []credit.Record{rec(t, u, credit.Tax, 1), rec(t, u, credit.Penalty, 2)}
	recs[0].Attrs = []byte(`{` + amount + `}`)
	for i := 3; i < 200; i++ {
		recs = append(recs, rec(t, testkit.USCC(t, "440300", 100+i), credit.Tax, i))
	}
	if _, err := db.Put(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	table := testkit.FlipInTable(t, filepath.Join(root, "440300", "db"), []byte(amount))

	c, err := Start(ctx, Options{Dir: root, Logger: testkit.LoggerAt(t, slog.LevelError+1), Tune: fastTune, Mocknet: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sz, gz := c.Region("440300"), c.Region("440100")
	mustPut(t, gz, rec(t, u, credit.Judicial, 3))

	api := newAPIClient(t, c.HTTPClient(), sz.Node.HTTPURL())
	st, body := api.do("GET", "/readyz", "", nil)
	if st != http.StatusServiceUnavailable || !strings.Contains(string(body), "checksum") || !strings.Contains(string(body), filepath.Base(table)) {
		t.Fatalf("readyz of a node whose store fails its checksums: %d %s", st, body)
	}
	_, mb := api.do("GET", "/metrics", "", nil)
	if metrics := string(mb); !strings.Contains(metrics, "ccnode_store_checksum_failures_total 1") {
		t.Fatalf("metrics do not count the checksum failure:\n%s", grepLines(metrics, "ccnode_store"))
	}

	ent := certified(t, c, u)
	bank := c.Banks[0]
	cats := []credit.Category{credit.Tax, credit.Penalty, credit.Judicial}
	grant, err := ent.Grant(bank.ID, sz.ID, cats, credit.PurposeLoanApplication, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if grant, _, err = sz.Node.RecordConsent(ctx, grant); err != nil {
		t.Fatal(err)
	}
	q, _ := bank.Query(ent.USCC, cats, credit.PurposeLoanApplication, &grant, time.Now())
	res, err := sz.Node.Query(ctx, &q)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	for _, st := range res.Regions {
		switch {
		case st.Region == sz.ID && (st.Status == node.StatusOK || st.Receipt != nil || !strings.Contains(st.Message, "checksum")):
			t.Fatalf("region %s with a corrupted store: %s %q, receipt %v; want a refusal naming the checksum", st.Region, st.Status, st.Message, st.Receipt)
		case st.Region == gz.ID && st.Status != node.StatusOK:
			t.Fatalf("region %s: %s %s", st.Region, st.Status, st.Message)
		}
	}

	admin := newAPIClient(t, http.DefaultClient, "http://"+sz.Node.AdminAddr())
	st, body = admin.do("POST", "/v1/verify", c.OperatorToken, nil)
	if st != http.StatusOK || !strings.Contains(string(body), `"ok":false`) || !strings.Contains(string(body), filepath.Base(table)) {
		t.Fatalf("POST /v1/verify on the corrupted store: %d %s", st, body)
	}
	admin = newAPIClient(t, http.DefaultClient, "http://"+gz.Node.AdminAddr())
	if st, body = admin.do("POST", "/v1/verify", c.OperatorToken, nil); st != http.StatusOK || !strings.Contains(string(body), `"ok":true`) {
		t.Fatalf("POST /v1/verify on a sound store: %d %s", st, body)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
