package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node"
)

var randRead = rand.Read

func queryCommand() *cli.Command {
	return &cli.Command{
		Name:  "query",
		Usage: "query a subject's consolidated report as a bank",
		Description: "Signs the query with the bank's key and sends it to the bank's home node. Prints\n" +
			"each region's status and records, with the receipt every region signed.",
		Flags: append([]cli.Flag{
			nodeFlag,
			&cli.StringFlag{Name: "bank", Required: true, Category: catData, EnvVars: []string{"CCNODE_BANK"}, Usage: "bank id"},
			&cli.StringFlag{Name: "key", Required: true, Category: catData, EnvVars: []string{"CCNODE_BANK_KEY"}, Usage: "bank's ed25519 key file"},
			&cli.StringFlag{Name: "consent", Required: true, Category: catData, Usage: "countersigned consent document (JSON)"},
			&cli.StringFlag{Name: "uscc", Category: catData, Usage: "subject (default: the consent's)"},
			&cli.StringFlag{Name: "categories", Category: catData, Usage: "comma-separated (default: the consent's)"},
			&cli.StringFlag{Name: "purpose", Category: catData, Usage: "purpose (default: the consent's)"},
			&cli.BoolFlag{Name: "json", Category: catOutput, EnvVars: []string{"CCNODE_JSON"}, Usage: "print the whole answer as JSON"},
		}, tlsFlags...),
		Action: runQuery,
	}
}

func runQuery(c *cli.Context) error {
	key, err := node.LoadKeyFile(c.String("key"))
	if err != nil {
		return err
	}
	b, err := os.ReadFile(c.String("consent"))
	if err != nil {
		return err
	}
	var g credit.ConsentGrant
	if err := json.Unmarshal(b, &g); err != nil {
		return fmt.Errorf("consent %s: %w", c.String("consent"), err)
	}
	q := credit.Query{Version: 1, Bank: credit.BankID(c.String("bank")), Subject: g.Subject, Categories: g.Categories,
		Purpose: g.Purpose, ConsentID: g.ID, Consent: &g, Time: time.Now().UTC()}
	if s := c.String("uscc"); s != "" {
		if q.Subject, err = credit.ParseUSCC(s); err != nil {
			return err
		}
	}
	if s := c.String("categories"); s != "" {
		if q.Categories, err = credit.ParseCategories(s); err != nil {
			return err
		}
	}
	if s := c.String("purpose"); s != "" {
		q.Purpose = credit.Purpose(s)
	}
	nb := make([]byte, 12)
	if _, err := randRead(nb); err != nil {
		return err
	}
	q.Nonce = "n-" + hex.EncodeToString(nb)
	if err := q.Sign(key); err != nil {
		return err
	}
	cl, err := nodeClient(c)
	if err != nil {
		return err
	}
	res, err := cl.Query(c.Context, &q)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, res)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "%s for bank %s via %s: %d records (%.1f ms)\n\n", res.Subject, res.Bank, res.Home, res.RecordCount, res.Elapsed)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REGION\tSTATUS\tRECORDS\tRECEIPT\tLEAF")
	for _, r := range res.Regions {
		id, leaf := r.Message, ""
		if r.Receipt != nil {
			id = r.Receipt.ID
		}
		if r.LeafIndex != nil {
			leaf = fmt.Sprint(*r.LeafIndex)
		}
		st := r.Status
		if r.Reason != "" {
			st += " (" + string(r.Reason) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", r.Region, st, r.RecordCount, id, leaf)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REGION\tCATEGORY\tDATE\tSOURCE\tATTRIBUTES")
	for _, r := range res.Regions {
		if r.Report == nil {
			continue
		}
		for _, s := range r.Report.Sections {
			for _, rec := range s.Records {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Region, rec.Category, rec.Date, rec.Source, rec.Attrs)
			}
		}
	}
	return tw.Flush()
}
