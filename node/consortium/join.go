package consortium

import (
	"context"
	"fmt"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node"
)

// AddCandidate opens a region the bootstrap left out and starts its node,
// as an operator joining a running consortium would: it has a ledger
// identity but no member record yet, so its node serves nobody until the
// regions approve it. It returns the region and its member descriptor
// (the node's key, peer id and listening addresses), which the candidate
// proposes through its node's admin API. Not with Options.Mocknet.
func (c *Consortium) AddCandidate(ctx context.Context, spec credit.Region) (*Region, credit.RegionMember, error) {
	if c.mock != nil {
		return nil, credit.RegionMember{}, fmt.Errorf("candidate %s: AddCandidate needs TCP hosts, not the mocknet", spec.ID)
	}
	m, err := c.openRegion(ctx, spec)
	if err != nil {
		return nil, m, err
	}
	r := c.Regions[len(c.Regions)-1]
	if r.Node, err = node.New(ctx, c.config(r), node.Deps{Store: r.Store, Ledger: r.Ledger, Key: r.Key,
		Logger: c.opts.Logger.With("region", string(r.ID)), Operators: c.opts.Operators, Now: c.opts.Now}); err != nil {
		return nil, m, fmt.Errorf("candidate %s: %w", spec.ID, err)
	}
	for _, a := range r.Node.Host().Addrs() {
		m.Addrs = append(m.Addrs, a.String())
	}
	return r, m, nil
}
