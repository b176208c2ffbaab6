package node

import (
	"context"
	"net/url"

	"github.com/prdcredit/ccnode/credit"
)

// ProposeRegion posts this node's candidate descriptor (admin).
func (c *Client) ProposeRegion(ctx context.Context, d credit.RegionMember) (*credit.RegionProposal, error) {
	var out credit.RegionProposal
	if err := c.admin(ctx, "POST", "/v1/regions/proposals", d, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ApproveRegion votes for candidate id (admin).
func (c *Client) ApproveRegion(ctx context.Context, id credit.RegionID) (*credit.RegionVote, error) {
	var out credit.RegionVote
	if err := c.admin(ctx, "POST", "/v1/regions/"+url.PathEscape(string(id))+"/approve", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RetireRegion votes to retire region id (admin).
func (c *Client) RetireRegion(ctx context.Context, id credit.RegionID) (*credit.RegionVote, error) {
	var out credit.RegionVote
	if err := c.admin(ctx, "POST", "/v1/regions/"+url.PathEscape(string(id))+"/retire", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
