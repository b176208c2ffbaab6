package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/node/consortium"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run a three-region consortium in one process and show what it does",
		Description: "Starts Shenzhen (440300), Guangzhou (440100) and Zhuhai (440400) on an in-process\n" +
			"ledger, each with its own Badger store of generated records and its bank API on\n" +
			"127.0.0.1 over TLS (certificates of one development CA, tls/ca.crt in the data\n" +
			"folder: 'ccnode query --ca-file' trusts every region with it); two banks;\n" +
			"consents recorded. Runs consolidated cross-region queries, queries that must be\n" +
			"refused (each checked for the right reason), anchors the receipt logs, verifies\n" +
			"an inclusion proof, exports the receipts and audits them.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data-dir", Category: catData, EnvVars: []string{"CCNODE_DEMO_DIR"},
				Usage: "keep the regions' folders, exports and bank keys here (default: a temporary folder removed at exit)"},
			&cli.IntFlag{Name: "enterprises", Category: catData, Value: 100, EnvVars: []string{"CCNODE_DEMO_ENTERPRISES"},
				Usage: "enterprises per region"},
			&cli.IntFlag{Name: "queries", Category: catData, Value: 20, EnvVars: []string{"CCNODE_DEMO_QUERIES"},
				Usage: "consented queries per bank"},
			&cli.BoolFlag{Name: "json", Category: catOutput, EnvVars: []string{"CCNODE_DEMO_JSON"},
				Usage: "print the account as one JSON object"},
			&cli.BoolFlag{Name: "keep", Category: catOutput, EnvVars: []string{"CCNODE_DEMO_KEEP"},
				Usage: "keep running with each region's bank API until interrupted"},
			&cli.BoolFlag{Name: "verbose", Category: catOutput, EnvVars: []string{"CCNODE_DEMO_VERBOSE"},
				Usage: "log the nodes' warnings to stderr"},
		},
		Action: runDemo,
	}
}

func runDemo(c *cli.Context) error {
	logger := slog.New(slog.DiscardHandler)
	if c.Bool("verbose") || outputFlag(c, flagLogLevel) != "" {
		var err error
		if logger, err = newLogger(c, slog.LevelWarn); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := consortium.RunDemo(ctx, consortium.DemoOptions{
		Dir: c.String("data-dir"), Enterprises: c.Int("enterprises"), Queries: c.Int("queries"), Seed: 1,
		Options: consortium.Options{Logger: logger},
	})
	if err != nil {
		return err
	}
	defer d.Close()
	out := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(out)
		if err := enc.Encode(d.Report); err != nil {
			return err
		}
	} else {
		printDemo(out, &d.Report)
	}
	verdict := demoVerdict(&d.Report)
	if !c.Bool("keep") {
		return verdict
	}
	fmt.Fprintln(c.App.ErrWriter, "\nKeeping the consortium running; Ctrl-C stops it.")
	for _, r := range d.Report.Regions {
		fmt.Fprintf(c.App.ErrWriter, "  %s %-9s bank API %s  admin API %s\n", r.ID, r.Name, r.BankAPI, r.AdminAPI)
	}
	fmt.Fprintf(c.App.ErrWriter, "  the bank APIs' TLS CA (--ca-file): %s\n", d.Report.CAFile)
	fmt.Fprintf(c.App.ErrWriter, "  operator %s's token (admin APIs; CCNODE_OPERATOR_TOKEN): %s\n", consortium.OperatorName, d.OperatorToken)
	for _, t := range d.Report.Try {
		fmt.Fprintf(c.App.ErrWriter, "  try: ccnode query --node %s --ca-file %s --bank %s --key %s --consent %s\n", t.Node, t.CAFile, t.Bank, t.KeyFile, t.ConsentFile)
	}
	if len(d.Report.Try) == 0 {
		fmt.Fprintln(c.App.ErrWriter, "  (run with --data-dir to get the banks' keys and consents for 'ccnode query')")
	}
	<-ctx.Done()
	return verdict
}

// demoVerdict fails the demo, exit status 2 as `ccnode audit`'s, when its
// own offline audit found anything: a demo that prints findings has not
// shown a working consortium.
func demoVerdict(r *consortium.DemoReport) error {
	if r.Audit.Findings > 0 {
		return findingsError{r.Audit.Findings}
	}
	return nil
}

func printDemo(w io.Writer, r *consortium.DemoReport) {
	fmt.Fprintf(w, "ccnode demo: %d regions, %d records, %d banks — done in %.1f s\n", len(r.Regions), r.Records, 2, r.Elapsed)
	fmt.Fprintf(w, "regions talk over %s; ledger: %s\n\n", r.Transport, r.LedgerKind)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REGION\tNAME\tENTERPRISES\tRECORDS\tRECEIPTS\tANCHORED\tBANK API")
	for _, g := range r.Regions {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", g.ID, g.Name, g.Enterprises, g.Records, g.LogSize, g.Anchored, g.BankAPI)
	}
	tw.Flush()
	if ex := r.Example; ex != nil {
		fmt.Fprintf(w, "\nA consolidated report: bank %s asks about %s through its home node\n", ex.Bank, ex.Subject)
		for _, row := range ex.Rows {
			fmt.Fprintf(w, "  %s  %-3s %3d records  receipt %s\n", row.Region, row.Status, row.Records, row.Receipt)
		}
	}
	fmt.Fprintf(w, "\nConsented queries: %d answered, latency p50 %.1f ms, p99 %.1f ms (bank API, 3 regions each)\n",
		r.Queries, r.LatencyMS.P50, r.LatencyMS.P99)
	fmt.Fprintln(w, "\nQueries that must be refused:")
	for _, f := range r.Refusals {
		mark := "ok"
		if !f.AsWanted {
			mark = "WRONG"
		}
		fmt.Fprintf(w, "  %-5s %-30s HTTP %d %s\n", mark, f.Case, f.HTTP, f.Got)
	}
	reasons := make([]string, 0, len(r.RefusalCounts))
	for k, v := range r.RefusalCounts {
		reasons = append(reasons, fmt.Sprintf("%s=%d", k, v))
	}
	slices.Sort(reasons)
	fmt.Fprintf(w, "  by reason: %s\n", strings.Join(reasons, " "))
	fmt.Fprintf(w, "\nReceipt logs: %d receipts, %d checkpoints anchored, %d ledger transactions in all\n", r.Receipts, r.Checkpoints, r.LedgerTxs)
	p := r.Proof
	fmt.Fprintf(w, "Inclusion proof: receipt %s is leaf %d of %s's log (size %d), %d hashes, verified against anchored checkpoint %s\n",
		p.ReceiptID, p.LeafIndex, p.Region, p.TreeSize, p.Hashes, p.TxID)
	a := r.Audit
	fmt.Fprintf(w, "Offline audit: %d receipts checked, %d findings\n", a.Receipts, a.Findings)
	if r.DataDir != "" {
		fmt.Fprintf(w, "\nKept in %s. Audit it again with:\n  ccnode audit --snapshot %s --consents %s %s/*.jsonl\n", r.DataDir, a.Snapshot, a.Consents, a.Dir)
	}
}
