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
	"github.com/prdcredit/ccnode/network"
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
	// InProcess routes between regions by in-process calls instead of
	// libp2p on 127.0.0.1.
	InProcess bool
	Options   Options // Logger, Tune and Ledger are honoured
}

// DemoReport is the account of a demo run.
type DemoReport struct {
	Regions       []DemoRegion    `json:"regions"`
	Records       int             `json:"records"`
	Queries       int             `json:"queries_ok"`
	Refusals      []DemoRefusal   `json:"refusals"`
	RefusalCounts map[Reason]int  `json:"refusals_by_reason"`
	Receipts      uint64          `json:"receipts"`
	Checkpoints   int             `json:"checkpoints_anchored"`
	LedgerTxs     int             `json:"ledger_transactions"`
	LatencyMS     DemoLatency     `json:"query_latency_ms"`
	Proof         DemoProof       `json:"inclusion_proof"`
	Elapsed       float64         `json:"elapsed_s"`
	DataDir       string          `json:"data_dir,omitempty"`
	Example       *DemoConsolRows `json:"example_query"`
	Audit         DemoAudit       `json:"audit"`
	Try           []DemoTry       `json:"try,omitempty"`
	Transport     string          `json:"transport"`
	LedgerKind    string          `json:"ledger"`
}

// DemoTry is what a user needs to query a kept demo as one of its banks.
type DemoTry struct {
	Bank        credit.BankID `json:"bank"`
	Node        string        `json:"node"`
	KeyFile     string        `json:"key_file"`
	ConsentFile string        `json:"consent_file"`
}

// DemoAudit is the outcome of auditing the demo's exports offline.
type DemoAudit struct {
	Dir      string   `json:"dir"`
	Exports  []string `json:"exports"`
	Snapshot string   `json:"ledger_snapshot"`
	// SnapshotFrom: "events" (replayed from the ledger's event stream)
	// or "state" (read from current state when the replay did not catch
	// up in time).
	SnapshotFrom string             `json:"snapshot_from"`
	Consents     string             `json:"consents"`
	Receipts     uint64             `json:"receipts_checked"`
	Findings     int                `json:"findings"`
	ByRule       map[audit.Rule]int `json:"findings_by_rule,omitempty"`
}

// Reason is node.Reason, repeated so the JSON map keys read well.
type Reason = node.Reason

// DemoRegion is one region's figures.
type DemoRegion struct {
	ID          credit.RegionID `json:"id"`
	Name        string          `json:"name"`
	Enterprises int             `json:"enterprises"`
	Records     int             `json:"records"`
	LogSize     uint64          `json:"receipt_log_size"`
	Anchored    uint64          `json:"anchored_size"`
	BankAPI     string          `json:"bank_api"`
}

// DemoRefusal is one query that had to be refused.
type DemoRefusal struct {
	Case     string `json:"case"`
	Want     Reason `json:"want"`
	Got      Reason `json:"got"`
	HTTP     int    `json:"http_status"`
	Message  string `json:"message"`
	AsWanted bool   `json:"as_wanted"`
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
	so.P2P = !o.InProcess
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

func (d *Demo) run(ctx context.Context, o DemoOptions, start time.Time) error {
	c, rep := d.Consortium, &d.Report
	rep.DataDir = o.Dir
	rep.Transport, rep.LedgerKind = "libp2p on 127.0.0.1 (TCP, TLS 1.3, membership gater)", "embedded (network/embedded)"
	if o.InProcess {
		rep.Transport = "in-process calls"
	}
	if c.Ledger != nil {
		rep.LedgerKind = "in-memory (memledger)"
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))

	// Data: each region's enterprises with their synthetic department
	// records (credit/synth: ~183 records each, as on the Shenzhen
	// platform); the first tenth of them also have a few records in the
	// other regions (branches, lawsuits, utilities), which is what makes a
	// consolidated report useful.
	subjects := map[credit.RegionID][]credit.USCC{}
	perRegion := map[credit.RegionID][]credit.Record{}
	for _, r := range c.Regions {
		g, err := synth.New(synth.Config{Region: r.ID, Enterprises: o.Enterprises, Seed: o.Seed})
		if err != nil {
			return fmt.Errorf("region %s: synthetic data: %w", r.ID, err)
		}
		subjects[r.ID] = g.Enterprises()
		for i := range o.Enterprises {
			perRegion[r.ID] = append(perRegion[r.ID], g.EnterpriseRecords(i)...)
		}
	}
	seq := 0
	addRecs := func(holder credit.RegionID, u credit.USCC, n int) error {
		for range n {
			seq++
			cat := demoCats[rng.IntN(len(demoCats))]
			r := credit.Record{Subject: u, Source: "dept-" + string(cat), SourceID: fmt.Sprintf("%s-%d", holder, seq), Category: cat,
				Date:  credit.Date(fmt.Sprintf("20%02d-%02d-%02d", 18+rng.IntN(8), 1+rng.IntN(12), 1+rng.IntN(28))),
				Attrs: []byte(fmt.Sprintf(`{"amount_cny":%d,"note":"synthetic"}`, 1000+rng.IntN(900000)))}
			if err := r.Normalize(time.Time{}, 0); err != nil {
				return err
			}
			perRegion[holder] = append(perRegion[holder], r)
		}
		return nil
	}
	for _, r := range c.Regions {
		for i, u := range subjects[r.ID] {
			if i < max(1, o.Enterprises/10) {
				for _, other := range c.Regions {
					if other.ID != r.ID {
						if err := addRecs(other.ID, u, 2+rng.IntN(4)); err != nil {
							return err
						}
					}
				}
			}
		}
	}
	for _, r := range c.Regions {
		recs := perRegion[r.ID]
		for i := 0; i < len(recs); i += 2000 {
			if _, err := r.Store.Put(ctx, recs[i:min(i+2000, len(recs))]); err != nil {
				return fmt.Errorf("region %s: load records: %w", r.ID, err)
			}
		}
		rep.Records += len(recs)
		rep.Regions = append(rep.Regions, DemoRegion{ID: r.ID, Name: r.Name, Enterprises: len(subjects[r.ID]), Records: len(recs), BankAPI: "http://" + r.Node.HTTPAddr()})
	}

	home := c.Regions[0]
	second := c.Regions[min(1, len(c.Regions)-1)]
	bankA, bankB := c.Banks[0], c.Banks[len(c.Banks)-1]
	clientOf := func(r *Region) *node.Client {
		return &node.Client{Base: "http://" + r.Node.HTTPAddr(), AdminToken: AdminToken}
	}
	grant := func(r *Region, u credit.USCC, bank credit.BankID, cats []credit.Category, purpose credit.Purpose) (credit.ConsentGrant, error) {
		g, err := NewEnterprise(u).Grant(bank, r.ID, cats, purpose, time.Now(), 365*24*time.Hour)
		if err != nil {
			return g, err
		}
		res, err := clientOf(r).RecordConsent(ctx, g)
		if err != nil {
			return g, fmt.Errorf("record consent at %s: %w", r.ID, err)
		}
		return *res.Consent, nil
	}
	scope := []credit.Category{credit.Registration, credit.Tax, credit.Penalty, credit.Judicial}
	subjA, subjB := subjects[home.ID][0], subjects[second.ID][0]
	consentA, err := grant(home, subjA, bankA.ID, scope, credit.PurposeLoanApplication)
	if err != nil {
		return err
	}
	consentB, err := grant(second, subjB, bankB.ID, scope, credit.PurposeCreditReview)
	if err != nil {
		return err
	}
	toRevoke, err := grant(home, subjects[home.ID][1], bankA.ID, scope, credit.PurposeLoanApplication)
	if err != nil {
		return err
	}
	if err := d.saveArtifacts(o.Dir, []credit.ConsentGrant{consentA, consentB}); err != nil {
		return fmt.Errorf("write demo artifacts: %w", err)
	}

	// Consented queries through each bank's home node.
	var lat []float64
	var proofReceipt string
	type asker struct {
		bank    *Bank
		home    *Region
		subject credit.USCC
		consent credit.ConsentGrant
		purpose credit.Purpose
	}
	for _, a := range []asker{{bankA, home, subjA, consentA, credit.PurposeLoanApplication}, {bankB, second, subjB, consentB, credit.PurposeCreditReview}} {
		for i := range o.Queries {
			q, err := a.bank.Query(a.subject, scope, a.purpose, &a.consent, time.Now())
			if err != nil {
				return err
			}
			t0 := time.Now()
			res, err := clientOf(a.home).Query(ctx, &q)
			if err != nil {
				return fmt.Errorf("%w: consented query by %s: %w", ErrDemoFailed, a.bank.ID, err)
			}
			lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
			rep.Queries++
			for _, st := range res.Regions {
				if st.Status != node.StatusOK {
					return fmt.Errorf("%w: region %s answered %s: %s", ErrDemoFailed, st.Region, st.Status, st.Message)
				}
			}
			if i == 0 && rep.Example == nil {
				ex := &DemoConsolRows{Bank: res.Bank, Subject: res.Subject}
				for _, st := range res.Regions {
					ex.Rows = append(ex.Rows, DemoRegionRow{Region: st.Region, Status: st.Status, Records: st.RecordCount, Receipt: st.Receipt.ID})
					if st.Region == home.ID {
						proofReceipt = st.Receipt.ID
					}
				}
				rep.Example = ex
			}
		}
	}
	slices.Sort(lat)
	rep.LatencyMS = DemoLatency{P50: lat[len(lat)/2], P99: lat[min(len(lat)-1, len(lat)*99/100)], Max: lat[len(lat)-1]}

	// Revoke one consent and wait until every node's view has it.
	if _, err := clientOf(home).RevokeConsent(ctx, toRevoke.ID); err != nil {
		return err
	}
	for _, r := range c.Regions {
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, st, err := r.Node.ConsentStatus(ctx, toRevoke.ID)
			if err == nil && st == credit.ConsentRevoked {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%w: revocation did not reach %s", ErrDemoFailed, r.ID)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	unrecorded, err := NewEnterprise(subjects[home.ID][2]).Grant(bankA.ID, home.ID, scope, credit.PurposeLoanApplication, time.Now(), time.Hour)
	if err != nil {
		return err
	}
	cases := []struct {
		name string
		want Reason
		home *Region
		q    func() (credit.Query, error)
	}{
		{"no consent on the ledger", node.ReasonNoConsent, home, func() (credit.Query, error) {
			return bankA.Query(subjects[home.ID][2], scope, credit.PurposeLoanApplication, &unrecorded, time.Now())
		}},
		{"revoked consent", node.ReasonConsentRevoked, home, func() (credit.Query, error) {
			return bankA.Query(subjects[home.ID][1], scope, credit.PurposeLoanApplication, &toRevoke, time.Now())
		}},
		{"category outside the consent", node.ReasonCategoryScope, home, func() (credit.Query, error) {
			return bankA.Query(subjA, []credit.Category{credit.Tax, credit.SocialInsurance}, credit.PurposeLoanApplication, &consentA, time.Now())
		}},
		{"another bank's consent", node.ReasonWrongGrantee, second, func() (credit.Query, error) {
			return bankB.Query(subjA, scope, credit.PurposeLoanApplication, &consentA, time.Now())
		}},
		{"forged bank signature", node.ReasonBadSignature, home, func() (credit.Query, error) {
			q, err := bankA.Query(subjA, scope, credit.PurposeLoanApplication, &consentA, time.Now())
			q.Sig[7] ^= 0x40
			return q, err
		}},
	}
	rep.RefusalCounts = map[Reason]int{}
	var wrong []string
	for _, tc := range cases {
		q, err := tc.q()
		if err != nil {
			return err
		}
		_, err = clientOf(tc.home).Query(ctx, &q)
		r := DemoRefusal{Case: tc.name, Want: tc.want}
		var se *node.StatusError
		if errors.As(err, &se) {
			r.Got, r.HTTP, r.Message = se.Reason(), se.Status, se.Message
		} else if err == nil {
			r.Message = "answered"
		} else {
			return err
		}
		r.AsWanted = r.Got == tc.want
		if !r.AsWanted {
			wrong = append(wrong, fmt.Sprintf("%s: got %q, want %q", tc.name, r.Got, tc.want))
		}
		rep.RefusalCounts[r.Got]++
		rep.Refusals = append(rep.Refusals, r)
	}
	if len(wrong) > 0 {
		return fmt.Errorf("%w: refusals with the wrong reason: %v", ErrDemoFailed, wrong)
	}

	// Anchor every region, then fetch and check one inclusion proof.
	for _, r := range c.Regions {
		if err := r.Node.AnchorNow(ctx); err != nil {
			return fmt.Errorf("anchor %s: %w", r.ID, err)
		}
	}
	rp, err := clientOf(home).Receipt(ctx, proofReceipt)
	if err != nil {
		return err
	}
	if err := d.verifyProof(ctx, home, rp); err != nil {
		return err
	}
	rep.Proof = DemoProof{Region: home.ID, ReceiptID: rp.Receipt.ID, LeafIndex: rp.LeafIndex, TreeSize: rp.TreeSize,
		Hashes: len(rp.Proof), Verified: true, TxID: rp.Checkpoint.TxID}

	for i, r := range c.Regions {
		rep.Regions[i].LogSize = r.Node.Log().Size()
		rep.Receipts += rep.Regions[i].LogSize
		if ac, ok, _ := r.Node.LatestCheckpoint(); ok {
			rep.Regions[i].Anchored = ac.Size
		}
		h, _ := r.Ledger.CheckpointHistory(ctx, r.ID)
		rep.Checkpoints += len(h)
	}
	rep.LedgerTxs = c.LedgerTransactions()
	if err := d.audit(ctx, o.Dir, []credit.ConsentGrant{consentA, consentB, toRevoke, unrecorded}); err != nil {
		return err
	}
	rep.Elapsed = time.Since(start).Seconds()
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
			f, err := os.Create(p)
			if err != nil {
				return err
			}
			if kind == credit.ExportAnswered {
				_, err = node.ExportAnswered(f, r.ID, r.Node.Log(), 0, now)
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
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	snap, err := audit.TakeSnapshot(sctx, d.Regions[0].Ledger, 100*time.Millisecond, now)
	cancel()
	a.SnapshotFrom = "events"
	if err != nil {
		// The demo changes no member after bootstrap, so the ledger's
		// current state is its whole history.
		if snap, err = d.stateSnapshot(ctx, consents, now); err != nil {
			return err
		}
		a.SnapshotFrom = "state"
	}
	a.Snapshot = filepath.Join(ad, "ledger-snapshot.json")
	f, err := os.Create(a.Snapshot)
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

// stateSnapshot builds the audit's ledger snapshot from current state.
func (d *Demo) stateSnapshot(ctx context.Context, consents []credit.ConsentGrant, now time.Time) (*audit.Snapshot, error) {
	l := d.Regions[0].Ledger
	s := audit.NewSnapshot()
	s.TakenAt = now.UTC()
	regions, err := l.Regions(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range regions {
		s.AddRegion(r)
		h, err := l.CheckpointHistory(ctx, r.ID)
		if err != nil && !errors.Is(err, network.ErrNotFound) {
			return nil, err
		}
		for _, c := range h {
			s.AddCheckpoint(c)
		}
	}
	banks, err := l.Banks(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range banks {
		s.AddBank(b)
	}
	for _, g := range consents {
		c, err := l.Consent(ctx, g.ID)
		if errors.Is(err, network.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		s.ConsentRecords[c.ID] = c
	}
	return s, nil
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
				home = "http://" + d.Region(b.Region).Node.HTTPAddr()
			}
		}
		d.Report.Try = append(d.Report.Try, DemoTry{Bank: g.Grantee, Node: home,
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
