package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node/memledger"
)

type emptyRecords struct{}

func (emptyRecords) Report(_ context.Context, u credit.USCC, _ []credit.Category) (credit.Report, error) {
	return credit.NewReport(u, nil), nil
}

// fuzzNode is one started region on an in-memory ledger and store.
func fuzzNode(t testing.TB) *Node {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	led := memledger.New(nil)
	cfg := DefaultConfig("440300", "mem")
	cfg.HTTP.Addr = "127.0.0.1:0"
	if err := led.Client("x").Bootstrap(context.Background(), []credit.RegionMember{{
		ID: "440300", MSPID: cfg.Ledger.MSPID, PubKey: key.Public().(ed25519.PublicKey), Status: credit.StatusActive,
	}}, []credit.BankMember{{ID: "bank-a", Region: "440300", PubKey: key.Public().(ed25519.PublicKey), Status: credit.StatusActive}}); err != nil {
		t.Fatal(err)
	}
	router := NewLocalRouter(time.Second)
	n, err := New(cfg, Deps{DB: db, Records: emptyRecords{}, Ledger: led.Client(cfg.Ledger.MSPID), Router: router, Key: key, AdminToken: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	router.Add("440300", n.Answerer())
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	deadline := time.Now().Add(5 * time.Second)
	for n.Ready() != nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return n
}

// FuzzQueryEndpoint feeds arbitrary bodies to the bank API's query
// endpoint: a bank's bytes must never crash the node or earn a 5xx, and
// every refusal is a JSON error with a code.
func FuzzQueryEndpoint(f *testing.F) {
	f.Add([]byte(`{"v":1,"bank":"bank-a","uscc":"91440300MA0000001L","categories":["tax"],"purpose":"loan_application","consent_id":"consent-01","nonce":"nonce-0001","time":"2026-01-01T00:00:00Z","sig":"AAAA"}`))
	f.Add([]byte(`{"v":1,"consent":{"v":1,"categories":null}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Add([]byte(`{"v":1,"bank":"bank-a","extra":1}`))
	n := fuzzNode(f)
	h := n.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/query", bytes.NewReader(body)))
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code != http.StatusOK {
			var e APIError
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" {
				t.Fatalf("error body %q: %v", rec.Body, err)
			}
		}
	})
}
