package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/store"
)

func reportCommand() *cli.Command {
	return &cli.Command{
		Name:      "report",
		Usage:     "print the local store's records on one enterprise",
		ArgsUsage: "USCC",
		Description: `Prints every record this node holds on the enterprise, by category and date: a table
on a terminal, the JSON report (credit.Report: {"uscc", "sections":[{"category","records"}]})
with --json or when the output is not a terminal. This reads the local store only; it is
not a consented cross-region query.`,
		Flags: append(storeFlags(),
			&cli.BoolFlag{Name: "json", Category: catOutput, EnvVars: []string{"CCNODE_JSON"}, Usage: "print JSON"},
			&cli.StringFlag{Name: "categories", Category: catData, EnvVars: []string{"CCNODE_REPORT_CATEGORIES"},
				Usage: "only these categories, comma-separated (e.g. tax,penalty)"},
			&cli.StringFlag{Name: "from", Category: catData, EnvVars: []string{"CCNODE_REPORT_FROM"}, Usage: "only records on or after this date (YYYY-MM-DD)"},
			&cli.StringFlag{Name: "to", Category: catData, EnvVars: []string{"CCNODE_REPORT_TO"}, Usage: "only records on or before this date (YYYY-MM-DD)"},
		),
		Action: runReport,
	}
}

func runReport(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("report: want exactly one USCC, got %d arguments", c.NArg())
	}
	subject, err := credit.ParseUSCC(c.Args().First())
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	var f store.Filter
	if f.Categories, err = credit.ParseCategories(c.String("categories")); err != nil {
		return fmt.Errorf("report: --categories: %w", err)
	}
	for _, d := range []struct {
		flag string
		dst  *credit.Date
	}{{"from", &f.From}, {"to", &f.To}} {
		if s := c.String(d.flag); s != "" {
			if *d.dst, err = credit.ParseDate(s); err != nil {
				return fmt.Errorf("report: --%s: %w", d.flag, err)
			}
		}
	}
	ctx := contextOf(c)
	dir, err := storeDirOf(c)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	// The store checks the blocks of the enterprise's range after the
	// read: a block that fails its checksum fails the report, naming the
	// table, rather than printing fewer records.
	db, err := openExistingStore(ctx, dir, store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	recs, err := db.Report(ctx, subject, f)
	if err != nil {
		return err
	}
	rep := credit.NewReport(subject, recs)
	w := c.App.Writer
	if c.Bool("json") || !isTerminal(w) {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(w, "%s: %d records\n", subject, rep.Count())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CATEGORY\tDATE\tSOURCE\tSOURCE ID\tATTRS")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Category, r.Date, r.Source, r.SourceID, r.Attrs)
	}
	return tw.Flush()
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// openExistingStore opens a store for reading and refuses a directory that
// does not exist, which Badger would otherwise create empty.
func openExistingStore(ctx context.Context, dir string, o store.Options) (*store.DB, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("no record store at %s: %w", dir, err)
	}
	o.Dir = dir
	return store.Open(ctx, o)
}
