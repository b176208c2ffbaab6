package node

import (
	"context"
	"net/http"

	"github.com/prdcredit/ccnode/credit"
)

// Changing the consortium through this node's admin API: the node's
// ledger identity proposes its own region as a candidate, or votes for a
// candidate or a retirement. The contract counts the votes; the node
// learns the outcome from the member_changed event like every other node.

// ProposeRegion publishes this node's candidate descriptor. It must name
// this node's region: a node speaks only for its own.
func (n *Node) ProposeRegion(ctx context.Context, d credit.RegionMember) (credit.RegionProposal, error) {
	if d.ID != n.cfg.Region {
		return credit.RegionProposal{}, invalid("descriptor names region %s; this node is region %s and may propose only itself", credit.Quote(string(d.ID)), n.cfg.Region)
	}
	p, err := n.deps.Ledger.ProposeRegion(ctx, d)
	if err != nil {
		return p, err
	}
	n.log.Info("region proposed", "region", d.ID, "needed", p.Needed)
	return p, nil
}

// ApproveRegion is this region's vote for candidate id.
func (n *Node) ApproveRegion(ctx context.Context, id credit.RegionID) (credit.RegionVote, error) {
	if err := credit.ValidateRegionID(id); err != nil {
		return credit.RegionVote{}, invalid("%v", err)
	}
	if err := n.mayVote(); err != nil {
		return credit.RegionVote{}, err
	}
	v, err := n.deps.Ledger.ApproveRegion(ctx, id)
	if err != nil {
		return v, err
	}
	n.log.Info("region join approved", "region", id, "counted", v.Counted, "detail", v.Detail)
	return v, nil
}

// RetireRegion is this region's vote to retire id.
func (n *Node) RetireRegion(ctx context.Context, id credit.RegionID) (credit.RegionVote, error) {
	if err := credit.ValidateRegionID(id); err != nil {
		return credit.RegionVote{}, invalid("%v", err)
	}
	if err := n.mayVote(); err != nil {
		return credit.RegionVote{}, err
	}
	v, err := n.deps.Ledger.RetireRegion(ctx, id)
	if err != nil {
		return v, err
	}
	n.log.Info("region retirement voted", "region", id, "counted", v.Counted, "detail", v.Detail)
	return v, nil
}

// mayVote refuses a vote the contract would refuse anyway, in the
// operator's terms rather than the ledger's identity check: only an
// active region votes.
func (n *Node) mayVote() error {
	if n.cand.waiting.Load() {
		return credit.Refuse(credit.CodeDenied,
			"region %s is a candidate awaiting approval and cannot vote until accepted; the active regions' operators approve it with 'ccnode region approve'", n.cfg.Region)
	}
	if rec, ok := n.view.Region(n.cfg.Region); ok && rec.Status == credit.StatusRetired {
		return credit.Refuse(credit.CodeDenied, "region %s was retired from the consortium and no longer votes", n.cfg.Region)
	}
	return nil
}

func (n *Node) handleProposeRegion(w http.ResponseWriter, r *http.Request) {
	var d credit.RegionMember
	if err := decode(r, &d); err != nil {
		n.fail(w, err)
		return
	}
	noteTarget(r, "region "+string(d.ID))
	p, err := n.ProposeRegion(r.Context(), d)
	if err != nil {
		n.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (n *Node) handleApproveRegion(w http.ResponseWriter, r *http.Request) {
	v, err := n.ApproveRegion(r.Context(), credit.RegionID(r.PathValue("id")))
	if err != nil {
		n.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (n *Node) handleRetireRegion(w http.ResponseWriter, r *http.Request) {
	v, err := n.RetireRegion(r.Context(), credit.RegionID(r.PathValue("id")))
	if err != nil {
		n.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}
