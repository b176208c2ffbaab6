package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node"
)

// regionCommand changes the consortium's member regions through the
// node's admin API: each subcommand is one ledger transaction signed by
// the node's ledger identity, and the contract counts the votes.
func regionCommand() *cli.Command {
	vote := func(name, usage string, run func(c *cli.Context, id credit.RegionID) (*credit.RegionVote, error)) *cli.Command {
		return &cli.Command{
			Name: name, Usage: usage, ArgsUsage: "REGION-ID",
			Flags: append([]cli.Flag{}, adminFlags...),
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					// urfave/cli stops reading flags at the first argument.
					return fmt.Errorf("region %s: give exactly one region id, after the flags (ccnode region %s --admin URL --operator-token-file FILE 441900); got %q",
						name, name, c.Args().Slice())
				}
				id := credit.RegionID(c.Args().First())
				if err := credit.ValidateRegionID(id); err != nil {
					return fmt.Errorf("region %s: %w", name, err)
				}
				v, err := run(c, id)
				if err != nil {
					return fmt.Errorf("region %s %s: %w", name, id, err)
				}
				if !v.Counted {
					fmt.Fprintf(c.App.ErrWriter, "not counted: %s\n", v.Detail)
				}
				return printJSON(c, v)
			},
		}
	}
	return &cli.Command{
		Name:  "region",
		Usage: "join and retire member regions by a majority of the active regions (admin)",
		Description: "A candidate's node proposes its own member descriptor; each active region's node approves\n" +
			"it; at a majority of the active regions (more than half) the candidate is active and every\n" +
			"node admits its peer. Retiring a region is the same vote, one 'retire' per region.",
		Subcommands: []*cli.Command{
			{
				Name:  "propose",
				Usage: "publish this node's candidate member descriptor for the active regions' vote",
				Flags: append(append([]cli.Flag{}, adminFlags...),
					&cli.StringFlag{Name: "descriptor", Required: true, Category: catData,
						Usage: "the region's member descriptor: DATA_DIR/member.json of 'ccnode init', or a ledger record's JSON"}),
				Action: func(c *cli.Context) error {
					d, err := readDescriptor(c.String("descriptor"))
					if err != nil {
						return err
					}
					cl, err := adminClient(c)
					if err != nil {
						return err
					}
					p, err := cl.ProposeRegion(c.Context, d)
					if err != nil {
						return fmt.Errorf("region propose %s: %w", d.ID, err)
					}
					return printJSON(c, p)
				},
			},
			vote("approve", "vote for a candidate region to join", func(c *cli.Context, id credit.RegionID) (*credit.RegionVote, error) {
				cl, err := adminClient(c)
				if err != nil {
					return nil, err
				}
				return cl.ApproveRegion(c.Context, id)
			}),
			vote("retire", "vote for a member region to retire", func(c *cli.Context, id credit.RegionID) (*credit.RegionVote, error) {
				cl, err := adminClient(c)
				if err != nil {
					return nil, err
				}
				return cl.RetireRegion(c.Context, id)
			}),
		},
	}
}

// readDescriptor reads a member descriptor file: the DATA_DIR/member.json
// 'ccnode init' writes (format ccnode-member/1), or a ledger record
// (credit.RegionMember JSON). Fields neither has are refused (a typo would
// otherwise vanish).
func readDescriptor(path string) (credit.RegionMember, error) {
	var d credit.RegionMember
	b, err := os.ReadFile(path)
	if err != nil {
		return d, fmt.Errorf("--descriptor: %w", err)
	}
	var probe struct {
		Format string `json:"format"`
	}
	_ = json.Unmarshal(b, &probe)
	if probe.Format != "" {
		var md node.MemberDescriptor
		if err := node.ReadDescriptor(path, &md); err != nil {
			return d, fmt.Errorf("--descriptor: %w", err)
		}
		if err := md.Validate(); err != nil {
			return d, fmt.Errorf("--descriptor %s: %w", path, err)
		}
		return credit.RegionMember{ID: md.Region, Name: md.Name, Divisions: md.Divisions, MSPID: md.MSPID,
			PeerID: md.PeerID, Addrs: md.Addrs, PubKey: md.PubKey, Status: credit.StatusActive}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return d, fmt.Errorf("--descriptor %s: not a region member descriptor: %w", path, err)
	}
	if d.ID == "" || len(d.PubKey) == 0 || d.MSPID == "" || d.PeerID == "" || len(d.Divisions) == 0 {
		return d, fmt.Errorf("--descriptor %s: id, divisions, msp_id, peer_id and pub_key are required", path)
	}
	return d, nil
}
