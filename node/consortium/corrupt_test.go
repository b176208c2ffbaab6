package consortium

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
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

	// The verification runs in the background once the node serves.
	api := newAPIClient(t, c.HTTPClient(), sz.Node.HTTPURL())
	var st int
	var body []byte
	testkit.Eventually(t, 30*time.Second, func() error {
		st, body = api.do("GET", "/readyz", "", nil)
		if st != http.StatusServiceUnavailable || !strings.Contains(string(body), "checksum") || !strings.Contains(string(body), filepath.Base(table)) {
			return fmt.Errorf("readyz of a node whose store fails its checksums: %d %s", st, body)
		}
		return nil
	})
	_, mb := api.do("GET", "/metrics", "", nil)
	if metrics := string(mb); !strings.Contains(metrics, "ccnode_store_checksum_failures_total 1") || !strings.Contains(metrics, "ccnode_store_verified 0") {
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

// TestBlockCorruptedWhileServing: a node that started on a sound store
// (its background verification done) has one byte of a table block
// flipped under it, in the middle of an enterprise's records. Badger's
// scan of that enterprise stops at the block without an error, so the
// old node answered with the records before it and signed a receipt over
// them; the node must refuse the query naming the checksum, sign
// nothing, say why on /readyz and count it.
func TestBlockCorruptedWhileServing(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	u := testkit.USCC(t, "440300", 1)
	amount := `"amount":16501.07`
	dbDir := filepath.Join(root, "440300", "db")
	db, err := store.Open(ctx, store.Options{Dir: dbDir, NoCompression: true, Logger: testkit.LoggerAt(t, slog.LevelWarn)})
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 200)
	var recs []credit.Record
	for i := 1; i <= 300; i++ {
		r := rec(t, u, credit.Tax, i)
		r.SourceID = fmt.Sprintf("t%03d", i)
		r.Attrs = []byte(fmt.Sprintf(`{"amount":%d,"note":%q}`, 1000+i, pad))
		if i == 200 {
			r.Attrs = []byte(`{` + amount + `,"note":"` + pad + `"}`)
		}
		recs = append(recs, r)
	}
	if _, err := db.Put(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	c, err := Start(ctx, Options{Dir: root, Logger: testkit.LoggerAt(t, slog.LevelError+1), Tune: fastTune, Mocknet: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sz := c.Region("440300")
	api := newAPIClient(t, c.HTTPClient(), sz.Node.HTTPURL())
	testkit.Eventually(t, 30*time.Second, func() error {
		if _, mb := api.do("GET", "/metrics", "", nil); !strings.Contains(string(mb), "ccnode_store_verified 1") {
			return fmt.Errorf("background verification not done:\n%s", grepLines(string(mb), "ccnode_store"))
		}
		return nil
	})
	query := ownSliceAsker(t, c, sz, u, []credit.Category{credit.Tax})
	if st := query(); st.Status != node.StatusOK || st.Receipt == nil || st.Receipt.RecordCount != 300 {
		t.Fatalf("query of the sound store: %s %q, receipt %+v", st.Status, st.Message, st.Receipt)
	}

	table := flipLive(t, dbDir, []byte(amount))
	st := query()
	if st.Status == node.StatusOK || st.Receipt != nil || !strings.Contains(st.Message, "checksum") {
		count := -1
		if st.Receipt != nil {
			count = int(st.Receipt.RecordCount)
		}
		t.Fatalf("query after a block of %s failed its checksum: %s %q, receipt over %d records; want a refusal naming the checksum", table, st.Status, st.Message, count)
	}
	rs, body := api.do("GET", "/readyz", "", nil)
	if rs != http.StatusServiceUnavailable || !strings.Contains(string(body), filepath.Base(table)) {
		t.Fatalf("readyz after the failed read: %d %s", rs, body)
	}
	if _, mb := api.do("GET", "/metrics", "", nil); !strings.Contains(string(mb), "ccnode_store_checksum_failures_total 1") {
		t.Fatalf("metrics do not count the checksum failure:\n%s", grepLines(string(mb), "ccnode_store"))
	}
}

// flipLive changes one byte after needle's first occurrence in a table
// file of dir, in place (a running store maps the file: rewriting it
// whole would truncate the mapping under it).
func flipLive(t *testing.T, dir string, needle []byte) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(b, needle)
		if i < 0 {
			continue
		}
		f, err := os.OpenFile(name, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt([]byte{b[i+len(needle)-1] ^ 0x0f}, int64(i+len(needle)-1)); err != nil {
			t.Fatal(err)
		}
		return name
	}
	t.Fatalf("no table file in %s holds %q", dir, needle)
	return ""
}
