package main

import (
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/credit/synth"
)

func reportCommand() *cli.Command {
	return &cli.Command{
		Name:  "report",
		Usage: "report latency alone, on a store that 'ccbench import' (or ccnode import of its data set) made",
		Description: `Opens DATA_DIR/db (--data-dir) in process, reads every enterprise of the data set once (warm-up),
then times --lookups reports of random enterprises at each --readers count, --runs times,
and prints p50, p99, p99.9, reports/s and CPU per report of each run and their medians.
After each run, a line per reader count says what made the reports over 1 ms slow: how
many there were, the median size of their enterprises, and how many were stalls (over 3x
the median report's time per record: GC, preemption, a cold block) rather than large
enterprises.
--records and --seed name the data set the store holds (as for 'ccbench import'), e.g.
  ccbench report --records 1000000 --data-dir /tmp/ccbench-1m/store-bulk
To compare two builds of the store, run two builds of ccbench alternately on one store.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data-dir", Required: true, EnvVars: []string{"CCBENCH_DATA_DIR"},
				Usage: "the node data folder to read (the store is DATA_DIR/db, as for ccnode)"},
			&cli.IntFlag{Name: "records", Value: 20_000_000, EnvVars: []string{"CCBENCH_RECORDS"},
				Usage: "approximate size of the data set the store holds (enterprises = records/183)"},
			&cli.StringFlag{Name: "region", Value: "440300", EnvVars: []string{"CCBENCH_REGION"}, Usage: "region code"},
			&cli.Uint64Flag{Name: "seed", Value: 1, EnvVars: []string{"CCBENCH_SEED"}, Usage: "data seed"},
			&cli.IntSliceFlag{Name: "readers", Value: cli.NewIntSlice(1, 8), EnvVars: []string{"CCBENCH_READERS"},
				Usage: "concurrent readers"},
			&cli.IntFlag{Name: "lookups", Value: 20000, EnvVars: []string{"CCBENCH_LOOKUPS"},
				Usage: "reports per run and reader count (spread over the readers)"},
			&cli.IntFlag{Name: "runs", Value: 3, EnvVars: []string{"CCBENCH_RUNS"}, Usage: "runs; figures are medians"},
		},
		Action: func(c *cli.Context) error {
			out := c.App.Writer
			n := max(10, c.Int("records")/synth.DefaultMeanRecords)
			g, err := synth.New(synth.Config{Region: credit.RegionID(c.String("region")), Enterprises: n, Seed: c.Uint64("seed")})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s  %d cores  %s  load average at start: %s\n",
				time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), runtime.Version(), loadAvg())
			readers := c.IntSlice("readers")
			var runs [][]latency
			for r := range max(1, c.Int("runs")) {
				lat, err := ourLatency(c.Context, filepath.Join(c.String("data-dir"), "db"), g.Enterprises(), readers, c.Int("lookups"))
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
				printLatency(tw, fmt.Sprintf("run %d", r+1), lat)
				tw.Flush()
				for _, l := range lat {
					t := l.tail
					fmt.Fprintf(out, "  %d readers: %d reports over %v (median %d records); %d of them stalled (over %dx the median %v per record)\n",
						l.readers, t.over, tailThreshold, t.records, t.stalled, stallFactor, t.perRecord)
				}
				runs = append(runs, lat)
			}
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "\nmedians of %d runs, %d enterprises\n", len(runs), n)
			printLatencyHeader(tw)
			printLatency(tw, "ccnode (Badger, in process)", medianLatency(runs))
			tw.Flush()
			fmt.Fprintf(out, "%s  load average at the end: %s\n", time.Now().UTC().Format(time.RFC3339), loadAvg())
			return nil
		},
	}
}

// medianLatency takes, per reader count, the median of each figure over
// the runs (each figure on its own, so a row need not be one run's).
func medianLatency(runs [][]latency) []latency {
	out := make([]latency, len(runs[0]))
	for k := range out {
		var p50, p99, p999, cpu []time.Duration
		var ps, recs []float64
		for _, r := range runs {
			p50, p99, p999, cpu = append(p50, r[k].p50), append(p99, r[k].p99), append(p999, r[k].p999), append(cpu, r[k].cpu)
			ps, recs = append(ps, r[k].perSec), append(recs, r[k].records)
		}
		mid := func(ds []time.Duration) time.Duration { slices.Sort(ds); return ds[len(ds)/2] }
		out[k] = latency{readers: runs[0][k].readers, p50: mid(p50), p99: mid(p99), p999: mid(p999), cpu: mid(cpu),
			perSec: median(ps), records: median(recs)}
	}
	return out
}
