package consortium

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/network/ledgerfault"
	"github.com/prdcredit/ccnode/node/bankclient"
)

// bankScenario is a three-region consortium in which Shenzhen holds
// records on an enterprise that consented to a bank, and Zhuhai's ledger
// view is stale, so it refuses (ledger_view_stale) while the others answer.
type bankScenario struct {
	c       *Consortium
	sz      *Region
	bank    *Bank
	consent *credit.ConsentGrant
	trust   bankclient.Trust
	client  *bankclient.Client
}

func startBankScenario(t *testing.T) *bankScenario {
	t.Helper()
	ctx := context.Background()
	zhFaults, wrapped := ledgerfault.New(), 0
	c, err := Start(ctx, Options{Logger: testkit.LoggerAt(t, slog.LevelError), Mocknet: true, Tune: fastTune,
		WrapLedger: func(l network.Ledger) network.Ledger {
			// Regions open in PRD3 order: Shenzhen, Guangzhou, Zhuhai.
			if wrapped++; wrapped == 3 {
				return zhFaults.Wrap(l)
			}
			return l
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := &bankScenario{c: c, sz: c.Region("440300"), bank: c.Banks[0]}
	u := testkit.USCC(t, "440300", 7)
	mustPut(t, s.sz,
		credit.Record{Subject: u, Source: "深圳市税务局", SourceID: "tax-2026-001", Category: credit.Tax, Date: "2026-03-15",
			Attrs: []byte(`{"amount_cny":16501.07,"credit_grade":"A","period":"2025"}`)},
		credit.Record{Subject: u, Source: "深圳市税务局", SourceID: "tax-2026-002", Category: credit.Tax, Date: "2026-06-30",
			Attrs: []byte(`{"amount_cny":1234567.5,"credit_grade":"A","period":"2026Q2"}`)},
		credit.Record{Subject: u, Source: "深圳市市场监督管理局", SourceID: "pen-0042", Category: credit.Penalty, Date: "2025-11-02",
			Attrs: []byte(`{"amount_cny":20000,"authority":"深圳市市场监督管理局","violation":"虚假宣传"}`)},
	)
	ent := certified(t, c, u)
	g, err := ent.Grant(s.bank.ID, s.sz.ID, []credit.Category{credit.Tax, credit.Penalty}, credit.PurposeLoanApplication, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cr, err := c.Client(s.sz).RecordConsent(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	s.consent = cr.Consent
	s.trust = bankclient.Trust{Regions: map[credit.RegionID]ed25519.PublicKey{}}
	for _, r := range c.Regions {
		s.trust.Regions[r.ID] = r.Key.Public().(ed25519.PublicKey)
	}
	zh := c.Region("440400")
	zhFaults.SetDown(true)
	poll(t, "Zhuhai's ledger view to go stale", func() bool { return zh.Node.Ready() != nil })
	s.client = bankclient.New(s.sz.Node.HTTPURL(), bankclient.WithHTTPClient(c.HTTPClient()),
		bankclient.WithBank(s.bank.ID, s.bank.Key), bankclient.WithTrust(s.trust))
	return s
}

// TestBankClientAgainstLiveNode: the bank client builds and signs a
// query the node accepts, verifies the answer (receipts, acks, report
// digests) and a receipt's inclusion proof before and after anchoring
// with the regions' keys, refuses tampered answers and proofs, and
// returns a refusal as *bankclient.Error with the code from the closed
// list.
func TestBankClientAgainstLiveNode(t *testing.T) {
	ctx := context.Background()
	s := startBankScenario(t)
	q, res, err := s.client.Query(ctx, bankclient.QueryRequest{Consent: s.consent})
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	if res.RecordCount != 3 {
		t.Fatalf("record_count %d, want 3", res.RecordCount)
	}
	var szReceipt string
	statuses := map[credit.RegionID]bankclient.RegionStatus{}
	for _, st := range res.Regions {
		statuses[st.Region] = st
		if st.Region == s.sz.ID {
			szReceipt = st.Receipt.ID
		}
	}
	if st := statuses["440400"]; st.Status != bankclient.StatusUnavailable || st.Reason != credit.CodeLedgerViewStale {
		t.Fatalf("Zhuhai: %+v, want unavailable with ledger_view_stale", st)
	}
	if st := statuses["440100"]; st.Status != bankclient.StatusOK || st.Receipt == nil {
		t.Fatalf("Guangzhou: %+v, want an answer with its receipt", st)
	}

	// A changed record, a receipt under another region's key, or another
	// query's answer does not verify.
	tampered := *res
	tampered.Regions = append([]bankclient.RegionStatus(nil), res.Regions...)
	for i := range tampered.Regions {
		if tampered.Regions[i].Region == s.sz.ID {
			rep := *tampered.Regions[i].Report
			rep.Sections = append([]credit.Section(nil), rep.Sections...)
			recs := append([]credit.Record(nil), rep.Sections[0].Records...)
			recs[0].Attrs = []byte(`{"amount_cny":1.00}`)
			rep.Sections[0].Records = recs
			tampered.Regions[i].Report = &rep
		}
	}
	if err := s.trust.VerifyAnswer(q, &tampered); !errors.Is(err, bankclient.ErrVerify) {
		t.Fatalf("a changed record verified: %v", err)
	}
	var ve *bankclient.VerifyError
	if err := s.trust.VerifyAnswer(q, &tampered); !errors.As(err, &ve) || ve.Region != s.sz.ID {
		t.Fatalf("the failure does not name Shenzhen: %v", err)
	}
	swapped := bankclient.Trust{Regions: map[credit.RegionID]ed25519.PublicKey{
		"440300": s.trust.Regions["440100"], "440100": s.trust.Regions["440300"], "440400": s.trust.Regions["440400"]}}
	if err := swapped.VerifyAnswer(q, res); !errors.Is(err, bankclient.ErrVerify) {
		t.Fatalf("receipts verified under swapped region keys: %v", err)
	}
	other, err := s.client.NewQuery(bankclient.QueryRequest{Consent: s.consent})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.trust.VerifyAnswer(other, res); !errors.Is(err, bankclient.ErrVerify) {
		t.Fatalf("an answer verified as another query's: %v", err)
	}

	// The same query again is a replay: a typed refusal with its code.
	_, err = s.client.Send(ctx, q)
	var be *bankclient.Error
	if !errors.As(err, &be) || be.Status != http.StatusUnauthorized || be.Code != credit.CodeReplayedNonce || be.Retryable() {
		t.Fatalf("replay: %v, want HTTP 401 replayed_nonce", err)
	}
	if !errors.Is(err, &credit.Refusal{Code: credit.CodeReplayedNonce}) {
		t.Fatalf("errors.Is does not match the refusal code: %v", err)
	}

	// The receipt and its inclusion proof, against the log's head and then
	// against the anchored checkpoint; verified inside Receipt (WithTrust).
	rp, err := s.client.Receipt(ctx, szReceipt)
	if err != nil {
		t.Fatalf("receipt before anchoring: %v", err)
	}
	if rp.Checkpoint != nil {
		t.Fatal("a checkpoint before anchoring")
	}
	if err := s.sz.Node.AnchorNow(ctx); err != nil {
		t.Fatal(err)
	}
	rp, err = s.client.Receipt(ctx, szReceipt)
	if err != nil {
		t.Fatalf("receipt after anchoring: %v", err)
	}
	if rp.Checkpoint == nil {
		t.Fatal("no checkpoint after anchoring")
	}
	bad := *rp
	bad.Root = append([]byte(nil), rp.Root...)
	bad.Root[0] ^= 1
	if err := s.trust.VerifyProof(&bad); !errors.Is(err, bankclient.ErrVerify) {
		t.Fatalf("a proof to another root verified: %v", err)
	}
	bad = *rp
	bad.LeafIndex++
	bad.TreeSize++
	if err := s.trust.VerifyProof(&bad); !errors.Is(err, bankclient.ErrVerify) {
		t.Fatalf("a proof of another leaf index verified: %v", err)
	}
	// Another bank's signed read of this receipt: not found, typed.
	stranger := bankclient.New(s.sz.Node.HTTPURL(), bankclient.WithHTTPClient(s.c.HTTPClient()), bankclient.WithBank(s.c.Banks[1].ID, s.c.Banks[1].Key))
	if _, err := stranger.Receipt(ctx, szReceipt); !errors.As(err, &be) || be.Code != credit.CodeNotFound {
		t.Fatalf("another bank's read: %v", err)
	}
}

// TestBankClientTLSFromCAFile: TLSConfig with the consortium's CA file
// reaches the node's TLS bank API; without it the system roots refuse the
// development CA.
func TestBankClientTLSFromCAFile(t *testing.T) {
	ctx := context.Background()
	c, err := Start(ctx, Options{Logger: testkit.LoggerAt(t, slog.LevelError), Mocknet: true, Tune: fastTune})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	url := c.Region("440300").Node.HTTPURL()
	tc, err := bankclient.TLSConfig(c.CAFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cl := bankclient.New(url, bankclient.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: tc}}))
	_, err = cl.ConsentStatus(ctx, "consent-probe-1")
	var be *bankclient.Error
	if !errors.As(err, &be) || be.Code != credit.CodeNotFound {
		t.Fatalf("over TLS with the CA file: %v, want a 404 not_found answer", err)
	}
	if _, err := bankclient.New(url).ConsentStatus(ctx, "consent-probe-1"); err == nil || errors.As(err, &be) {
		t.Fatalf("without the CA file: %v, want a TLS failure", err)
	}
}
