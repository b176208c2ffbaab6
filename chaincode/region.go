package chaincode

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// Changing the consortium's member regions. A candidate publishes its own
// member descriptor (ProposeRegion, signed by the candidate's MSP); the
// active regions approve it (ApproveRegion), and at a majority of them the
// candidate becomes an active region. Retiring a region is the same vote
// (RetireRegion, one per approving region; the first opens the proposal).
// A retired region keeps its record and its key history, so what it signed
// before stays verifiable; callerRegion refuses everything it would sign
// from then on.

// Event names of the votes; the vote that decides a proposal emits
// member_changed with the changed region, which nodes already follow.
const (
	EventRegionProposed = "region_proposed"
	EventRegionApproved = "region_approved"
)

const prefixProposal = "proposal/"

func proposalKey(kind string, id credit.RegionID) string {
	return prefixProposal + kind + "/" + string(id)
}

// activeRegions lists the active member regions.
func (c Contract) activeRegions(ctx TxContext) ([]credit.RegionMember, error) {
	all, err := c.GetRegions(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(r credit.RegionMember) bool { return r.Status != credit.StatusActive }), nil
}

// checkJoinable refuses a candidate whose id or MSP id is already a
// region's, or whose divisions overlap an active region's.
func (c Contract) checkJoinable(ctx TxContext, r credit.RegionMember) error {
	all, err := c.GetRegions(ctx)
	if err != nil {
		return err
	}
	divs := []credit.Region{{ID: r.ID, Divisions: r.Divisions}}
	for _, o := range all {
		if o.ID == r.ID {
			return errorf(CodeConflict, "region %s is already a member (%s since %s)", r.ID, o.Status, o.UpdatedAt.Format(time.RFC3339))
		}
		if o.MSPID == r.MSPID {
			return errorf(CodeConflict, "MSP %s is already region %s's", r.MSPID, o.ID)
		}
		if err := identityOf(o, r); err != nil {
			return err
		}
		if o.Status == credit.StatusActive {
			divs = append(divs, credit.Region{ID: o.ID, Divisions: o.Divisions})
		}
	}
	if _, err := credit.NewRegionMap(divs); err != nil {
		return errorf(CodeConflict, "candidate %s: divisions overlap an active region: %v", r.ID, err)
	}
	return nil
}

// identityOf refuses r, a region's new or changed record, when it names
// region o's peer id or a node key o holds or held: every node would then
// send o's peer the requests meant for r, and o's receipts would verify as
// r's.
func identityOf(o, r credit.RegionMember) error {
	if o.ID == r.ID {
		return nil
	}
	if o.PeerID == r.PeerID {
		return errorf(CodeConflict, "region %s: peer id %s is region %s's", r.ID, r.PeerID, o.ID)
	}
	if bytes.Equal(o.PubKey, r.PubKey) || slices.ContainsFunc(o.PastKeys, func(k credit.PastKey) bool { return bytes.Equal(k.PubKey, r.PubKey) }) {
		return errorf(CodeConflict, "region %s: the node key is (or was) region %s's", r.ID, o.ID)
	}
	return nil
}

func sameDescriptor(a, b credit.RegionMember) bool {
	return a.ID == b.ID && a.Name == b.Name && a.MSPID == b.MSPID && a.PeerID == b.PeerID &&
		slices.Equal(a.Divisions, b.Divisions) && slices.Equal(a.Addrs, b.Addrs) && string(a.PubKey) == string(b.PubKey)
}

// ProposeRegion publishes a candidate region's member descriptor for the
// active regions' vote. The caller must be the candidate's own MSP: a
// region's descriptor is its own statement. Proposing the identical
// descriptor again returns the open proposal.
func (c Contract) ProposeRegion(ctx TxContext, memberJSON string) (credit.RegionProposal, error) {
	var none credit.RegionProposal
	r, err := decodeArg[credit.RegionMember](memberJSON, "region descriptor")
	if err != nil {
		return none, err
	}
	r.Status, r.UpdatedAt = credit.StatusActive, time.Time{}
	if err := validateRegion(r); err != nil {
		return none, err
	}
	msp, err := ctx.MSPID()
	if err != nil {
		return none, errorf(CodeDenied, "caller identity: %v", err)
	}
	if msp != r.MSPID {
		return none, errorf(CodeDenied, "MSP %s may propose only its own region, not %s of MSP %s", msp, r.ID, r.MSPID)
	}
	if err := c.checkJoinable(ctx, r); err != nil {
		return none, err
	}
	key := proposalKey(credit.ProposalJoin, r.ID)
	old, ok, err := getJSON[credit.RegionProposal](ctx, key, "proposal")
	if err != nil {
		return none, err
	}
	if ok {
		if sameDescriptor(old.Region, r) {
			return old, nil // a retry of the same proposal
		}
		return none, errorf(CodeConflict, "region %s already has an open proposal with another descriptor", r.ID)
	}
	active, err := c.activeRegions(ctx)
	if err != nil {
		return none, err
	}
	if len(active) == 0 {
		return none, errorf(CodeConflict, "the ledger has no active region to approve %s: bootstrap it first", r.ID)
	}
	now, err := txTime(ctx)
	if err != nil {
		return none, err
	}
	p := credit.RegionProposal{
		Kind: credit.ProposalJoin, Region: r, ProposedBy: msp, ProposedAt: now,
		Approvals: []credit.RegionApproval{}, Needed: credit.Majority(len(active)), Status: credit.ProposalOpen,
	}
	if err := putJSON(ctx, key, p); err != nil {
		return none, err
	}
	return p, emit(ctx, EventRegionProposed, EventPayload{Proposal: &p})
}

// ApproveRegion is the caller region's vote for a candidate's proposal.
// At a majority of the active regions the candidate becomes active.
func (c Contract) ApproveRegion(ctx TxContext, id string) (credit.RegionVote, error) {
	caller, err := c.callerRegion(ctx)
	if err != nil {
		return credit.RegionVote{}, err
	}
	p, ok, err := getJSON[credit.RegionProposal](ctx, proposalKey(credit.ProposalJoin, credit.RegionID(id)), "proposal")
	if err != nil {
		return credit.RegionVote{}, err
	}
	if !ok {
		return credit.RegionVote{}, errorf(CodeNotFound, "no proposal for region %s to join", id)
	}
	return c.vote(ctx, caller, p)
}

// RetireRegion is the caller region's vote to retire region id; the first
// vote opens the proposal. At a majority of the active regions (the one
// retiring included) the region is retired: its record stays, with status
// retired and the time.
func (c Contract) RetireRegion(ctx TxContext, id string) (credit.RegionVote, error) {
	caller, err := c.callerRegion(ctx)
	if err != nil {
		return credit.RegionVote{}, err
	}
	target, err := c.GetRegion(ctx, id)
	if err != nil {
		return credit.RegionVote{}, err
	}
	key := proposalKey(credit.ProposalRetire, target.ID)
	p, ok, err := getJSON[credit.RegionProposal](ctx, key, "proposal")
	if err != nil {
		return credit.RegionVote{}, err
	}
	if target.Status == credit.StatusRetired {
		if !ok { // retired by its own UpdateRegion, before that was refused
			p = credit.RegionProposal{Kind: credit.ProposalRetire, Region: target, Status: credit.ProposalAccepted, DecidedAt: &target.UpdatedAt}
		}
		return credit.RegionVote{Proposal: p, Detail: fmt.Sprintf("region %s is already retired since %s", id, target.UpdatedAt.Format(time.RFC3339))}, nil
	}
	if !ok {
		active, err := c.activeRegions(ctx)
		if err != nil {
			return credit.RegionVote{}, err
		}
		if len(active) == 1 {
			return credit.RegionVote{}, errorf(CodeConflict, "region %s is the last active region: retiring it would leave no consortium", id)
		}
		now, err := txTime(ctx)
		if err != nil {
			return credit.RegionVote{}, err
		}
		p = credit.RegionProposal{
			Kind: credit.ProposalRetire, Region: target, ProposedBy: caller.MSPID, ProposedAt: now,
			Approvals: []credit.RegionApproval{}, Status: credit.ProposalOpen,
		}
	}
	return c.vote(ctx, caller, p)
}

// vote records caller's approval of p and applies p at a majority. Only
// the votes of regions active now count: a region retired after voting no
// longer carries a proposal.
func (c Contract) vote(ctx TxContext, caller credit.RegionMember, p credit.RegionProposal) (credit.RegionVote, error) {
	what := fmt.Sprintf("the proposal for region %s to %s", p.Region.ID, p.Kind)
	if p.Status == credit.ProposalAccepted {
		return credit.RegionVote{Proposal: p, Detail: what + " was already accepted"}, nil
	}
	for _, a := range p.Approvals {
		if a.Region == caller.ID {
			return credit.RegionVote{Proposal: p, Detail: fmt.Sprintf("region %s already approved %s at %s; approving again is not a second vote",
				caller.ID, what, a.At.Format(time.RFC3339))}, nil
		}
	}
	now, err := txTime(ctx)
	if err != nil {
		return credit.RegionVote{}, err
	}
	p.Approvals = append(p.Approvals, credit.RegionApproval{Region: caller.ID, TxID: ctx.TxID(), At: now})
	active, err := c.activeRegions(ctx)
	if err != nil {
		return credit.RegionVote{}, err
	}
	counted := 0
	for _, a := range p.Approvals {
		if slices.ContainsFunc(active, func(r credit.RegionMember) bool { return r.ID == a.Region }) {
			counted++
		}
	}
	p.Needed = credit.Majority(len(active))
	key := proposalKey(p.Kind, p.Region.ID)
	if counted < p.Needed {
		if err := putJSON(ctx, key, p); err != nil {
			return credit.RegionVote{}, err
		}
		v := credit.RegionVote{Proposal: p, Counted: true, Detail: fmt.Sprintf("%d of %d approvals needed", counted, p.Needed)}
		return v, emit(ctx, EventRegionApproved, EventPayload{Proposal: &p})
	}
	r := p.Region
	switch p.Kind {
	case credit.ProposalJoin:
		// The ledger may have changed since the proposal.
		if err := c.checkJoinable(ctx, r); err != nil {
			return credit.RegionVote{}, err
		}
		r.Status = credit.StatusActive
	case credit.ProposalRetire:
		if r, err = c.GetRegion(ctx, string(r.ID)); err != nil {
			return credit.RegionVote{}, err
		}
		r.Status = credit.StatusRetired
	default:
		return credit.RegionVote{}, fmt.Errorf("proposal %s: unknown kind %q", key, p.Kind)
	}
	r.UpdatedAt = now
	p.Status, p.DecidedAt, p.Region = credit.ProposalAccepted, &now, r
	if err := putJSON(ctx, prefixRegion+string(r.ID), r); err != nil {
		return credit.RegionVote{}, err
	}
	if err := putJSON(ctx, key, p); err != nil {
		return credit.RegionVote{}, err
	}
	v := credit.RegionVote{Proposal: p, Counted: true, Detail: fmt.Sprintf("%d of %d approvals: region %s is %s", counted, p.Needed, r.ID, r.Status)}
	return v, emit(ctx, EventMemberChanged, EventPayload{Region: &r, Proposal: &p})
}

// GetRegionProposals lists every join and retirement proposal, open and
// accepted, by kind and region id.
func (Contract) GetRegionProposals(ctx TxContext) ([]credit.RegionProposal, error) {
	return listJSON[credit.RegionProposal](ctx, prefixProposal, "proposal")
}
