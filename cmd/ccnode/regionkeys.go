package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/atomicfile"
	"github.com/prdcredit/ccnode/node/audit"
)

// regionKey is one region of a region-keys file: the shape of a ledger
// record's key fields, which bankclient.LoadTrust and the Python client
// read.
type regionKey struct {
	ID       credit.RegionID     `json:"id"`
	Name     string              `json:"name,omitempty"`
	Status   credit.MemberStatus `json:"status"`
	PubKey   []byte              `json:"pub_key"`
	PastKeys []credit.PastKey    `json:"past_keys,omitempty"`
}

// regionKeysCommand writes the file banks verify receipts with, from the
// ledger as a running node's admin API reads it: the operator hands it to
// banks (they hold no operator token, and a key list fetched from the node
// being verified would vouch for itself).
func regionKeysCommand() *cli.Command {
	return &cli.Command{
		Name:  "region-keys",
		Usage: "write each region's current and past keys, for banks' --region-keys (admin)",
		Description: "Reads the member regions' ledger records through a running node's admin API and writes\n" +
			"{\"regions\": [{\"id\", \"status\", \"pub_key\", \"past_keys\": [{\"pub_key\", \"until\"}]}]}:\n" +
			"each region's key now and, after key rotations, each earlier key with the time the ledger\n" +
			"replaced it, so that receipts signed before a rotation still verify. Retired regions are\n" +
			"listed too: what they signed stays verifiable. Run it again after a rotation or a join.",
		Flags: append(append([]cli.Flag{}, adminFlags...),
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true, Category: catOutput,
				Usage: "write the region-keys file here (replaced if it exists)"},
			&cli.DurationFlag{Name: "ledger-timeout", Value: 2 * time.Minute, Category: catLedger,
				Usage: "how long the node may take to read the ledger"}),
		Action: func(c *cli.Context) error {
			cl, err := adminClient(c)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := cl.LedgerSnapshot(c.Context, 500*time.Millisecond, c.Duration("ledger-timeout"), &buf); err != nil {
				return fmt.Errorf("consortium region-keys: reading the ledger through %s: %w", c.String("admin"), err)
			}
			snap, err := audit.ReadSnapshot(&buf)
			if err != nil {
				return fmt.Errorf("consortium region-keys: the node's ledger snapshot: %w", err)
			}
			out := struct {
				Regions []regionKey `json:"regions"`
			}{Regions: []regionKey{}}
			for id, versions := range snap.RegionVersions {
				if len(versions) == 0 {
					continue
				}
				m := versions[len(versions)-1]
				out.Regions = append(out.Regions, regionKey{ID: id, Name: m.Name, Status: m.Status, PubKey: m.PubKey, PastKeys: m.PastKeys})
			}
			if len(out.Regions) == 0 {
				return fmt.Errorf("consortium region-keys: the ledger behind %s lists no region", c.String("admin"))
			}
			slices.SortFunc(out.Regions, func(a, b regionKey) int { return strings.Compare(string(a.ID), string(b.ID)) })
			b, err := json.MarshalIndent(out, "", "  ")
			if err != nil {
				return err
			}
			if err := atomicfile.ReplaceBytes(c.String("out"), append(b, '\n'), 0o644); err != nil {
				return fmt.Errorf("consortium region-keys: %w", err)
			}
			if !quiet(c) {
				fmt.Fprintf(c.App.ErrWriter, "%d regions' keys written to %s\n", len(out.Regions), c.String("out"))
			}
			return nil
		},
	}
}
