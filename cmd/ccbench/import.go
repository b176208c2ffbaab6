package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/credit/synth"
	"github.com/prdcredit/ccnode/store"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:  "import",
		Usage: "ccnode import (normal and --bulk), report latency, and PostgreSQL COPY and query side by side",
		Description: `Generates a data set once (cached in --dir), then for each of --runs runs:
  normal: imports the first 10% of enterprises (not timed), then times 'ccnode import' of
          the other 90% into that store (unsorted input into a store that holds data);
  bulk:   times 'ccnode import --bulk' of everything into an empty store.
Figures: records/s end to end, peak RSS (wait4 rusage), disk bytes per record; medians.
Then opens the bulk store in process and times reports of random enterprises, warm, at
each --readers count (p50, p99, reports/s). Then, unless --no-postgres, starts
PostgreSQL on 127.0.0.1 (installing Debian's package if missing), COPYs the same data
into a table with the (uscc, category, date) index, runs the same report query, prints
the ratios ours/PostgreSQL, and stops it.`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "records", Value: 20_000_000, EnvVars: []string{"CCBENCH_RECORDS"},
				Usage: "approximate size of the data set (enterprises = records/183)"},
			&cli.StringFlag{Name: "dir", Value: "bench-out", EnvVars: []string{"CCBENCH_DIR"},
				Usage: "working folder: cached data sets, stores, logs"},
			&cli.IntFlag{Name: "runs", Value: 3, EnvVars: []string{"CCBENCH_RUNS"}, Usage: "runs of each import"},
			&cli.StringFlag{Name: "region", Value: "440300", EnvVars: []string{"CCBENCH_REGION"}, Usage: "region code"},
			&cli.Uint64Flag{Name: "seed", Value: 1, EnvVars: []string{"CCBENCH_SEED"}, Usage: "data seed"},
			&cli.IntSliceFlag{Name: "readers", Value: cli.NewIntSlice(1, 8), EnvVars: []string{"CCBENCH_READERS"},
				Usage: "concurrent readers for the report latency runs"},
			&cli.IntFlag{Name: "lookups", Value: 4000, EnvVars: []string{"CCBENCH_LOOKUPS"},
				Usage: "reports per latency run (spread over the readers)"},
			&cli.BoolFlag{Name: "no-postgres", EnvVars: []string{"CCBENCH_NO_POSTGRES"}, Usage: "skip PostgreSQL"},
			&cli.BoolFlag{Name: "transactional", EnvVars: []string{"CCBENCH_TRANSACTIONAL"},
				Usage: "also time the normal path with 'ccnode import --transactional' (batch-by-batch commits), side by side"},
			&cli.StringFlag{Name: "ccnode", EnvVars: []string{"CCBENCH_CCNODE"},
				Usage: "ccnode binary to run (default: build ./cmd/ccnode into --dir)"},
		},
		Action: runImportBench,
	}
}

// dataset is a generated data set split for the normal-path run.
type dataset struct {
	g                   *synth.Generator
	first, rest         string // JSONL: the first 10% of enterprises, the other 90%
	firstCSV, restCSV   string // the same as CSV, for PostgreSQL's COPY
	firstRecs, restRecs int64
}

func runImportBench(c *cli.Context) error {
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := c.App.Writer
	dir, err := filepath.Abs(c.String("dir"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	n := max(10, c.Int("records")/synth.DefaultMeanRecords)
	g, err := synth.New(synth.Config{Region: credit.RegionID(c.String("region")), Enterprises: n, Seed: c.Uint64("seed")})
	if err != nil {
		return err
	}
	bin := c.String("ccnode")
	if bin == "" {
		bin = filepath.Join(dir, "ccnode")
		if err := buildCCNode(ctx, out, bin); err != nil {
			return err
		}
	}
	ds, err := ensureData(ctx, out, dir, g, !c.Bool("no-postgres"))
	if err != nil {
		return err
	}
	total := ds.firstRecs + ds.restRecs
	host, _ := os.Hostname()
	fmt.Fprintf(out, "\n%s  %s  %d cores  %s  %s  load average at start: %s\n",
		time.Now().UTC().Format(time.RFC3339), host, runtime.NumCPU(), memTotal(), runtime.Version(), loadAvg())
	fmt.Fprintf(out, "data set: %d enterprises, %d records (%d first, %d measured on the normal path)\n\n", n, total, ds.firstRecs, ds.restRecs)

	runs := max(1, c.Int("runs"))
	var normal, bulk, txn []procRun
	for r := range runs {
		if c.Bool("transactional") {
			store := filepath.Join(dir, "store-txn")
			os.RemoveAll(store)
			if _, err := runCcnode(ctx, dir, bin, "import", "--transactional", "--data-dir", store, ds.first); err != nil {
				return err
			}
			pr, err := runCcnode(ctx, dir, bin, "import", "--transactional", "--data-dir", store, ds.rest)
			if err != nil {
				return err
			}
			pr.records = ds.restRecs
			pr.disk, pr.diskRecords = diskUsage(store), total
			txn = append(txn, pr)
			os.RemoveAll(store)
			fmt.Fprintf(out, "transactional run %d: %s\n", r+1, pr)
		}
		store := filepath.Join(dir, "store-normal")
		os.RemoveAll(store)
		if _, err := runCcnode(ctx, dir, bin, "import", "--data-dir", store, ds.first); err != nil {
			return err
		}
		pr, err := runCcnode(ctx, dir, bin, "import", "--data-dir", store, ds.rest)
		if err != nil {
			return err
		}
		pr.records = ds.restRecs
		pr.disk, pr.diskRecords = diskUsage(store), total
		normal = append(normal, pr)
		fmt.Fprintf(out, "normal run %d: %s\n", r+1, pr)

		bstore := filepath.Join(dir, "store-bulk")
		os.RemoveAll(bstore)
		pr, err = runCcnode(ctx, dir, bin, "import", "--bulk", "--data-dir", bstore, ds.first, ds.rest)
		if err != nil {
			return err
		}
		pr.records = total
		pr.disk, pr.diskRecords = diskUsage(bstore), total
		bulk = append(bulk, pr)
		fmt.Fprintf(out, "bulk run %d:   %s\n", r+1, pr)
	}
	os.RemoveAll(filepath.Join(dir, "store-normal"))

	// --data-dir names a node data folder: the store is DATA_DIR/db.
	lat, err := ourLatency(ctx, filepath.Join(dir, "store-bulk", "db"), g.Enterprises(), c.IntSlice("readers"), c.Int("lookups"))
	if err != nil {
		return err
	}
	var pgr *pgResults
	if !c.Bool("no-postgres") {
		if pgr, err = benchPostgres(ctx, out, dir, ds, g, min(runs, 3), c.IntSlice("readers"), c.Int("lookups")); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
	}
	printSummary(out, normal, bulk, txn, lat, pgr)
	fmt.Fprintf(out, "\n%s  load average at the end: %s\n", time.Now().UTC().Format(time.RFC3339), loadAvg())
	return nil
}

// ensureData writes the data set's files unless a previous run left them
// complete (a sidecar with the record counts is written last).
func ensureData(ctx context.Context, out io.Writer, dir string, g *synth.Generator, withCSV bool) (*dataset, error) {
	cfg := g.Config()
	base := filepath.Join(dir, fmt.Sprintf("data-%s-%d-%d", cfg.Region, cfg.Enterprises, cfg.Seed))
	ds := &dataset{g: g, first: base + "-first.jsonl", rest: base + "-rest.jsonl",
		firstCSV: base + "-first.csv", restCSV: base + "-rest.csv"}
	split := max(1, cfg.Enterprises/10)
	type meta struct{ First, Rest int64 }
	for _, f := range []synth.Format{synth.JSONL, synth.CSV} {
		if f == synth.CSV && !withCSV {
			continue
		}
		names := [2]string{ds.first, ds.rest}
		if f == synth.CSV {
			names = [2]string{ds.firstCSV, ds.restCSV}
		}
		sidecar := base + "-" + f.String() + ".counts"
		if b, err := os.ReadFile(sidecar); err == nil {
			var m meta
			if json.Unmarshal(b, &m) == nil {
				ds.firstRecs, ds.restRecs = m.First, m.Rest
				continue
			}
		}
		var m meta
		for k, r := range [][2]int{{0, split}, {split, cfg.Enterprises}} {
			start := time.Now()
			st, err := writeFile(ctx, names[k], g, f, r[0], r[1])
			if err != nil {
				return nil, err
			}
			el := time.Since(start)
			fmt.Fprintf(out, "generated %s: %d records, %d bytes in %s (%.0f records/s)\n",
				filepath.Base(names[k]), st.Records, st.Bytes, el.Round(time.Millisecond), float64(st.Records)/el.Seconds())
			if k == 0 {
				m.First = st.Records
			} else {
				m.Rest = st.Records
			}
		}
		ds.firstRecs, ds.restRecs = m.First, m.Rest
		b, _ := json.Marshal(m)
		if err := os.WriteFile(sidecar, b, 0o644); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

func writeFile(ctx context.Context, path string, g *synth.Generator, f synth.Format, from, to int) (synth.Stats, error) {
	fh, err := os.Create(path)
	if err != nil {
		return synth.Stats{}, err
	}
	bw := bufio.NewWriterSize(fh, 4<<20)
	st, err := g.WriteRange(ctx, bw, f, 0, from, to)
	if err == nil {
		err = bw.Flush()
	}
	err = errors.Join(err, fh.Close())
	return st, err
}

// procRun is one timed ccnode process.
type procRun struct {
	elapsed     time.Duration
	cpu         time.Duration // user + system: what the run cost, whatever else the machine ran
	maxRSS      int64         // bytes
	records     int64
	disk        int64
	diskRecords int64
}

func (p procRun) rate() float64 { return float64(p.records) / p.elapsed.Seconds() }

// cpuRate is records per CPU-second: on a machine shared with other work it
// says more than the wall-clock rate.
func (p procRun) cpuRate() float64 { return float64(p.records) / p.cpu.Seconds() }

func (p procRun) String() string {
	return fmt.Sprintf("%d records in %s: %.0f records/s, %.0f records/CPU-s, peak RSS %s, disk %.0f B/record",
		p.records, p.elapsed.Round(time.Millisecond), p.rate(), p.cpuRate(), mib(p.maxRSS), float64(p.disk)/float64(p.diskRecords))
}

// runCcnode runs bin with args, its output appended to ccnode.log in dir.
func runCcnode(ctx context.Context, dir, bin string, args ...string) (procRun, error) {
	logf, err := os.OpenFile(filepath.Join(dir, "ccnode.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return procRun{}, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n$ ccnode %q\n", args)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	err = cmd.Run()
	el := time.Since(start)
	if err != nil {
		return procRun{}, fmt.Errorf("ccnode %v: %w (see %s)", args, err, logf.Name())
	}
	pr := procRun{elapsed: el, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		pr.maxRSS = ru.Maxrss << 10 // kilobytes on Linux
	}
	return pr, nil
}

// diskUsage is the space the folder's files take on disk (allocated
// blocks, so sparse preallocated files count as what they use).
func diskUsage(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}

// latency is one report-latency run.
type latency struct {
	readers        int
	p50, p99, p999 time.Duration
	perSec         float64
	records        float64       // mean records per report
	cpu            time.Duration // CPU time of this process per report; 0 when the work is elsewhere (PostgreSQL)
	tail           tail
}

// tail tells what made the reports over a threshold slow: the size of the
// enterprise (the p99 enterprise has ten times the median's records) or a
// stall (the report took far longer per record than the median report).
type tail struct {
	over, stalled int           // reports over the threshold; of those, over stallFactor times the median time per record
	perRecord     time.Duration // median time per record over all reports
	records       int           // median records of the reports over the threshold
}

const (
	tailThreshold = time.Millisecond // the p99 target
	stallFactor   = 3
)

func tailOf(durs []time.Duration, sizes []int) tail {
	per := make([]time.Duration, len(durs))
	for i, d := range durs {
		per[i] = d / time.Duration(max(1, sizes[i]))
	}
	slices.Sort(per)
	t := tail{perRecord: per[len(per)/2]}
	var big []int
	for i, d := range durs {
		if d <= tailThreshold {
			continue
		}
		t.over++
		big = append(big, sizes[i])
		if d > stallFactor*t.perRecord*time.Duration(max(1, sizes[i])) {
			t.stalled++
		}
	}
	if len(big) > 0 {
		slices.Sort(big)
		t.records = big[len(big)/2]
	}
	return t
}

// warmReads reads every enterprise once, spread over readers goroutines, so
// that a measurement that follows is warm: every block a report needs has
// been read once (the page cache, the store's caches, the server's buffers).
// A pass of random lookups leaves a third of the enterprises unread.
func warmReads(readers, n int, read func(worker, enterprise int) (int, error)) error {
	errs := make([]error, readers)
	var wg sync.WaitGroup
	for w := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += readers {
				if _, err := read(w, i); err != nil {
					errs[w] = fmt.Errorf("warm-up, enterprise %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// measureReads runs lookups reads of random enterprises spread over readers
// goroutines and returns the distribution. Call warmReads first. Each
// reader's latencies go into a slice allocated beforehand, so that the
// timing holds the read and nothing of the benchmark's own bookkeeping;
// ownCPU says whether the reads run in this process (ours) so that CPU per
// report is meaningful.
func measureReads(readers, lookups, n int, ownCPU bool, read func(worker, enterprise int) (int, error)) (latency, error) {
	per := max(1, lookups/readers)
	durs := make([][]time.Duration, readers)
	sizes := make([][]int, readers)
	for w := range durs {
		durs[w] = make([]time.Duration, 0, per)
		sizes[w] = make([]int, 0, per)
	}
	picks := make([][]int, readers)
	for w := range picks {
		rng := rand.New(rand.NewPCG(uint64(w), uint64(readers)))
		picks[w] = make([]int, per)
		for k := range picks[w] {
			picks[w][k] = rng.IntN(n)
		}
	}
	recs := make([]int64, readers)
	errs := make([]error, readers)
	var wg sync.WaitGroup
	cpu0 := selfCPU()
	start := time.Now()
	for w := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine, ks := durs[w], sizes[w]
			for _, i := range picks[w] {
				t := time.Now()
				k, err := read(w, i)
				mine = append(mine, time.Since(t)) // within capacity: no allocation
				if err != nil {
					errs[w] = err
					break
				}
				ks = append(ks, k)
				recs[w] += int64(k)
			}
			durs[w], sizes[w] = mine, ks
		}()
	}
	wg.Wait()
	el := time.Since(start)
	cpu := selfCPU() - cpu0
	if err := errors.Join(errs...); err != nil {
		return latency{}, err
	}
	all := slices.Concat(durs...)
	var rs int64
	for _, r := range recs {
		rs += r
	}
	t := tailOf(all, slices.Concat(sizes...))
	slices.Sort(all)
	l := latency{
		readers: readers, p50: all[len(all)/2], p99: all[len(all)*99/100], p999: all[len(all)*999/1000],
		perSec: float64(len(all)) / el.Seconds(), records: float64(rs) / float64(len(all)), tail: t,
	}
	if ownCPU {
		l.cpu = cpu / time.Duration(len(all))
	}
	return l, nil
}

// selfCPU is this process's user + system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ourLatency opens the store in process and times reports of random
// enterprises (us), warm, at each reader count.
func ourLatency(ctx context.Context, dir string, us []credit.USCC, readers []int, lookups int) ([]latency, error) {
	db, err := store.Open(ctx, store.Options{Dir: dir})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	read := func(_, i int) (int, error) {
		recs, err := db.Report(ctx, us[i], store.Filter{})
		if err == nil && len(recs) == 0 {
			err = fmt.Errorf("no records for %s", us[i])
		}
		return len(recs), err
	}
	if err := warmReads(max(slices.Max(readers), 1), len(us), read); err != nil {
		return nil, err
	}
	var out []latency
	for _, r := range readers {
		l, err := measureReads(r, lookups, len(us), true, read)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func printLatencyHeader(tw io.Writer) {
	fmt.Fprintln(tw, "report of one random enterprise, warm\t\t\t\t\t\t\t")
	fmt.Fprintln(tw, "store\treaders\tp50\tp99\tp99.9\treports/s\trecords/report\tCPU/report")
}

func printLatency(tw io.Writer, name string, lat []latency) {
	for _, l := range lat {
		cpu := "-"
		if l.cpu > 0 {
			cpu = ms(l.cpu)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%.0f\t%.0f\t%s\n", name, l.readers, ms(l.p50), ms(l.p99), ms(l.p999), l.perSec, l.records, cpu)
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func medians(rs []procRun) (rate, cpuRate, rss, perRecord float64) {
	var a, b, c, d []float64
	for _, r := range rs {
		a = append(a, r.rate())
		b = append(b, r.cpuRate())
		c = append(c, float64(r.maxRSS))
		d = append(d, float64(r.disk)/float64(r.diskRecords))
	}
	return median(a), median(b), median(c), median(d)
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }

func printSummary(out io.Writer, normal, bulk, txn []procRun, lat []latency, pg *pgResults) {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\nmedians of %d runs\t\t\t\n", len(normal))
	fmt.Fprintln(tw, "what\trecords/s\trecords/CPU-s\tpeak RSS\tdisk B/record")
	nr, ncpu, nrss, nd := medians(normal)
	br, bcpu, brss, bd := medians(bulk)
	fmt.Fprintf(tw, "ccnode import (normal, 90%% into a store holding 10%%)\t%.0f\t%.0f\t%s\t%.0f\n", nr, ncpu, mib(int64(nrss)), nd)
	fmt.Fprintf(tw, "ccnode import --bulk (empty store)\t%.0f\t%.0f\t%s\t%.0f\n", br, bcpu, mib(int64(brss)), bd)
	var tr, tcpu float64
	if len(txn) > 0 {
		var trss, td float64
		tr, tcpu, trss, td = medians(txn)
		fmt.Fprintf(tw, "ccnode import --transactional (normal path, batch by batch)\t%.0f\t%.0f\t%s\t%.0f\n", tr, tcpu, mib(int64(trss)), td)
	}
	if pg != nil {
		fmt.Fprintf(tw, "PostgreSQL COPY + (uscc, category, date) index\t%.0f\t-\t(server)\t%.0f\n", pg.copyRate, pg.bytesPerRecord)
	}
	tw.Flush()
	fmt.Fprintln(tw)
	printLatencyHeader(tw)
	printLatency(tw, "ccnode (Badger, in process)", lat)
	if pg != nil {
		printLatency(tw, "PostgreSQL (pgx, prepared, loopback)", pg.lat)
	}
	tw.Flush()
	if tr > 0 {
		fmt.Fprintf(out, "\nnormal path / --transactional: %.2f records/s, %.2f records/CPU-s\n", nr/tr, ncpu/tcpu)
	}
	if pg == nil {
		return
	}
	fmt.Fprintln(out, "\nratios (above 1: ours better)")
	fmt.Fprintf(out, "  import normal / COPY: %.2f   bulk / COPY: %.2f   disk PostgreSQL/ours(bulk): %.2f\n",
		nr/pg.copyRate, br/pg.copyRate, pg.bytesPerRecord/bd)
	for k, l := range lat {
		if k < len(pg.lat) {
			p := pg.lat[k]
			fmt.Fprintf(out, "  report, %d reader(s): throughput %.2f, p50 PostgreSQL/ours %.2f, p99 PostgreSQL/ours %.2f, p99.9 PostgreSQL/ours %.2f\n",
				l.readers, l.perSec/p.perSec, float64(p.p50)/float64(l.p50), float64(p.p99)/float64(l.p99), float64(p.p999)/float64(l.p999))
		}
	}
}
