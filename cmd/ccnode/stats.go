package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/store"
)

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:  "stats",
		Usage: "print the record store's counters: records, enterprises, per category, per source",
		Description: `The counters are kept up to date by every import, in the same transaction as the
records, so this reads a few dozen keys whatever the size of the store.`,
		Flags: append(storeFlags(),
			&cli.BoolFlag{Name: "json", Category: catOutput, EnvVars: []string{"CCNODE_JSON"}, Usage: "print JSON"},
		),
		Action: runStats,
	}
}

func runStats(c *cli.Context) error {
	ctx := contextOf(c)
	dir, err := storeDirOf(c)
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	db, err := openExistingStore(ctx, dir, store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := db.Stats(ctx)
	if err != nil {
		return err
	}
	w := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "records\t%d\t\n", st.Records)
	fmt.Fprintf(tw, "enterprises\t%d\t\n", st.Subjects)
	fmt.Fprintln(tw, "by category:\t\t")
	for _, cat := range credit.AllCategories() {
		if n := st.Categories[cat]; n > 0 {
			fmt.Fprintf(tw, "  %s\t%d\t\n", cat, n)
		}
	}
	fmt.Fprintln(tw, "by source:\t\t")
	srcs := make([]string, 0, len(st.Sources))
	for s := range st.Sources {
		srcs = append(srcs, s)
	}
	slices.Sort(srcs)
	for _, s := range srcs {
		fmt.Fprintf(tw, "  %s\t%d\t\n", s, st.Sources[s])
	}
	return tw.Flush()
}
