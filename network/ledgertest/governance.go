package ledgertest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// freeDivision is a division prefix no harness region serves.
func freeDivision(h Harness) string {
	for _, d := range []string{"4419", "4420", "4499", "4599"} {
		if !slices.ContainsFunc(h.Regions, func(r Region) bool {
			return slices.ContainsFunc(r.Member.Divisions, func(p string) bool {
				return strings.HasPrefix(d, p) || strings.HasPrefix(p, d)
			})
		}) {
			return d
		}
	}
	return "4699"
}

// wantVote checks a vote's outcome: wantVote(t, ...)(l.ApproveRegion(...)).
func wantVote(t *testing.T, counted bool, status string, what string) func(credit.RegionVote, error) credit.RegionVote {
	return func(v credit.RegionVote, err error) credit.RegionVote {
		t.Helper()
		return checkVote(t, v, err, counted, status, what)
	}
}

func checkVote(t *testing.T, v credit.RegionVote, err error, counted bool, status string, what string) credit.RegionVote {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if v.Counted != counted || v.Proposal.Status != status || v.Detail == "" {
		t.Fatalf("%s: counted %v, status %s (%s), want counted %v, status %s", what, v.Counted, v.Proposal.Status, v.Detail, counted, status)
	}
	return v
}

// testGovernance runs last: the candidate's identity proposes itself as a
// candidate region, which joins at a majority of the three active regions
// (two votes), anchors a checkpoint, and is retired at a majority of the
// four (three votes). It leaves the candidate a
// retired region, which every write but the anchoring of its own log
// refuses.
func testGovernance(ctx context.Context, t *testing.T, h Harness) {
	o := h.Candidate
	a, b, c := h.Regions[0], h.Regions[1], h.Regions[2]
	cand, key := NewRegion(credit.RegionID(uniq("dg")), "Dongguan", o.Identity(), freeDivision(h))
	cr := Region{Member: cand, Key: key, Ledger: o}
	start, err := a.Ledger.Regions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	active := 0
	for _, r := range start {
		if r.Status == credit.StatusActive {
			active++
		}
	}
	if active != len(h.Regions) {
		t.Fatalf("%d active regions before the vote, want the harness's %d", active, len(h.Regions))
	}
	// The stream from here must carry every step.
	from := lastPosition(ctx, t, h, a.Ledger)

	t.Run("refusals before joining", func(t *testing.T) {
		other := cand
		other.MSPID = a.Member.MSPID
		_, err := o.ProposeRegion(ctx, other)
		wantKind(t, err, network.ErrDenied, "proposing a descriptor of another MSP")
		overlap := cand
		overlap.Divisions = []string{a.Member.Divisions[0]}
		_, err = o.ProposeRegion(ctx, overlap)
		wantKind(t, err, network.ErrConflict, "a candidate whose divisions overlap an active region")
		_, err = a.Ledger.ApproveRegion(ctx, cand.ID)
		wantKind(t, err, network.ErrNotFound, "approving a candidate that was never proposed")
		_, err = o.ApproveRegion(ctx, a.Member.ID)
		wantKind(t, err, network.ErrDenied, "an approval by an identity that is no region")
		if h.Outsider != nil && h.Outsider != o {
			_, err = h.Outsider.RetireRegion(ctx, a.Member.ID)
			wantKind(t, err, network.ErrDenied, "a retirement vote by an identity that is no region")
		}
	})

	t.Run("join at a majority of three", func(t *testing.T) {
		p, err := o.ProposeRegion(ctx, cand)
		if err != nil {
			t.Fatalf("propose: %v", err)
		}
		if p.Status != credit.ProposalOpen || p.Needed != 2 || len(p.Approvals) != 0 || p.ProposedBy != o.Identity() {
			t.Fatalf("proposal: %+v", p)
		}
		if again, err := o.ProposeRegion(ctx, cand); err != nil || again.Status != credit.ProposalOpen {
			t.Fatalf("proposing the same descriptor again: %+v, %v", again, err)
		}
		changed := cand
		changed.Addrs = []string{"/ip4/127.0.0.1/tcp/4999"}
		_, err = o.ProposeRegion(ctx, changed)
		wantKind(t, err, network.ErrConflict, "a second proposal with another descriptor")

		v := wantVote(t, true, credit.ProposalOpen, "first approval")(a.Ledger.ApproveRegion(ctx, cand.ID))
		if len(v.Proposal.Approvals) != 1 || v.Proposal.Approvals[0].Region != a.Member.ID {
			t.Fatalf("approvals after one vote: %+v", v.Proposal.Approvals)
		}
		// Idempotent: the same region again is not a second vote.
		eventually(t, h, "the first approval committed", func() error {
			v, err := a.Ledger.ApproveRegion(ctx, cand.ID)
			if err == nil && (v.Counted || !strings.Contains(v.Detail, "already approved")) {
				err = fmt.Errorf("second approval by %s: %+v", a.Member.ID, v)
			}
			return err
		})
		if r, err := b.Ledger.Region(ctx, cand.ID); err == nil {
			t.Fatalf("candidate active after one approval of three regions: %+v", r)
		}
		// The candidate cannot act as a region before it is one.
		err = o.RecordConsent(ctx, commitment(uniq("early"), cand.ID, time.Now().Add(-time.Minute)))
		wantKind(t, err, network.ErrDenied, "a consent recorded by a candidate")

		v = wantVote(t, true, credit.ProposalAccepted, "second approval")(b.Ledger.ApproveRegion(ctx, cand.ID))
		if v.Proposal.DecidedAt == nil || v.Proposal.Region.Status != credit.StatusActive {
			t.Fatalf("decided proposal: %+v", v.Proposal)
		}
		eventually(t, h, "the new region visible to a third region", func() error {
			r, err := c.Ledger.Region(ctx, cand.ID)
			if err == nil && (r.Status != credit.StatusActive || r.UpdatedAt.IsZero() || string(r.PubKey) != string(cand.PubKey)) {
				err = fmt.Errorf("region %s: %+v", cand.ID, r)
			}
			return err
		})
		// A vote after the decision is no vote.
		wantVote(t, false, credit.ProposalAccepted, "an approval after acceptance")(c.Ledger.ApproveRegion(ctx, cand.ID))
		_, err = o.ProposeRegion(ctx, cand)
		wantKind(t, err, network.ErrConflict, "proposing a region that is a member")
	})

	// The new region signs as a region: its checkpoint is checked against
	// its ledger key now and after it retires.
	root := sha256.Sum256([]byte(cand.ID))
	var anchored credit.AnchoredCheckpoint
	t.Run("the joined region anchors", func(t *testing.T) {
		var err error
		if anchored, err = o.AnchorCheckpoint(ctx, signed(t, cr, 1, root[:]), nil); err != nil {
			t.Fatalf("anchor by the joined region: %v", err)
		}
	})

	t.Run("retire at a majority of four", func(t *testing.T) {
		_, err := a.Ledger.RetireRegion(ctx, credit.RegionID(uniq("nobody")))
		wantKind(t, err, network.ErrNotFound, "retiring an unknown region")
		v := wantVote(t, true, credit.ProposalOpen, "first retirement vote")(a.Ledger.RetireRegion(ctx, cand.ID))
		if v.Proposal.Needed != 3 || v.Proposal.Kind != credit.ProposalRetire {
			t.Fatalf("retirement proposal among four regions: %+v", v.Proposal)
		}
		eventually(t, h, "the first retirement vote committed", func() error {
			v, err := a.Ledger.RetireRegion(ctx, cand.ID)
			if err == nil && v.Counted {
				err = fmt.Errorf("second retirement vote by %s counted: %+v", a.Member.ID, v)
			}
			return err
		})
		wantVote(t, true, credit.ProposalOpen, "second retirement vote")(b.Ledger.RetireRegion(ctx, cand.ID))
		if r, err := c.Ledger.Region(ctx, cand.ID); err != nil || r.Status != credit.StatusActive {
			t.Fatalf("region after two of three votes: %+v, %v", r, err)
		}
		v = wantVote(t, true, credit.ProposalAccepted, "third retirement vote")(c.Ledger.RetireRegion(ctx, cand.ID))
		if v.Proposal.Region.Status != credit.StatusRetired {
			t.Fatalf("decided retirement: %+v", v.Proposal)
		}
		eventually(t, h, "the region retired for every reader", func() error {
			r, err := a.Ledger.Region(ctx, cand.ID)
			if err == nil && (r.Status != credit.StatusRetired || !r.UpdatedAt.After(anchored.AnchoredAt) && !r.UpdatedAt.Equal(anchored.AnchoredAt)) {
				err = fmt.Errorf("region %s: %+v", cand.ID, r)
			}
			return err
		})
		wantVote(t, false, credit.ProposalAccepted, "retiring a retired region")(a.Ledger.RetireRegion(ctx, cand.ID))
	})

	t.Run("a retired region is cut off but anchors its log", func(t *testing.T) {
		// Its log's receipts of before the retirement stay provable: it
		// anchors the rest of its log, with a consistency proof as before.
		leaf2 := sha256.Sum256([]byte("after"))
		root2 := rfc6962.DefaultHasher.HashChildren(root[:], leaf2[:])
		if _, err := o.AnchorCheckpoint(ctx, signed(t, cr, 2, root2), [][]byte{leaf2[:]}); err != nil {
			t.Fatalf("a retired region anchoring the rest of its log: %v", err)
		}
		err := o.RecordConsent(ctx, commitment(uniq("late"), cand.ID, time.Now().Add(-time.Minute)))
		wantKind(t, err, network.ErrDenied, "a consent recorded by a retired region")
		err = o.RegisterBank(ctx, credit.BankMember{ID: credit.BankID(uniq("bank-late")), Name: "Late", Region: cand.ID, PubKey: cand.PubKey})
		wantKind(t, err, network.ErrDenied, "a bank registered by a retired region")
		auth, _ := NewAuthority(t, uniq("late-authority"), cand.ID, cand.Divisions...)
		wantKind(t, o.RegisterAuthority(ctx, auth), network.ErrDenied, "an authority registered by a retired region")
		other, _ := NewRegion(credit.RegionID(uniq("zz")), "Other", "OTHERMSP", "4698")
		_, err = o.ProposeRegion(ctx, other)
		wantKind(t, err, network.ErrDenied, "a retired region proposing another's descriptor")
		_, err = o.ApproveRegion(ctx, cand.ID)
		wantKind(t, err, network.ErrDenied, "an approval by a retired region")
		_, err = o.RetireRegion(ctx, a.Member.ID)
		wantKind(t, err, network.ErrDenied, "a retirement vote by a retired region")
		// What it signed before stays verifiable: the checkpoint and the
		// key that signed it are still on the ledger.
		hist, err := a.Ledger.CheckpointHistory(ctx, cand.ID)
		if err != nil || len(hist) != 2 {
			t.Fatalf("history of the retired region: %v, %v", hist, err)
		}
		r, err := a.Ledger.Region(ctx, cand.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := hist[0].Verify(r.PubKey); err != nil {
			t.Fatalf("the retired region's checkpoint no longer verifies: %v", err)
		}
	})

	t.Run("events", func(t *testing.T) {
		evs := collectUntil(ctx, t, h, b.Ledger, from, func(ev network.Event) bool {
			return ev.Kind == network.EventMemberChanged && ev.Region != nil && ev.Region.ID == cand.ID && ev.Region.Status == credit.StatusRetired
		})
		var kinds []string
		for _, ev := range evs {
			if ev.Proposal == nil || ev.Proposal.Region.ID != cand.ID {
				continue
			}
			kinds = append(kinds, fmt.Sprintf("%s:%s:%s", ev.Kind, ev.Proposal.Kind, ev.Proposal.Status))
			if ev.Time.IsZero() {
				t.Errorf("event %s without a time", ev.Kind)
			}
		}
		want := []string{
			"region_proposed:join:open", "region_approved:join:open", "member_changed:join:accepted",
			"region_approved:retire:open", "region_approved:retire:open", "member_changed:retire:accepted",
		}
		if !slices.Equal(kinds, want) {
			t.Fatalf("governance events:\n got %v\nwant %v", kinds, want)
		}
	})
}

// lastPosition is the position of the ledger's latest event, read from the
// stream up to a fresh marker consent.
func lastPosition(ctx context.Context, t *testing.T, h Harness, l network.Ledger) network.Position {
	t.Helper()
	return h.Regions[0].marker(ctx, t, h, l)
}

func (r Region) marker(ctx context.Context, t *testing.T, h Harness, l network.Ledger) network.Position {
	t.Helper()
	id := uniq("marker")
	if err := r.Ledger.RecordConsent(ctx, commitment(id, r.Member.ID, time.Now().Add(-time.Minute))); err != nil {
		t.Fatalf("marker consent: %v", err)
	}
	evs := collect(ctx, t, h, l, network.Position{}, id)
	return evs[len(evs)-1].Position
}

// collectUntil reads the stream from `from` until done holds for an event.
func collectUntil(ctx context.Context, t *testing.T, h Harness, l network.Ledger, from network.Position, done func(network.Event) bool) []network.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, h.EventWait)
	defer cancel()
	ch, err := l.Subscribe(ctx, from)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	var out []network.Event
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("event stream closed after %d events", len(out))
			}
			out = append(out, ev)
			if done(ev) {
				return out
			}
		case <-ctx.Done():
			t.Fatalf("stream ended within %s after %d events without the awaited one", h.EventWait, len(out))
		}
	}
}
