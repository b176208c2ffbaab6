package audit

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

type want struct {
	rule Rule
	leaf int // -1: no leaf
}

func runAudit(t *testing.T, f *fixture, answered, received []credit.ExportLine, opts Options) Report {
	t.Helper()
	in := Inputs{Exports: []Source{BytesSource("sz.jsonl", encodeExport(t, credit.ExportAnswered, sz, answered))}}
	if received != nil {
		in.Exports = append(in.Exports, BytesSource("gz-received.jsonl", encodeExport(t, credit.ExportReceived, gz, received)))
	}
	rep, err := Run(context.Background(), in, f.snap, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, fd := range rep.Findings {
		t.Logf("finding: %s", fd)
	}
	return rep
}

func checkFindings(t *testing.T, rep Report, want []want) {
	t.Helper()
	if rep.Total != len(want) || len(rep.Findings) != len(want) {
		t.Fatalf("got %d findings %v, want exactly %v", rep.Total, rep.ByRule, want)
	}
	for i, w := range want {
		got := rep.Findings[i]
		if got.Rule != w.rule {
			t.Errorf("finding %d: rule %s, want %s", i, got.Rule, w.rule)
		}
		if w.leaf >= 0 && (got.Leaf == nil || *got.Leaf != uint64(w.leaf)) {
			t.Errorf("finding %d (%s): leaf %v, want %d", i, got.Rule, got.Leaf, w.leaf)
		}
		if got.Region == "" || got.Detail == "" {
			t.Errorf("finding %d names no region or says nothing: %+v", i, got)
		}
		// A consent finding carries the refusal a node owed; no other does.
		if (got.Rule == RuleConsent) != got.Code.Known() || (got.Rule != RuleConsent && got.Code != "") {
			t.Errorf("finding %d: rule %s with code %q", i, got.Rule, got.Code)
		}
	}
}

// checkCodes checks the codes of the first findings.
func checkCodes(t *testing.T, rep Report, codes []credit.Code) {
	t.Helper()
	for i, c := range codes {
		if i >= len(rep.Findings) || rep.Findings[i].Code != c {
			t.Errorf("finding %d: want code %s; findings %v", i, c, rep.Findings)
		}
	}
}

func TestCleanAudit(t *testing.T) {
	f := newFixture(t, 12)
	f.anchor()
	rep := runAudit(t, f, f.answeredLines(), f.receivedLines(), testOptions(t))
	checkFindings(t, rep, nil)
	if len(rep.Regions) != 1 || rep.Regions[0].Verified != 12 || rep.Regions[0].Checked != 12 || rep.Regions[0].Checkpoints != 3 {
		t.Fatalf("summary %+v", rep.Regions)
	}
	if rep.Received != 11 {
		t.Fatalf("received %d, want 11", rep.Received)
	}
}

// TestTamper is the tamper suite: each case must produce exactly the
// expected finding and no other.
func TestTamper(t *testing.T) {
	tests := []struct {
		name string
		// before changes the receipts before they are logged and anchored:
		// what a region or bank did wrong at the time.
		before func(f *fixture)
		// after changes the answered export after anchoring: what an
		// exporter did to hide or change the past.
		after        func(f *fixture, lines []credit.ExportLine) []credit.ExportLine
		withReceived bool
		// afterReceived changes the requester's export.
		afterReceived func(f *fixture, lines []credit.ExportLine) []credit.ExportLine
		want          []want
		codes         []credit.Code // of the first findings, in order
		// detail, when set, is in the first finding's detail; not, when
		// set, is not.
		detail, not string
	}{
		{
			name: "altered report digest",
			after: func(f *fixture, lines []credit.ExportLine) []credit.ExportLine {
				r := f.receipts[5]
				r.ReportDigest = make([]byte, 32)
				lines[5].Receipt = mustLeaf(t, &r)
				return lines
			},
			want: []want{{RuleCompleteness, 5}},
		},
		{
			name: "altered time",
			after: func(f *fixture, lines []credit.ExportLine) []credit.ExportLine {
				r := f.receipts[6]
				r.Time = r.Time.Add(-20 * time.Second)
				lines[6].Receipt = mustLeaf(t, &r)
				return lines
			},
			want: []want{{RuleCompleteness, 6}},
		},
		{
			name: "deleted receipt",
			after: func(f *fixture, lines []credit.ExportLine) []credit.ExportLine {
				return slices.Delete(lines, 5, 6)
			},
			// The anchored root fails, and the structure says so on its
			// own: the lines after the gap claim the leaf after their place.
			want: []want{{RuleCompleteness, 5}, {RuleOrder, 5}},
		},
		{
			name: "deleted receipt, renumbered",
			after: func(f *fixture, lines []credit.ExportLine) []credit.ExportLine {
				lines = slices.Delete(lines, 5, 6)
				for i := range lines {
					lines[i].Index = uint64(i)
				}
				return lines
			},
			want: []want{{RuleCompleteness, -1}},
		},
		{
			name: "deleted last receipts",
			after: func(f *fixture, lines []credit.ExportLine) []credit.ExportLine {
				return lines[:10]
			},
			want: []want{{RuleCompleteness, 10}},
		},
		{
			name: "inserted receipt",
			after: func(f *fixture, lines []credit.ExportLine) []credit.ExportLine {
				r := f.receipt(99, bankA, "consent-a-0001", []credit.Category{credit.Penalty})
				r.Time = f.when(5).Add(30 * time.Second)
				if err := r.Sign(key("sz")); err != nil {
					t.Fatal(err)
				}
				ins := credit.ExportLine{Index: 5, Receipt: mustLeaf(t, &r), Acks: []credit.Ack{f.ack(&r)}}
				lines = slices.Insert(lines, 5, ins)
				for i := range lines {
					lines[i].Index = uint64(i)
				}
				return lines
			},
			want: []want{{RuleCompleteness, -1}},
		},
		{
			name: "unreadable line",
			after: func(f *fixture, lines []credit.ExportLine) []credit.ExportLine {
				lines[5].Receipt = json.RawMessage(`{"v":1,"time":"yesterday"}`)
				return lines
			},
			want: []want{{RuleCompleteness, 5}},
		},
		{
			name: "two receipts swapped",
			after: func(f *fixture, lines []credit.ExportLine) []credit.ExportLine {
				lines[5].Receipt, lines[6].Receipt = lines[6].Receipt, lines[5].Receipt
				lines[5].Acks, lines[6].Acks = lines[6].Acks, lines[5].Acks
				return lines
			},
			want: []want{{RuleCompleteness, -1}},
		},
		{
			name: "forged bank signature",
			before: func(f *fixture) {
				if err := f.receipts[3].Query.Sign(key("someone")); err != nil {
					t.Fatal(err)
				}
				f.resign(3)
			},
			withReceived: true,
			want:         []want{{RuleQuerySig, 3}},
		},
		{
			name: "forged region signature",
			before: func(f *fixture) {
				if err := f.receipts[4].Sign(key("someone")); err != nil {
					t.Fatal(err)
				}
				f.acks[4] = []credit.Ack{f.ack(&f.receipts[4])}
			},
			withReceived: true,
			want:         []want{{RuleReceiptSig, 4}},
		},
		{
			name: "receipt after its consent was revoked",
			before: func(f *fixture) {
				f.grant("consent-a-0002", bankA, []credit.Category{credit.Penalty}, t0.Add(time.Minute))
				c := f.snap.ConsentRecords["consent-a-0002"]
				rev := f.when(7).Add(-10 * time.Second)
				c.RevokedAt, c.Status = &rev, credit.ConsentRevoked
				f.snap.ConsentRecords["consent-a-0002"] = c
				for _, i := range []int{6, 7} { // 6 before the revocation, 7 after
					f.receipts[i] = f.receipt(i, bankA, "consent-a-0002", []credit.Category{credit.Penalty})
					f.resign(i)
				}
			},
			withReceived: true,
			want:         []want{{RuleConsent, 7}},
			codes:        []credit.Code{credit.CodeConsentRevoked},
		},
		{
			name: "receipt after its consent expired",
			before: func(f *fixture) {
				g := f.grant("consent-a-0003", bankA, []credit.Category{credit.Penalty}, t0.Add(time.Minute))
				// A short window: it ends between receipts 5 and 6.
				g.ValidUntil = f.when(5).Add(30 * time.Second)
				if err := g.SignEnterprise(key("enterprise"), g.EnterpriseCert, g.SignedAt); err != nil {
					t.Fatal(err)
				}
				if err := g.Countersign(key("sz")); err != nil {
					t.Fatal(err)
				}
				c, err := g.Commitment()
				if err != nil {
					t.Fatal(err)
				}
				rec := f.snap.ConsentRecords[g.ID]
				rec.Commitment, rec.ValidUntil = c[:], g.ValidUntil
				f.snap.ConsentRecords[g.ID] = rec
				f.consents[g.ID] = g
				for _, i := range []int{5, 6} {
					f.receipts[i] = f.receipt(i, bankA, g.ID, []credit.Category{credit.Penalty})
					f.resign(i)
				}
			},
			withReceived: true,
			want:         []want{{RuleConsent, 6}},
			codes:        []credit.Code{credit.CodeConsentExpired},
		},
		{
			name: "categories out of scope",
			before: func(f *fixture) {
				f.receipts[2] = f.receipt(2, bankA, "consent-a-0001", []credit.Category{credit.Penalty, credit.Judicial})
				f.resign(2)
			},
			withReceived: true,
			want:         []want{{RuleConsent, 2}},
			codes:        []credit.Code{credit.CodeCategoryOutOfScope},
		},
		{
			name: "answer outside its query",
			before: func(f *fixture) {
				f.receipts[2].Categories = []credit.Category{credit.Judicial, credit.Penalty}
				f.resign(2)
			},
			withReceived: true,
			want:         []want{{RuleReceiptScope, 2}},
		},
		{
			name: "answer to a region relaying another region's bank's query",
			before: func(f *fixture) {
				f.snap.AddBank(credit.BankMember{ID: "bank-sz", Name: "bank-sz", Region: sz, PubKey: pub("bank-sz"), Status: credit.StatusActive, UpdatedAt: t0.Add(-time.Hour)})
				f.grant("consent-s-0001", "bank-sz", []credit.Category{credit.Penalty}, t0.Add(time.Minute))
				f.receipts[3] = f.receipt(3, "bank-sz", "consent-s-0001", []credit.Category{credit.Penalty})
				f.resign(3)
			},
			withReceived: true,
			want:         []want{{RuleRequester, 3}},
		},
		{
			name: "consent not on the ledger",
			before: func(f *fixture) {
				f.grant("consent-a-0004", bankA, []credit.Category{credit.Penalty}, t0.Add(time.Minute))
				delete(f.snap.ConsentRecords, "consent-a-0004")
				f.receipts[3] = f.receipt(3, bankA, "consent-a-0004", []credit.Category{credit.Penalty})
				f.resign(3)
			},
			withReceived: true,
			want:         []want{{RuleConsent, 3}},
			codes:        []credit.Code{credit.CodeConsentNotFound},
		},
		{
			name: "consent recorded after the answer",
			before: func(f *fixture) {
				f.grant("consent-a-0005", bankA, []credit.Category{credit.Penalty}, f.when(3).Add(time.Second))
				f.receipts[3] = f.receipt(3, bankA, "consent-a-0005", []credit.Category{credit.Penalty})
				f.resign(3)
			},
			withReceived: true,
			want:         []want{{RuleConsent, 3}},
			codes:        []credit.Code{credit.CodeConsentNotFound},
		},
		{
			name: "document changed after its commitment was recorded",
			before: func(f *fixture) {
				g := f.consents["consent-a-0001"]
				g.Categories = append(slices.Clone(g.Categories), credit.Judicial)
				f.consents["consent-a-0001"] = g
				f.receipts[4] = f.receipt(4, bankA, "consent-a-0001", []credit.Category{credit.Penalty})
				f.resign(4)
			},
			withReceived: true,
			want:         []want{{RuleConsent, 4}},
			codes:        []credit.Code{credit.CodeConsentMismatch},
		},
		{
			// The ledger recorded a document whose countersignature is
			// not the issuing region's: every answer on it is a finding
			// (a failed verification is never cached as a success).
			name: "consent countersigned by another key",
			before: func(f *fixture) {
				g := f.grant("consent-a-0006", bankA, []credit.Category{credit.Penalty}, t0.Add(time.Minute))
				if err := g.Countersign(key("someone")); err != nil {
					t.Fatal(err)
				}
				c, err := g.Commitment()
				if err != nil {
					t.Fatal(err)
				}
				rec := f.snap.ConsentRecords[g.ID]
				rec.Commitment = c[:]
				f.snap.ConsentRecords[g.ID] = rec
				f.consents[g.ID] = g
				for _, i := range []int{5, 6} {
					f.receipts[i] = f.receipt(i, bankA, g.ID, []credit.Category{credit.Penalty})
					f.resign(i)
				}
			},
			withReceived: true,
			want:         []want{{RuleConsent, 5}, {RuleConsent, 6}},
			codes:        []credit.Code{credit.CodeConsentSignature, credit.CodeConsentSignature},
		},
		{
			name: "several rules broken by one answer, all reported in the decision's order",
			before: func(f *fixture) {
				f.receipts[8] = f.receipt(8, bankB, "consent-a-0001", []credit.Category{credit.Penalty, credit.Judicial})
				f.resign(8)
			},
			withReceived: true,
			want:         []want{{RuleConsent, 8}, {RuleConsent, 8}},
			codes:        []credit.Code{credit.CodeConsentOtherBank, credit.CodeCategoryOutOfScope},
		},
		{
			name: "another bank's consent",
			before: func(f *fixture) {
				f.receipts[8] = f.receipt(8, bankB, "consent-a-0001", []credit.Category{credit.Penalty})
				f.resign(8)
			},
			withReceived: true,
			want:         []want{{RuleConsent, 8}},
			codes:        []credit.Code{credit.CodeConsentOtherBank},
		},
		{
			name: "missing acknowledgement",
			before: func(f *fixture) {
				f.acks[9] = nil
			},
			withReceived: true,
			want:         []want{{RuleUnacked, 9}},
			not:          "cannot tell",
		},
		{
			// Acks are kept by the answerer: without the requester's
			// export the finding says it cannot tell which region failed.
			name: "missing acknowledgement, no received export",
			before: func(f *fixture) {
				f.acks[9] = nil
			},
			want:   []want{{RuleUnacked, 9}},
			detail: "without gz's received export, this cannot tell whether gz did not acknowledge it or sz did not keep the acknowledgement",
		},
		{
			name: "answer in the requester's export but not in the answerer's log",
			before: func(f *fixture) {
				r := f.receipt(50, bankA, "consent-a-0001", []credit.Category{credit.Penalty})
				if err := r.Sign(key("sz")); err != nil {
					t.Fatal(err)
				}
				f.extra = append(f.extra, r)
				f.extraAcks = append(f.extraAcks, f.ack(&r))
			},
			withReceived: true,
			want:         []want{{RuleUnlogged, -1}},
		},
		{
			name:         "forged acknowledgement in the requester's export",
			withReceived: true,
			afterReceived: func(f *fixture, lines []credit.ExportLine) []credit.ExportLine {
				a := lines[3].Acks[0]
				a.Sig = append([]byte(nil), a.Sig...)
				a.Sig[10] ^= 1
				lines[3].Acks = []credit.Ack{a}
				return lines
			},
			want: []want{{RuleAckSig, -1}},
		},
		{
			name: "forged acknowledgement in the answerer's export",
			after: func(f *fixture, lines []credit.ExportLine) []credit.ExportLine {
				a, err := credit.NewAck(&f.receipts[4], gz, f.when(4), key("someone"))
				if err != nil {
					t.Fatal(err)
				}
				lines[4].Acks = append(lines[4].Acks, a)
				return lines
			},
			want: []want{{RuleAckSig, 4}},
		},
		{
			name: "anchored late",
			before: func(f *fixture) {
				f.cpEvery = 100
			},
			after: func(f *fixture, lines []credit.ExportLine) []credit.ExportLine {
				return lines
			},
			want: []want{{RuleTimeliness, 0}, {RuleTimeliness, 1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 12)
			if tc.before != nil {
				tc.before(f)
			}
			f.anchor()
			if tc.name == "anchored late" {
				// The only checkpoint came 70 minutes after receipt 0 (so
				// 0 and 1 waited longer than the hour allowed).
				f.snap.Anchored[sz] = nil
				f.anchorAt(12, f.when(0).Add(61*time.Minute+30*time.Second))
			}
			lines := f.answeredLines()
			if tc.after != nil {
				lines = tc.after(f, lines)
			}
			var received []credit.ExportLine
			if tc.withReceived {
				received = f.receivedLines()
				if tc.afterReceived != nil {
					received = tc.afterReceived(f, received)
				}
			}
			rep := runAudit(t, f, lines, received, testOptions(t))
			checkFindings(t, rep, tc.want)
			checkCodes(t, rep, tc.codes)
			if d := rep.Findings[0].Detail; tc.detail != "" && !strings.Contains(d, tc.detail) || tc.not != "" && strings.Contains(d, tc.not) {
				t.Errorf("first finding's detail %q: want it to hold %q and not %q", d, tc.detail, tc.not)
			}
			if tc.want[0].rule == RuleUnlogged && rep.Findings[0].Receipt != f.extra[0].ID {
				t.Errorf("unlogged finding names %s, want %s", rep.Findings[0].Receipt, f.extra[0].ID)
			}
		})
	}
}

func mustLeaf(t *testing.T, r *credit.Receipt) json.RawMessage {
	t.Helper()
	b, err := r.LeafBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// anchorRule is the contract's rule for a new checkpoint: a consistency
// proof from the latest anchored one must verify.
func anchorRule(prev, next credit.Checkpoint, consistency [][]byte) error {
	return proof.VerifyConsistency(rfc6962.DefaultHasher, prev.Size, next.Size, consistency, prev.Root, next.Root)
}

// TestRewrittenLog: a region rewrites receipt 2 after anchoring size 4 and
// tries to anchor size 8 of the rewritten log. The anchor rule refuses it;
// the audit of the rewritten export fails completeness; and a snapshot in
// which the rewritten checkpoint was anchored anyway (a contract bypassed)
// fails consistency.
func TestRewrittenLog(t *testing.T) {
	f := newFixture(t, 8)
	f.cpEvery = 4
	f.anchor()
	f.snap.Anchored[sz] = f.snap.Anchored[sz][:1] // only size 4 is anchored
	honest := f.snap.Anchored[sz][0].Checkpoint

	rw := newFixtureWith(t, 8, f.pki)
	rw.receipts[2] = rw.receipt(2, bankA, "consent-a-0001", []credit.Category{credit.Licensing})
	rw.resign(2)
	rw.anchor()
	rewritten := rw.snap.Anchored[sz][1].Checkpoint
	consistency, err := rw.tree.ConsistencyProof(4, 8)
	if err != nil {
		t.Fatal(err)
	}
	if err := anchorRule(honest, rewritten, consistency); err == nil {
		t.Fatal("anchor rule accepted a checkpoint of a rewritten log")
	}

	t.Run("export of the rewritten log", func(t *testing.T) {
		// Receipts 4..7 are not anchored but are within their delay when
		// Now is right after them.
		o := testOptions(t)
		o.Now = f.when(8)
		rep := runAudit(t, f, rw.answeredLines(), nil, o)
		checkFindings(t, rep, []want{{RuleCompleteness, -1}})
	})
	t.Run("rewritten checkpoint anchored anyway", func(t *testing.T) {
		f.snap.AddCheckpoint(rw.snap.Anchored[sz][1])
		rep := runAudit(t, f, rw.answeredLines(), nil, testOptions(t))
		checkFindings(t, rep, []want{{RuleConsistency, 4}})
	})
}

func TestFilters(t *testing.T) {
	f := newFixture(t, 12)
	f.receipts[2] = f.receipt(2, bankA, "consent-a-0001", []credit.Category{credit.Judicial})
	f.resign(2)
	f.anchor()
	tests := []struct {
		name string
		opts func(*Options)
		want int
	}{
		{"all", func(*Options) {}, 1},
		{"since after it", func(o *Options) { o.Since = f.when(3) }, 0},
		{"until after it", func(o *Options) { o.Until = f.when(3) }, 1},
		{"until it", func(o *Options) { o.Until = f.when(2) }, 0},
		{"other region", func(o *Options) { o.Regions = []credit.RegionID{gz} }, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t)
			tc.opts(&o)
			rep := runAudit(t, f, f.answeredLines(), f.receivedLines(), o)
			if rep.Total != tc.want {
				t.Fatalf("%d findings, want %d", rep.Total, tc.want)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	f := newFixture(t, 8)
	// sz rotated its key after receipt 3: receipts 4..7 are signed with the new key.
	rot := f.snap.RegionVersions[sz][0]
	rot.PubKey, rot.UpdatedAt = pub("sz-2"), f.when(3).Add(30*time.Second)
	f.snap.AddRegion(rot)
	for i := 4; i < 8; i++ {
		if err := f.receipts[i].Sign(key("sz-2")); err != nil {
			t.Fatal(err)
		}
		f.acks[i] = []credit.Ack{f.ack(&f.receipts[i])}
	}
	// Both checkpoints were anchored after the rotation.
	f.anchor()
	for i := range f.snap.Anchored[sz] {
		if err := f.snap.Anchored[sz][i].Sign("test", key("sz-2")); err != nil {
			t.Fatal(err)
		}
	}
	rep := runAudit(t, f, f.answeredLines(), nil, testOptions(t))
	checkFindings(t, rep, nil)

	// Receipt 2 signed with the new key before it was registered.
	if err := f.receipts[2].Sign(key("sz-2")); err != nil {
		t.Fatal(err)
	}
	f.acks[2] = []credit.Ack{f.ack(&f.receipts[2])}
	f.snap.Anchored[sz] = nil
	f.anchor()
	for i := range f.snap.Anchored[sz] {
		if err := f.snap.Anchored[sz][i].Sign("test", key("sz-2")); err != nil {
			t.Fatal(err)
		}
	}
	rep = runAudit(t, f, f.answeredLines(), nil, testOptions(t))
	checkFindings(t, rep, []want{{RuleReceiptSig, 2}})
}

func TestInputErrors(t *testing.T) {
	f := newFixture(t, 2)
	f.anchor()
	good := encodeExport(t, credit.ExportAnswered, sz, f.answeredLines())
	tests := []struct {
		name string
		in   Inputs
	}{
		{"not an export", Inputs{Exports: []Source{BytesSource("x", []byte("hello\n"))}}},
		{"two exports of one region", Inputs{Exports: []Source{BytesSource("a", good), BytesSource("b", good)}}},
		{"missing file", Inputs{Exports: []Source{FileSource(t.TempDir() + "/none.jsonl")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), tc.in, f.snap, testOptions(t))
			if !errors.Is(err, ErrInput) {
				t.Fatalf("err %v, want ErrInput", err)
			}
		})
	}
}

// An answer given on a consent shortly after its revocation, before the
// revocation could reach every region, is within the consortium's promise
// when the auditor allows the propagation bound: counted, not a finding.
// Past the bound it is a finding, as without one.
func TestRevocationBound(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bound time.Duration
		want  []want
		count uint64
	}{
		{"no bound", 0, []want{{RuleConsent, 7}}, 0},
		{"answer inside the bound", 30 * time.Second, nil, 1},
		{"answer past the bound", 5 * time.Second, []want{{RuleConsent, 7}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 12)
			f.grant("consent-a-0002", bankA, []credit.Category{credit.Penalty}, t0.Add(time.Minute))
			c := f.snap.ConsentRecords["consent-a-0002"]
			rev := f.when(7).Add(-10 * time.Second) // receipt 7 comes 10 s after the revocation
			c.RevokedAt, c.Status = &rev, credit.ConsentRevoked
			f.snap.ConsentRecords["consent-a-0002"] = c
			for _, i := range []int{6, 7} {
				f.receipts[i] = f.receipt(i, bankA, "consent-a-0002", []credit.Category{credit.Penalty})
				f.resign(i)
			}
			f.anchor()
			o := testOptions(t)
			o.RevocationBound = tc.bound
			rep := runAudit(t, f, f.answeredLines(), f.receivedLines(), o)
			if rep.WithinRevocationBound != tc.count {
				t.Errorf("answers within the bound: %d, want %d", rep.WithinRevocationBound, tc.count)
			}
			if tc.want == nil {
				if rep.Total != 0 {
					t.Fatalf("findings %v, want none", rep.ByRule)
				}
				return
			}
			checkFindings(t, rep, tc.want)
			checkCodes(t, rep, []credit.Code{credit.CodeConsentRevoked})
		})
	}
}

// The auditor's own check: a query that carries another document than the
// copy the auditor was given (--consents) under the same id. A query that
// carries no document at all is the decision's consent_mismatch. The code
// is in the JSON report and the table.
func TestConsentDocumentAndCode(t *testing.T) {
	f := newFixture(t, 12)
	given := f.consents["consent-a-0001"]
	given.Purpose = credit.PurposeGuarantee // the auditor's copy differs
	f.receipts[4].Query.Consent = nil
	if err := f.receipts[4].Query.Sign(key(string(bankA))); err != nil {
		t.Fatal(err)
	}
	f.resign(4)
	f.anchor()
	in := Inputs{Exports: []Source{BytesSource("sz.jsonl", encodeExport(t, credit.ExportAnswered, sz, f.answeredLines()))}}
	rep, err := Run(context.Background(), in, f.snap, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	checkFindings(t, rep, []want{{RuleConsent, 4}})
	checkCodes(t, rep, []credit.Code{credit.CodeConsentMismatch})

	in.Consents = []credit.ConsentGrant{given}
	rep, err = Run(context.Background(), in, f.snap, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	var w []want
	for i := range 12 {
		if i == 4 {
			w = append(w, want{RuleConsent, 4})
		} else {
			w = append(w, want{RuleConsentDocument, i})
		}
	}
	checkFindings(t, rep, w)

	b, err := json.Marshal(rep.Findings[4])
	if err != nil || !strings.Contains(string(b), `"code":"consent_mismatch"`) {
		t.Errorf("JSON finding %s (%v): want its code", b, err)
	}
	if b, _ := json.Marshal(rep.Findings[0]); strings.Contains(string(b), `"code"`) {
		t.Errorf("JSON finding %s: a finding without a code has no code field", b)
	}
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "CODE") || !regexp.MustCompile(`(?m)^consent +consent_mismatch +sz `).MatchString(text.String()) {
		t.Errorf("table without the code:\n%s", text.String())
	}
}

// TestCheckpointNoteTampered: an anchored checkpoint is a signed note; one
// the region's key did not sign, or whose statement was altered, or that
// names another log than the region's earlier checkpoints, is a finding.
func TestCheckpointNoteTampered(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, c *credit.AnchoredCheckpoint)
	}{
		{"signed by another region's key", func(t *testing.T, c *credit.AnchoredCheckpoint) {
			if err := c.Sign("test", key("gz")); err != nil {
				t.Fatal(err)
			}
		}},
		{"size in the note altered", func(t *testing.T, c *credit.AnchoredCheckpoint) {
			c.Note = strings.Replace(c.Note, "\n8\n", "\n9\n", 1)
		}},
		{"size field altered", func(t *testing.T, c *credit.AnchoredCheckpoint) { c.Size = 9 }},
		{"another origin", func(t *testing.T, c *credit.AnchoredCheckpoint) {
			if err := c.Sign("other-network", key("sz")); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 8)
			f.anchor()
			rep := runAudit(t, f, f.answeredLines(), nil, testOptions(t))
			checkFindings(t, rep, nil)
			cps := f.snap.Anchored[sz]
			if len(cps) != 2 || cps[1].Size != 8 {
				t.Fatalf("fixture anchored %+v", cps)
			}
			tc.tamper(t, &cps[1])
			rep = runAudit(t, f, f.answeredLines(), nil, testOptions(t))
			if rep.ByRule[RuleCheckpointSig] != 1 {
				t.Fatalf("findings %v, want one %s", rep.ByRule, RuleCheckpointSig)
			}
		})
	}
}
