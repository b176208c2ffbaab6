package node

import (
	"cmp"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
)

// The home node sent a query while the answering region was active; the
// vote retiring it may reach the home's view before the answer does. The
// receipt is verified, under the key of the query's time, and
// acknowledged: a region answers the queries asked while it was a member,
// and this node asks members only.
func TestVerifyReceiptAcrossRetirement(t *testing.T) {
	retiredAt := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	_, zhKey, _ := ed25519.GenerateKey(rand.Reader)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	_, bankKey, _ := ed25519.GenerateKey(rand.Reader)
	subject := testkit.USCC(t, "440400", 1)
	cases := []struct {
		name          string
		status        credit.MemberStatus
		query, answer time.Duration // from the retirement
		signer        ed25519.PrivateKey
		idOf          credit.RegionID // whose receipt id it carries; "": the answerer's
		ok            bool
	}{
		{name: "active", status: credit.StatusActive, query: time.Second, answer: 2 * time.Second, signer: zhKey, ok: true},
		{name: "retired, query before", status: credit.StatusRetired, query: -time.Second, answer: time.Second, signer: zhKey, ok: true},
		// The ledger stamps the retirement with the vote's proposal time;
		// this node asked before the vote committed.
		{name: "retired, query after the retirement's time", status: credit.StatusRetired, query: time.Second, answer: 2 * time.Second, signer: zhKey, ok: true},
		{name: "retired, beyond the window", status: credit.StatusRetired, query: -time.Second, answer: credit.QueryWindow, signer: zhKey},
		{name: "retired, another key", status: credit.StatusRetired, query: -time.Second, answer: time.Second, signer: otherKey},
		// Signed by the answerer, but with another region's id for the
		// query: the home keeps a query's receipts under one id, which
		// such a receipt could overwrite.
		{name: "active, another region's receipt id", status: credit.StatusActive, query: time.Second, answer: 2 * time.Second, signer: zhKey, idOf: "440100"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := NewView(nil, nil, time.Minute, func() time.Time { return retiredAt }, slog.New(slog.NewTextHandler(io.Discard, nil)))
			v.regions["440400"] = credit.RegionMember{ID: "440400", PubKey: zhKey.Public().(ed25519.PublicKey), Status: c.status, UpdatedAt: retiredAt}
			n := &Node{cfg: Config{Region: "440300"}, view: v}
			q := &credit.Query{Version: 1, Bank: "bank-a", Subject: subject, Categories: []credit.Category{credit.Tax},
				Purpose: credit.PurposeLoanApplication, ConsentID: "consent-1", Nonce: "n-000000000001", Time: retiredAt.Add(c.query)}
			if err := q.Sign(bankKey); err != nil {
				t.Fatal(err)
			}
			qj, qd, err := q.CanonicalAndDigest()
			if err != nil {
				t.Fatal(err)
			}
			idOf := cmp.Or(c.idOf, "440400")
			id, err := credit.ReceiptID(idOf, q)
			if err != nil {
				t.Fatal(err)
			}
			rep := credit.NewReport(subject, nil)
			d := rep.Digest()
			r := credit.Receipt{Version: 1, ID: id, Query: *q, Requester: "440300", Answerer: "440400",
				Categories: rep.Categories(), ReportDigest: d[:], Time: retiredAt.Add(c.answer)}
			if err := r.Sign(c.signer); err != nil {
				t.Fatal(err)
			}
			canon, _, err := n.verifyReceipt(q, qj, qd, "440400", &r, &rep)
			putCanon(canon)
			if c.ok && err != nil {
				t.Fatalf("receipt refused: %v", err)
			}
			if !c.ok && !errors.Is(err, ErrBadReceipt) {
				t.Fatalf("receipt: %v, want ErrBadReceipt", err)
			}
		})
	}
}
