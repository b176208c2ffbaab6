package consortium

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/transparency-dev/merkle/proof"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/credit/synth"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/audit"
	"github.com/prdcredit/ccnode/store/receipts"
)

// DemoOptions configure RunDemo.
type DemoOptions struct {
	// Dir keeps the regions' folders; empty uses a temporary folder that
	// Close removes.
	Dir string
	// Enterprises per region (default 100, ~183 records each: the demo
	// stays a few seconds long on a busy laptop).
	Enterprises int
	// Queries is the number of consented queries per bank (default 20).
	Queries int
	Seed    uint64
	// Options: Logger, Tune, Mocknet and WrapLedger are honoured.
	Options Options
}

// DemoReport is the account of a demo run.
type DemoReport struct {
	Regions       []DemoRegion        `json:"regions"`
	Records       int                 `json:"records"`
	Queries       int                 `json:"queries_ok"`
	Refusals      []DemoRefusal       `json:"refusals"`
	RefusalCounts map[credit.Code]int `json:"refusals_by_reason"`
	Receipts      uint64              `json:"receipts"`
	Checkpoints   int                 `json:"checkpoints_anchored"`
	LedgerTxs     int                 `json:"ledger_transactions"`
	LatencyMS     DemoLatency         `json:"query_latency_ms"`
	Proof         DemoProof           `json:"inclusion_proof"`
	Elapsed       float64             `json:"elapsed_s"`
	DataDir       string              `json:"data_dir,omitempty"`
	// CAFile is the development CA that issued every bank API's TLS
	// certificate: `ccnode query --ca-file` (in a temporary folder, it
	// is gone once the demo exits).
	CAFile     string          `json:"ca_file"`
	Example    *DemoConsolRows `json:"example_query"`
	Audit      DemoAudit       `json:"audit"`
	Try        []DemoTry       `json:"try,omitempty"`
	Transport  string          `json:"transport"`
	LedgerKind string          `json:"ledger"`
}

// DemoTry is what a user needs to query a kept demo as one of its banks.
type DemoTry struct {
	Bank        credit.BankID `json:"bank"`
	Node        string        `json:"node"`
	CAFile      string        `json:"ca_file"`
	KeyFile     string        `json:"key_file"`
	ConsentFile string        `json:"consent_file"`
}

// DemoAudit is the outcome of auditing the demo's exports offline.
type DemoAudit struct {
	Dir      string   `json:"dir"`
	Exports  []string `json:"exports"`
	Snapshot string   `json:"ledger_snapshot"`
	// SnapshotFrom: "events" (replayed from the ledger's event stream,
	// the only source of every member's key history).
	SnapshotFrom string             `json:"snapshot_from"`
	Consents     string             `json:"consents"`
	Receipts     uint64             `json:"receipts_checked"`
	Findings     int                `json:"findings"`
	ByRule       map[audit.Rule]int `json:"findings_by_rule,omitempty"`
}

// DemoRegion is one region's figures.
type DemoRegion struct {
	ID          credit.RegionID `json:"id"`
	Name        string          `json:"name"`
	Enterprises int             `json:"enterprises"`
	Records     int             `json:"records"`
	LogSize     uint64          `json:"receipt_log_size"`
	Anchored    uint64          `json:"anchored_size"`
	BankAPI     string          `json:"bank_api"`
	AdminAPI    string          `json:"admin_api"`
}

// DemoRefusal is one query that had to be refused.
type DemoRefusal struct {
	Case     string      `json:"case"`
	Want     credit.Code `json:"want"`
	Got      credit.Code `json:"got"`
	HTTP     int         `json:"http_status"`
	Message  string      `json:"message"`
	AsWanted bool        `json:"as_wanted"`
}

// DemoLatency summarises consented query latency through the bank API.
type DemoLatency struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// DemoProof is the inclusion proof the demo fetched and checked.
type DemoProof struct {
	Region    credit.RegionID `json:"region"`
	ReceiptID string          `json:"receipt_id"`
	LeafIndex uint64          `json:"leaf_index"`
	TreeSize  uint64          `json:"tree_size"`
	Hashes    int             `json:"proof_hashes"`
	Verified  bool            `json:"verified"`
	TxID      string          `json:"anchor_tx"`
}

// DemoConsolRows is the per-region shape of one consolidated answer.
type DemoConsolRows struct {
	Bank    credit.BankID   `json:"bank"`
	Subject credit.USCC     `json:"uscc"`
	Rows    []DemoRegionRow `json:"regions"`
}

// DemoRegionRow is one region's row of the example.
type DemoRegionRow struct {
	Region  credit.RegionID `json:"region"`
	Status  string          `json:"status"`
	Records int             `json:"records"`
	Receipt string          `json:"receipt"`
}

// ErrDemoFailed: a demo step did not behave as it must (a refusal with
// the wrong reason, a proof that does not verify).
var ErrDemoFailed = errors.New("demo failed")

// Demo is a running demo consortium.
type Demo struct {
	*Consortium
	Report DemoReport
	tmp    string
}

// Close stops the consortium and removes a temporary folder.
func (d *Demo) Close() error {
	err := d.Consortium.Close()
	if d.tmp != "" {
		err = errors.Join(err, os.RemoveAll(d.tmp))
	}
	return err
}

var demoCats = []credit.Category{credit.Registration, credit.Tax, credit.Penalty, credit.SocialInsurance, credit.Judicial, credit.Utilities}

// RunDemo starts a three-region consortium on generated data, runs
// consented queries through the bank API, runs the queries that must be
// refused, anchors, and fetches and verifies an inclusion proof. The
// consortium keeps running until Close.
func RunDemo(ctx context.Context, o DemoOptions) (*Demo, error) {
	start := time.Now()
	if o.Enterprises <= 0 {
		o.Enterprises = 100
	}
	if o.Queries <= 0 {
		o.Queries = 20
	}
	d := &Demo{}
	so := o.Options
	so.Dir = o.Dir
	if so.Dir == "" {
		tmp, err := os.MkdirTemp("", "ccnode-demo-")
		if err != nil {
			return nil, err
		}
		d.tmp, so.Dir = tmp, tmp
	}
	c, err := Start(ctx, so)
	if err != nil {
		if d.tmp != "" {
			os.RemoveAll(d.tmp)
		}
		return nil, err
	}
	d.Consortium = c
	if err := d.run(ctx, o, start); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// demoRun is one run's state, shared by its phases.
type demoRun struct {
	*Demo
	ctx      context.Context
	o        DemoOptions
	rep      *DemoReport
	subjects map[credit.RegionID][]credit.USCC
	home     *Region // bank A's home
	second   *Region // bank B's home
	bankA    *Bank
	bankB    *Bank
	// consentA and consentB are the banks' consents on their first
	// subject; toRevoke is revoked after the consented queries.
	consentA, consentB, toRevoke credit.ConsentGrant
	proofReceipt                 string        // a receipt of home's, for the inclusion proof
	proofBank                    credit.BankID // the bank whose query it answered
}

var demoScope = []credit.Category{credit.Registration, credit.Tax, credit.Penalty, credit.Judicial}

func (d *Demo) run(ctx context.Context, o DemoOptions, start time.Time) error {
	c := d.Consortium
	r := &demoRun{Demo: d, ctx: ctx, o: o, rep: &d.Report,
		home: c.Regions[0], second: c.Regions[min(1, len(c.Regions)-1)], bankA: c.Banks[0], bankB: c.Banks[len(c.Banks)-1]}
	r.rep.DataDir, r.rep.CAFile = o.Dir, c.CAFile
	r.rep.Transport, r.rep.LedgerKind = "libp2p on 127.0.0.1 (TCP, TLS 1.3, membership gater)", "embedded (network/embedded)"
	if o.Options.Mocknet {
		r.rep.Transport = "libp2p mocknet (in memory)"
	}
	for _, phase := range []func() error{r.loadData, r.grantConsents, r.consentedQueries, r.revoke, r.refusals, r.anchorAndProve, r.figures} {
		if err := phase(); err != nil {
			return err
		}
	}
	if err := d.audit(ctx, o.Dir, []credit.ConsentGrant{r.consentA, r.consentB, r.toRevoke}); err != nil {
		return err
	}
	r.rep.Elapsed = time.Since(start).Seconds()
	return nil
}

// loadData stores each region's enterprises with their synthetic
// department records (credit/synth: ~183 records each, as on the Shenzhen
// platform); the first tenth of them also have a few records in the other
// regions (branches, lawsuits, utilities), which is what makes a
// consolidated report useful.
func (r *demoRun) loadData() error {
	c, o := r.Consortium, r.o
	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	r.subjects = map[credit.RegionID][]credit.USCC{}
	perRegion := map[credit.RegionID][]credit.Record{}
	for _, g := range c.Regions {
		gen, err := synth.New(synth.Config{Region: g.ID, Enterprises: o.Enterprises, Seed: o.Seed})
		if err != nil {
			return fmt.Errorf("region %s: synthetic data: %w", g.ID, err)
		}
		r.subjects[g.ID] = gen.Enterprises()
		for i := range o.Enterprises {
			perRegion[g.ID] = append(perRegion[g.ID], gen.EnterpriseRecords(i)...)
		}
	}
	seq := 0
	for _, g := range c.Regions {
		for _, u := range r.subjects[g.ID][:max(1, o.Enterprises/10)] {
			for _, other := range c.Regions {
				if other.ID == g.ID {
					continue
				}
				for range 2 + rng.IntN(4) {
					seq++
					rec, err := demoRecord(rng, other.ID, u, seq)
					if err != nil {
						return err
					}
					perRegion[other.ID] = append(perRegion[other.ID], rec)
				}
			}
		}
	}
	for _, g := range c.Regions {
		recs := perRegion[g.ID]
		for i := 0; i < len(recs); i += 2000 {
			if _, err := g.Store.Put(r.ctx, recs[i:min(i+2000, len(recs))]); err != nil {
				return fmt.Errorf("region %s: load records: %w", g.ID, err)
			}
		}
		r.rep.Records += len(recs)
		r.rep.Regions = append(r.rep.Regions, DemoRegion{ID: g.ID, Name: g.Name, Enterprises: len(r.subjects[g.ID]), Records: len(recs),
			BankAPI: g.Node.HTTPURL(), AdminAPI: "http://" + g.Node.AdminAddr()})
	}
	return nil
}

// demoRecord is a synthetic record that holder keeps on u.
func demoRecord(rng *rand.Rand, holder credit.RegionID, u credit.USCC, seq int) (credit.Record, error) {
	cat := demoCats[rng.IntN(len(demoCats))]
	rec := credit.Record{Subject: u, Source: "dept-" + string(cat), SourceID: fmt.Sprintf("%s-%d", holder, seq), Category: cat,
		Date:  credit.Date(fmt.Sprintf("20%02d-%02d-%02d", 18+rng.IntN(8), 1+rng.IntN(12), 1+rng.IntN(28))),
		Attrs: []byte(fmt.Sprintf(`{"amount_cny":%d,"note":"synthetic"}`, 1000+rng.IntN(900000)))}
	return rec, rec.Normalize(time.Time{}, 0)
}

// grant has u's enterprise sign a consent for bank and records it at g's
// node through the admin API.
func (r *demoRun) grant(g *Region, u credit.USCC, bank credit.BankID, purpose credit.Purpose) (credit.ConsentGrant, error) {
	ent, err := r.Enterprise(u)
	if err != nil {
		return credit.ConsentGrant{}, err
	}
	doc, err := ent.Grant(bank, g.ID, demoScope, purpose, time.Now(), 365*24*time.Hour)
	if err != nil {
		return doc, err
	}
	res, err := r.Client(g).RecordConsent(r.ctx, doc)
	if err != nil {
		return doc, fmt.Errorf("record consent at %s: %w", g.ID, err)
	}
	return *res.Consent, nil
}

func (r *demoRun) grantConsents() (err error) {
	if r.consentA, err = r.grant(r.home, r.subjects[r.home.ID][0], r.bankA.ID, credit.PurposeLoanApplication); err != nil {
		return err
	}
	if r.consentB, err = r.grant(r.second, r.subjects[r.second.ID][0], r.bankB.ID, credit.PurposeCreditReview); err != nil {
		return err
	}
	if r.toRevoke, err = r.grant(r.home, r.subjects[r.home.ID][1], r.bankA.ID, credit.PurposeLoanApplication); err != nil {
		return err
	}
	if err := r.saveArtifacts(r.o.Dir, []credit.ConsentGrant{r.consentA, r.consentB}); err != nil {
		return fmt.Errorf("write demo artifacts: %w", err)
	}
	return nil
}

// consentedQueries runs each bank's queries through its home node's bank
// API; every region must answer.
func (r *demoRun) consentedQueries() error {
	var lat []float64
	type asker struct {
		bank    *Bank
		home    *Region
		consent credit.ConsentGrant
	}
	for _, a := range []asker{{r.bankA, r.home, r.consentA}, {r.bankB, r.second, r.consentB}} {
		for range r.o.Queries {
			q, err := a.bank.Query(a.consent.Subject, demoScope, a.consent.Purpose, &a.consent, time.Now())
			if err != nil {
				return err
			}
			t0 := time.Now()
			res, err := r.Client(a.home).Query(r.ctx, &q)
			if err != nil {
				return fmt.Errorf("%w: consented query by %s: %w", ErrDemoFailed, a.bank.ID, err)
			}
			lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
			r.rep.Queries++
			for _, st := range res.Regions {
				if st.Status != node.StatusOK {
					return fmt.Errorf("%w: region %s answered %s: %s %s", ErrDemoFailed, st.Region, st.Status, st.Reason, st.Message)
				}
			}
			if r.rep.Example == nil {
				r.example(res)
			}
		}
	}
	slices.Sort(lat)
	r.rep.LatencyMS = DemoLatency{P50: lat[len(lat)/2], P99: lat[min(len(lat)-1, len(lat)*99/100)], Max: lat[len(lat)-1]}
	return nil
}

// example keeps the first consolidated answer's shape for the account.
func (r *demoRun) example(res *node.Consolidated) {
	ex := &DemoConsolRows{Bank: res.Bank, Subject: res.Subject}
	for _, st := range res.Regions {
		ex.Rows = append(ex.Rows, DemoRegionRow{Region: st.Region, Status: st.Status, Records: st.RecordCount, Receipt: st.Receipt.ID})
		if st.Region == r.home.ID {
			r.proofReceipt, r.proofBank = st.Receipt.ID, res.Bank
		}
	}
	r.rep.Example = ex
}

// revoke revokes one consent and waits until every node's view has it.
func (r *demoRun) revoke() error {
	if _, err := r.Client(r.home).RevokeConsent(r.ctx, r.toRevoke.ID); err != nil {
		return err
	}
	for _, g := range r.Consortium.Regions {
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, st, err := g.Node.ConsentStatus(r.ctx, r.toRevoke.ID)
			if err == nil && st == credit.ConsentRevoked {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%w: revocation did not reach %s", ErrDemoFailed, g.ID)
			}
			select {
			case <-r.ctx.Done():
				return r.ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// refusals runs the queries that must be refused, each with its code.
func (r *demoRun) refusals() error {
	home, second, bankA, bankB := r.home, r.second, r.bankA, r.bankB
	subjA := r.consentA.Subject
	ent, err := r.Enterprise(r.subjects[home.ID][2])
	if err != nil {
		return err
	}
	unrecorded, err := ent.Grant(bankA.ID, home.ID, demoScope, credit.PurposeLoanApplication, time.Now(), time.Hour)
	if err != nil {
		return err
	}
	// The attack of a region's admin: a consent for another region's
	// enterprise, signed with a key its own authority certified (which
	// does not vouch for that region's divisions).
	forger, err := home.Authority.Certify(r.subjects[second.ID][1], time.Now())
	if err != nil {
		return err
	}
	forged, err := forger.Grant(bankA.ID, home.ID, demoScope, credit.PurposeLoanApplication, time.Now(), time.Hour)
	if err != nil {
		return err
	}
	cases := []struct {
		name string
		want credit.Code
		home *Region
		q    func() (credit.Query, error)
		// record, when set, is offered for recording instead of a query.
		record *credit.ConsentGrant
	}{
		{name: "forged consent (recording)", want: credit.CodeConsentUncertified, home: home, record: &forged},
		{"no consent on the ledger", credit.CodeConsentNotFound, home, func() (credit.Query, error) {
			return bankA.Query(unrecorded.Subject, demoScope, credit.PurposeLoanApplication, &unrecorded, time.Now())
		}, nil},
		{"revoked consent", credit.CodeConsentRevoked, home, func() (credit.Query, error) {
			return bankA.Query(r.toRevoke.Subject, demoScope, credit.PurposeLoanApplication, &r.toRevoke, time.Now())
		}, nil},
		{"category outside the consent", credit.CodeCategoryOutOfScope, home, func() (credit.Query, error) {
			return bankA.Query(subjA, []credit.Category{credit.Tax, credit.SocialInsurance}, credit.PurposeLoanApplication, &r.consentA, time.Now())
		}, nil},
		{"another bank's consent", credit.CodeConsentOtherBank, second, func() (credit.Query, error) {
			return bankB.Query(subjA, demoScope, credit.PurposeLoanApplication, &r.consentA, time.Now())
		}, nil},
		{"forged bank signature", credit.CodeBadSignature, home, func() (credit.Query, error) {
			q, err := bankA.Query(subjA, demoScope, credit.PurposeLoanApplication, &r.consentA, time.Now())
			q.Sig[7] ^= 0x40
			return q, err
		}, nil},
	}
	r.rep.RefusalCounts = map[credit.Code]int{}
	var wrong []string
	for _, tc := range cases {
		var err error
		if tc.record != nil {
			_, err = r.Client(tc.home).RecordConsent(r.ctx, *tc.record)
		} else {
			var q credit.Query
			if q, err = tc.q(); err != nil {
				return err
			}
			_, err = r.Client(tc.home).Query(r.ctx, &q)
		}
		f := DemoRefusal{Case: tc.name, Want: tc.want}
		var se *node.StatusError
		if errors.As(err, &se) {
			f.Got, f.HTTP, f.Message = se.Reason(), se.Status, se.Message
		} else if err == nil {
			f.Message = "answered"
		} else {
			return err
		}
		f.AsWanted = f.Got == tc.want
		if !f.AsWanted {
			wrong = append(wrong, fmt.Sprintf("%s: got %q, want %q", tc.name, f.Got, tc.want))
		}
		r.rep.RefusalCounts[f.Got]++
		r.rep.Refusals = append(r.rep.Refusals, f)
	}
	if len(wrong) > 0 {
		return fmt.Errorf("%w: refusals with the wrong code: %v", ErrDemoFailed, wrong)
	}
	return nil
}

// anchorAndProve anchors every region, then fetches and checks one
// inclusion proof through the bank API.
func (r *demoRun) anchorAndProve() error {
	for _, g := range r.Consortium.Regions {
		if err := g.Node.AnchorNow(r.ctx); err != nil {
			return fmt.Errorf("anchor %s: %w", g.ID, err)
		}
	}
	// The bank reads its receipt with a read signed by its own key.
	b := r.Bank(r.proofBank)
	if b == nil {
		return fmt.Errorf("%w: no bank %s for the inclusion proof", ErrDemoFailed, r.proofBank)
	}
	rp, err := r.Client(r.home).Receipt(r.ctx, b.ID, b.Key, r.proofReceipt)
	if err != nil {
		return err
	}
	if err := r.verifyProof(r.ctx, r.home, rp); err != nil {
		return err
	}
	r.rep.Proof = DemoProof{Region: r.home.ID, ReceiptID: rp.Receipt.ID, LeafIndex: rp.LeafIndex, TreeSize: rp.TreeSize,
		Hashes: len(rp.Proof), Verified: true, TxID: rp.Checkpoint.TxID}
	return nil
}

// figures counts receipts, anchored sizes and ledger transactions.
func (r *demoRun) figures() error {
	for i, g := range r.Consortium.Regions {
		r.rep.Regions[i].LogSize = g.Node.Log().Size()
		r.rep.Receipts += r.rep.Regions[i].LogSize
		if ac, ok, _ := g.Node.LatestCheckpoint(); ok {
			r.rep.Regions[i].Anchored = ac.Size
		}
		h, err := g.Ledger.CheckpointHistory(r.ctx, g.ID)
		if err != nil {
			return err
		}
		r.rep.Checkpoints += len(h)
	}
	r.rep.LedgerTxs = r.Consortium.LedgerTransactions()
	return nil
}

// verifyProof checks a fetched proof as a bank would: the checkpoint is
// the one on the ledger, signed by the region, and the receipt's leaf
// hashes up to its root.
func (d *Demo) verifyProof(ctx context.Context, r *Region, rp *node.ReceiptProof) error {
	if rp.Checkpoint == nil {
		return fmt.Errorf("%w: receipt %s not anchored after anchoring", ErrDemoFailed, rp.Receipt.ID)
	}
	hist, err := r.Ledger.CheckpointHistory(ctx, r.ID)
	if err != nil {
		return err
	}
	found := false
	for _, h := range hist {
		if h.Size == rp.TreeSize && bytes.Equal(h.Root, rp.Root) {
			found = true
		}
	}
	m, err := r.Ledger.Region(ctx, r.ID)
	if err != nil {
		return err
	}
	if !found || rp.Checkpoint.Verify(m.PubKey) != nil {
		return fmt.Errorf("%w: checkpoint of the proof is not the region's anchored one", ErrDemoFailed)
	}
	if err := rp.Receipt.Verify(ed25519.PublicKey(m.PubKey)); err != nil {
		return fmt.Errorf("%w: %w", ErrDemoFailed, err)
	}
	leaf, err := rp.Receipt.LeafBytes()
	if err != nil {
		return err
	}
	if err := proof.VerifyInclusion(receipts.Hasher, rp.LeafIndex, rp.TreeSize, receipts.Hasher.HashLeaf(leaf), rp.Proof, rp.Root); err != nil {
		return fmt.Errorf("%w: inclusion proof: %w", ErrDemoFailed, err)
	}
	return nil
}

// audit exports every region's answered and received receipts and a
// ledger snapshot under dir/audit, and runs the offline auditor on them,
// as `ccnode audit` would.
func (d *Demo) audit(ctx context.Context, dir string, consents []credit.ConsentGrant) error {
	if dir == "" {
		dir = d.tmp
	}
	ad := filepath.Join(dir, "audit")
	if err := os.MkdirAll(ad, 0o700); err != nil {
		return err
	}
	a := &d.Report.Audit
	a.Dir = ad
	now := time.Now()
	var srcs []audit.Source
	for _, r := range d.Regions {
		for _, kind := range []credit.ExportKind{credit.ExportAnswered, credit.ExportReceived} {
			p := filepath.Join(ad, fmt.Sprintf("%s-%s.jsonl", r.ID, kind))
			f, err := node.CreatePrivate(p)
			if err != nil {
				return err
			}
			if kind == credit.ExportAnswered {
				if err = r.Node.Settle(ctx); err == nil {
					_, err = node.ExportAnswered(f, r.ID, r.Node.Log(), 0, now)
				}
			} else {
				_, err = node.ExportReceived(f, r.ID, r.Node.Requested(), now)
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			a.Exports = append(a.Exports, p)
			srcs = append(srcs, audit.FileSource(p))
		}
	}
	// The snapshot replays the ledger's events: its current state alone
	// would date every member's key from its latest change (a restart
	// republishes addresses) and reject all it signed before.
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	snap, err := audit.TakeSnapshot(sctx, d.Regions[0].Ledger, 100*time.Millisecond, now)
	cancel()
	if err != nil {
		return fmt.Errorf("audit: ledger snapshot: %w", err)
	}
	a.SnapshotFrom = "events"
	a.Snapshot = filepath.Join(ad, "ledger-snapshot.json")
	f, err := node.CreatePrivate(a.Snapshot)
	if err != nil {
		return err
	}
	err = snap.Write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	a.Consents = filepath.Join(ad, "consents.json")
	cb, err := json.MarshalIndent(consents, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(a.Consents, cb, 0o600); err != nil {
		return err
	}
	ar, err := audit.Run(ctx, audit.Inputs{Exports: srcs, Consents: consents}, snap, audit.Options{Now: now})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	for _, rs := range ar.Regions {
		a.Receipts += rs.Receipts
	}
	a.Findings, a.ByRule = ar.Total, ar.ByRule
	return nil
}

// saveArtifacts writes the consent documents under dir (the banks' keys
// are in dir/banks already) so that a user can try `ccnode query` against
// a kept demo.
func (d *Demo) saveArtifacts(dir string, consents []credit.ConsentGrant) error {
	if dir == "" {
		return nil
	}
	for _, g := range consents {
		var home string
		for _, b := range d.Banks {
			if b.ID == g.Grantee {
				home = d.Region(b.Region).Node.HTTPURL()
			}
		}
		d.Report.Try = append(d.Report.Try, DemoTry{Bank: g.Grantee, Node: home, CAFile: d.CAFile,
			KeyFile: filepath.Join(dir, "banks", string(g.Grantee)+".key"), ConsentFile: filepath.Join(dir, "consents", g.ID+".json")})
		b, err := json.MarshalIndent(g, "", "  ")
		if err != nil {
			return err
		}
		p := filepath.Join(dir, "consents", g.ID+".json")
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}
