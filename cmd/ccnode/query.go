package main

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/bankclient"
	"github.com/prdcredit/ccnode/node/reporthtml"
)

var randRead = rand.Read

func queryCommand() *cli.Command {
	return &cli.Command{
		Name:  "query",
		Usage: "query a subject's consolidated report as a bank",
		Description: "Signs the query with the bank's key and sends it to the bank's home node (node/bankclient).\n" +
			"Prints each region's status and records, with the receipt every region signed. With\n" +
			"--region-keys, checks every receipt and ack against the regions' keys first. With --html,\n" +
			"also writes the report as a printable page (Chinese; --lang en for English).",
		Flags: append([]cli.Flag{
			nodeFlag,
			&cli.StringFlag{Name: "bank", Required: true, Category: catData, EnvVars: []string{"CCNODE_BANK"}, Usage: "bank id"},
			&cli.StringFlag{Name: "key", Required: true, Category: catData, EnvVars: []string{"CCNODE_BANK_KEY"}, Usage: "bank's ed25519 key file"},
			&cli.StringFlag{Name: "consent", Required: true, Category: catData, Usage: "countersigned consent document (JSON)"},
			&cli.StringFlag{Name: "uscc", Category: catData, Usage: "subject (default: the consent's)"},
			&cli.StringFlag{Name: "categories", Category: catData, Usage: "comma-separated (default: the consent's)"},
			&cli.StringFlag{Name: "purpose", Category: catData, Usage: "purpose (default: the consent's)"},
			&cli.StringFlag{Name: "region-keys", Category: catData, Usage: "JSON file {\"regions\": [{\"id\": ..., \"pub_key\": base64}]} (a ledger bootstrap file serves): verify every receipt and ack with these region keys"},
			&cli.BoolFlag{Name: "json", Category: catOutput, EnvVars: []string{"CCNODE_JSON"}, Usage: "print the whole answer as JSON"},
			&cli.StringFlag{Name: "html", Category: catOutput, Usage: "also write the report as a printable HTML page to this file"},
			&cli.StringFlag{Name: "lang", Category: catOutput, Value: "zh", Usage: "language of the HTML page: zh or en"},
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
	req := bankclient.QueryRequest{Consent: &g, Purpose: credit.Purpose(c.String("purpose"))}
	if s := c.String("uscc"); s != "" {
		if req.Subject, err = credit.ParseUSCC(s); err != nil {
			return err
		}
	}
	if req.Categories, err = credit.ParseCategories(c.String("categories")); err != nil {
		return err
	}
	hc, err := tlsHTTPClient(c)
	if err != nil {
		return err
	}
	opts := []bankclient.Option{bankclient.WithBank(credit.BankID(c.String("bank")), key), bankclient.WithRand(randReader{})}
	if hc != nil {
		opts = append(opts, bankclient.WithHTTPClient(hc))
	}
	if p := c.String("region-keys"); p != "" {
		t, err := bankclient.LoadTrust(p)
		if err != nil {
			return err
		}
		opts = append(opts, bankclient.WithTrust(t))
	}
	q, res, err := bankclient.New(c.String("node"), opts...).Query(c.Context, req)
	if errors.Is(err, bankclient.ErrVerify) && c.String("region-keys") != "" {
		// A key file from before a region's key rotation is the likely
		// cause, and more likely than tampering: say so.
		return fmt.Errorf("%w (if a region rotated its key since %s was written, ask a node's operator for a current file: "+
			"'ccnode consortium region-keys' writes each region's key and its past keys)", err, c.String("region-keys"))
	}
	if err != nil {
		return err
	}
	// What was done besides the answer goes to stderr, so that --json
	// output stays one document.
	if c.String("region-keys") != "" && !quiet(c) {
		fmt.Fprintf(c.App.ErrWriter, "receipts verified under the region keys of %s\n", c.String("region-keys"))
	}
	if p := c.String("html"); p != "" {
		if err := writeReportPage(p, q, res, reporthtml.ParseLang(c.String("lang"))); err != nil {
			return err
		}
		if !quiet(c) {
			fmt.Fprintf(c.App.ErrWriter, "report page written to %s\n", p)
		}
	}
	if c.Bool("json") {
		return printJSON(c, res)
	}
	printConsolidated(c, res)
	return nil
}

// randReader reads randRead, which tests replace.
type randReader struct{}

func (randReader) Read(b []byte) (int, error) { return randRead(b) }

func writeReportPage(path string, q *credit.Query, res *bankclient.Consolidated, lang reporthtml.Lang) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	if err := reporthtml.Render(f, q, res, lang, time.Now()); err != nil {
		f.Close()
		return fmt.Errorf("--html %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--html %s: %w", path, err)
	}
	return nil
}

func printConsolidated(c *cli.Context, res *bankclient.Consolidated) {
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
	tw.Flush()
}
