package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/internal/atomicfile"
	"github.com/prdcredit/ccnode/node"
)

func consortiumCommand() *cli.Command {
	return &cli.Command{
		Name:  "consortium",
		Usage: "compose a consortium from its members' descriptors; write its region keys for banks",
		Subcommands: []*cli.Command{{
			Name:      "bootstrap",
			Usage:     "compose the bootstrap file of a new ledger from the regions' member descriptors",
			ArgsUsage: "MEMBER.json...",
			Description: "Reads each region's member descriptor (DATA_DIR/member.json, written by 'ccnode init')\n" +
				"and each bank's (--bank, written by 'ccnode bank keygen --id --region'), checks each\n" +
				"one and the set — one p2p.network_id; no region, MSP id or node key twice; no\n" +
				"division prefix claimed by two regions; every bank's home region among them — and\n" +
				"writes the bootstrap file ledger.bootstrap_file names: the node that runs the\n" +
				"embedded ledger starts a new ledger with these members. Errors name the file and field.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true, Category: catOutput,
					Usage: "write the bootstrap file here (refuses to overwrite one)"},
				&cli.StringSliceFlag{Name: "bank", Category: catData,
					Usage: "a bank's descriptor (bank.json), for banks the ledger starts with; repeat for several"},
			},
			Action: runConsortiumBootstrap,
		}, regionKeysCommand()},
	}
}

func runConsortiumBootstrap(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("consortium bootstrap: give each region's member descriptor (DATA_DIR/member.json of 'ccnode init')")
	}
	var members []node.NamedMember
	for _, p := range c.Args().Slice() {
		var d node.MemberDescriptor
		if err := node.ReadDescriptor(p, &d); err != nil {
			return fmt.Errorf("consortium bootstrap: %w", err)
		}
		members = append(members, node.NamedMember{File: p, MemberDescriptor: d})
	}
	var banks []node.NamedBank
	for _, p := range c.StringSlice("bank") {
		var d node.BankDescriptor
		if err := node.ReadDescriptor(p, &d); err != nil {
			return fmt.Errorf("consortium bootstrap: --bank: %w", err)
		}
		banks = append(banks, node.NamedBank{File: p, BankDescriptor: d})
	}
	f, err := node.ComposeBootstrap(members, banks)
	if err != nil {
		return fmt.Errorf("consortium bootstrap: %w", err)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	out := c.String("out")
	if err := atomicfile.WriteNew(out, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("consortium bootstrap: %w", err)
	}
	var regions []string
	for _, r := range f.Regions {
		regions = append(regions, fmt.Sprintf("%s (%s)", r.ID, strings.Join(r.Divisions, ",")))
	}
	fmt.Fprintf(c.App.Writer, "bootstrap file %s: %d regions %s, %d banks\n"+
		"Name it in ledger.bootstrap_file of the node that runs the embedded ledger (ledger.embedded_dir); a new ledger starts with these members.\n",
		out, len(f.Regions), strings.Join(regions, " "), len(f.Banks))
	return nil
}
