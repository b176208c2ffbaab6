package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/network/fabricnet"
)

func fabricAddRegionCommand() *cli.Command {
	return &cli.Command{
		Name:  "add-region",
		Usage: "add a region's organisation to the running network: a channel update signed by a majority of the regions' admins, its peer, its contract",
		Description: "Generates the region's crypto material, changes the channel configuration through Fabric's own\n" +
			"governance (the new organisation and its anchor peer; Admins, LifecycleEndorsement and Endorsement\n" +
			"become a majority of all regions), signed by a majority of the existing regions' admins; starts\n" +
			"its peer, joins it to the channel, installs and approves the contract for it and writes\n" +
			"<dir>/connection/<region>.yaml. The ledger's membership is a separate step: a majority of the\n" +
			"regions accept the new region's node (ccnode region propose, then approve).",
		Flags: []cli.Flag{
			fabricDirFlag(),
			&cli.StringFlag{Name: "region", Required: true, Category: catLedger,
				Usage: "the new region: a Pearl River Delta city's name or id (441900, dongguan), or id:name:MSPID"},
			&cli.StringFlag{Name: "chaincode-server", Category: catLedger,
				Usage: "binary serving the contract for the new region (default: this ccnode binary, as `up` runs it)"},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "give up after this long"},
		},
		Action: fabricAddRegion,
	}
}

func fabricAddRegion(c *cli.Context) error {
	regions, err := fabricnet.ParseRegions(c.String("region"))
	if err != nil {
		return fmt.Errorf("--region: %w", err)
	}
	if len(regions) != 1 {
		return fmt.Errorf("--region %q names %d regions: add one at a time, each with its own channel update", c.String("region"), len(regions))
	}
	r := regions[0]
	dir := c.String("dir")
	n, err := fabricnet.Load(dir)
	if err != nil {
		return fmt.Errorf("%w (start one with `ccnode fabric up --dir %s`)", err, dir)
	}
	if err := n.CheckAddRegion(r); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	log, err := newLogger(c, slog.LevelInfo)
	if err != nil {
		return err
	}
	ac := fabricnet.AddRegionConfig{Logger: log}
	if ac.Server, ac.Args, err = chaincodeServerFlag(c); err != nil {
		return err
	}
	before, err := n.ChannelPolicies(ctx)
	if err != nil {
		return fmt.Errorf("fabric add-region: reading the channel's policies: %w", err)
	}
	fmt.Printf("Channel %s policies before adding %s (%s, %s):\n", n.Channel, r.ID, r.Name, r.MSPID)
	printPolicies(os.Stdout, before)
	start := time.Now()
	n, err = fabricnet.AddRegion(ctx, dir, r, ac)
	if err != nil {
		return err
	}
	after, err := n.ChannelPolicies(ctx)
	if err != nil {
		return err
	}
	g := n.Gateways[r.ID]
	conn := filepath.Join(fabricnet.ConnectionDir(dir), string(r.ID)+".yaml")
	fmt.Printf("Region %s (%s, %s) added in %s: peer %s, chaincode server %s\n", r.ID, r.Name, r.MSPID,
		time.Since(start).Round(100*time.Millisecond), g.Endpoint, n.Peers[r.ID].ChaincodeServer)
	fmt.Printf("Channel %s policies after:\n", n.Channel)
	printPolicies(os.Stdout, after)
	fmt.Printf("Connection file: %s\n", conn)
	fmt.Printf("Its node: ccnode init --region %s --fabric-gateway %s; the regions then accept it on the ledger (ccnode region propose, approve)\n", r.ID, conn)
	return nil
}

func printPolicies(w io.Writer, ps []fabricnet.Policy) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, p := range ps {
		fmt.Fprintf(tw, "  %s\t%s\n", p.Name, p.Rule)
	}
	tw.Flush()
}
