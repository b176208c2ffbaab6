package audit

import (
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// A region answers the queries asked while it was a member: a receipt its
// node signed after the vote retiring it committed is valid when the query
// came before the retirement and the answer within the query window,
// checked against the key of the query's time; any other is a finding.
// The receipt is in the answerer's log and in the requester's received
// export, so both passes judge it.
func TestReceiptAcrossRetirement(t *testing.T) {
	const last = 3
	retiredAt := func(f *fixture) time.Time { return f.when(last).Add(-30 * time.Second) }
	cases := []struct {
		name                string
		query, answer       time.Duration // from the retirement
		signer              string        // sz's key at the query's time unless set
		bound               time.Duration // Options.RetirementBound
		wantReceiptFindings int
	}{
		{name: "before retirement", query: -2 * time.Second, answer: -time.Second},
		{name: "after retirement, query before", query: -time.Second, answer: time.Second},
		{name: "after retirement, at the window's end", query: -time.Second, answer: credit.QueryWindow - time.Second},
		{name: "after retirement, query after", query: time.Second, answer: 2 * time.Second, wantReceiptFindings: 1},
		{name: "after retirement, query within the retirement bound", query: time.Second, answer: 2 * time.Second, bound: 2 * time.Second},
		{name: "beyond the window", query: -time.Second, answer: credit.QueryWindow - time.Second + time.Millisecond, wantReceiptFindings: 1},
		{name: "after retirement, another key", query: -time.Second, answer: time.Second, signer: "sz-2", wantReceiptFindings: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, last+1)
			rv := f.snap.RegionVersions[sz][0]
			rv.Status, rv.UpdatedAt = credit.StatusRetired, retiredAt(f)
			f.snap.AddRegion(rv)
			r := &f.receipts[last]
			r.Query.Time, r.Time = rv.UpdatedAt.Add(c.query), rv.UpdatedAt.Add(c.answer)
			if err := r.Query.Sign(key(string(bankA))); err != nil {
				t.Fatal(err)
			}
			id, err := credit.ReceiptID(sz, &r.Query)
			if err != nil {
				t.Fatal(err)
			}
			r.ID = id
			signer := "sz"
			if c.signer != "" {
				signer = c.signer
			}
			if err := r.Sign(key(signer)); err != nil {
				t.Fatal(err)
			}
			f.acks[last] = []credit.Ack{f.ack(r)}
			f.anchor()
			opts := testOptions(t)
			opts.RetirementBound = c.bound
			rep := runAudit(t, f, f.answeredLines(), f.receivedLines(), opts)
			if rep.ByRule[RuleReceiptSig] != c.wantReceiptFindings || rep.Total != c.wantReceiptFindings {
				t.Fatalf("findings %v, want %d %s and nothing else", rep.ByRule, c.wantReceiptFindings, RuleReceiptSig)
			}
		})
	}
}
