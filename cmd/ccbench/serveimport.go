package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/consortium"
)

func serveImportCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve-import",
		Usage: "bank query latency at one `ccnode run` while `ccnode import --config` streams a feed into it, against no import",
		Description: `Per run, in a fresh folder: 'ccnode init' a region (Shenzhen, embedded ledger), import a
base feed (--base-enterprises) offline, start 'ccnode run', register a bank and record
consents for --subjects of the base feed's enterprises, then drive signed bank queries
at --inflight in flight:

  idle:      for --idle, no import;
  importing: while 'ccnode import --config' streams the import feed (--records, made
             once by 'ccnode gen' and kept in --dir) into the running node through
             its admin API, from its start to its exit.

Prints per run and phase: queries, failures, p50, p99, p99.9 and max latency at the bank,
the import's records/s, and the 1-minute load average; then the medians over --runs.`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "records", Value: 1_000_000, EnvVars: []string{"CCBENCH_RECORDS"}, Usage: "records of the feed imported while serving"},
			&cli.IntFlag{Name: "base-enterprises", Value: 200, EnvVars: []string{"CCBENCH_BASE_ENTERPRISES"}, Usage: "enterprises the node holds before (~183 records each)"},
			&cli.IntFlag{Name: "subjects", Value: 20, EnvVars: []string{"CCBENCH_SUBJECTS"}, Usage: "consented enterprises the queries pick among"},
			&cli.IntFlag{Name: "inflight", Value: 1, EnvVars: []string{"CCBENCH_INFLIGHT"}, Usage: "queries in flight"},
			&cli.DurationFlag{Name: "idle", Value: 15 * time.Second, EnvVars: []string{"CCBENCH_IDLE"}, Usage: "measured time without an import"},
			&cli.IntFlag{Name: "runs", Value: 3, EnvVars: []string{"CCBENCH_RUNS"}, Usage: "runs; figures are medians"},
			&cli.StringFlag{Name: "dir", Value: "bench-out/serve-import", EnvVars: []string{"CCBENCH_DIR"}, Usage: "working folder (the feed is kept)"},
			&cli.StringFlag{Name: "ccnode", EnvVars: []string{"CCBENCH_CCNODE"}, Usage: "a prebuilt ccnode binary (default: build ./cmd/ccnode)"},
			&cli.StringFlag{Name: "node-log-level", Value: "warn", EnvVars: []string{"CCBENCH_NODE_LOG_LEVEL"}, Usage: "the node's --log-level (debug shows Badger's flushes and stalls)"},
			&cli.StringSliceFlag{Name: "import-flag", EnvVars: []string{"CCBENCH_IMPORT_FLAGS"}, Usage: "extra flag of the import, e.g. --import-flag=--batch-lines=1000"},
		},
		Action: runServeImport,
	}
}

// phaseResult is one phase of one run.
type phaseResult struct {
	queries, failures   int
	p50, p99, p999, max time.Duration
	seconds             float64
	importRate          float64 // records/s of the import, importing phase only
	load                float64
}

func runServeImport(c *cli.Context) error {
	ctx, out := c.Context, c.App.Writer
	dir, err := filepath.Abs(c.String("dir"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	bin := c.String("ccnode")
	if bin == "" {
		bin = filepath.Join(dir, "ccnode")
		if err := buildCCNode(ctx, out, bin); err != nil {
			return err
		}
	}
	records := c.Int("records")
	feed := filepath.Join(dir, fmt.Sprintf("import-%d.jsonl", records))
	if _, err := os.Stat(feed); err != nil {
		ents := max(1, records/183)
		fmt.Fprintf(out, "generating %s (%d enterprises) ...\n", feed, ents)
		// Another seed than the base feed: new enterprises, as a day's
		// feed of another department brings.
		if b, err := exec.CommandContext(ctx, bin, "gen", "--region", "440300", "--enterprises", strconv.Itoa(ents), "--seed", "77", "--quiet", "-o", feed).CombinedOutput(); err != nil {
			return fmt.Errorf("ccnode gen: %w\n%s", err, b)
		}
	}
	fmt.Fprintf(out, "%s  %d records imported while serving, %d in flight, load average at start: %s\n",
		time.Now().UTC().Format(time.RFC3339), records, c.Int("inflight"), loadAvg())
	var idle, busy []phaseResult
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "run\tphase\tqueries\tfailed\tp50\tp99\tp99.9\tmax\timport rec/s\tload1")
	for r := range max(1, c.Int("runs")) {
		s, err := startServedRegion(ctx, bin, filepath.Join(dir, "run-"+strconv.Itoa(r+1)), c.Int("base-enterprises"), c.Int("subjects"), c.String("node-log-level"))
		if err != nil {
			return err
		}
		a, b, err := s.measure(ctx, feed, c.Int("inflight"), c.Duration("idle"), c.StringSlice("import-flag"))
		s.stop()
		if err != nil {
			return fmt.Errorf("run %d: %w (node log %s)", r+1, err, s.logPath)
		}
		idle, busy = append(idle, a), append(busy, b)
		for _, p := range []struct {
			name string
			r    phaseResult
		}{{"idle", a}, {"importing", b}} {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%v\t%v\t%v\t%v\t%s\t%.1f\n", r+1, p.name, p.r.queries, p.r.failures,
				p.r.p50.Round(time.Microsecond), p.r.p99.Round(time.Microsecond), p.r.p999.Round(time.Microsecond), p.r.max.Round(time.Microsecond),
				rateOf(p.r.importRate), p.r.load)
		}
		tw.Flush()
	}
	med := func(rs []phaseResult, f func(phaseResult) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		return medianOf(xs)
	}
	fmt.Fprintf(tw, "\nmedians of %d runs\tphase\tp50\tp99\tp99.9\timport rec/s\n", len(idle))
	for _, p := range []struct {
		name string
		rs   []phaseResult
	}{{"idle", idle}, {"importing", busy}} {
		ms := func(f func(phaseResult) time.Duration) time.Duration {
			return time.Duration(med(p.rs, func(r phaseResult) float64 { return float64(f(r)) })).Round(time.Microsecond)
		}
		fmt.Fprintf(tw, "\t%s\t%v\t%v\t%v\t%s\n", p.name, ms(func(r phaseResult) time.Duration { return r.p50 }),
			ms(func(r phaseResult) time.Duration { return r.p99 }), ms(func(r phaseResult) time.Duration { return r.p999 }),
			rateOf(med(p.rs, func(r phaseResult) float64 { return r.importRate })))
	}
	tw.Flush()
	fmt.Fprintf(out, "%s  load average at the end: %s\n", time.Now().UTC().Format(time.RFC3339), loadAvg())
	return nil
}

func rateOf(r float64) string {
	if r == 0 {
		return "-"
	}
	return strconv.FormatFloat(r, 'f', 0, 64)
}

// servedRegion is one region's `ccnode run` with a bank and consents.
type servedRegion struct {
	bin, dir, cfgPath, logPath string
	cmd                        *exec.Cmd
	exited                     chan struct{}
	cl                         *node.Client
	hc                         *http.Client
	bank                       *consortium.Bank
	grants                     []credit.ConsentGrant
}

func startServedRegion(ctx context.Context, bin, dir string, baseEnts, subjects int, logLevel string) (_ *servedRegion, err error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	s := &servedRegion{bin: bin, dir: dir, cfgPath: filepath.Join(dir, "ccnode.yaml"), logPath: filepath.Join(dir, "ccnode.log"),
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 2 * time.Minute}}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	run := func(args ...string) error {
		if b, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ccnode %s: %w\n%s", strings.Join(args, " "), err, b)
		}
		return nil
	}
	if err := run("init", "--region", "440300", "--dir", dir, "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	base := filepath.Join(dir, "base.jsonl")
	if err := run("gen", "--region", "440300", "--enterprises", strconv.Itoa(baseEnts), "--seed", "41", "--quiet", "-o", base); err != nil {
		return nil, err
	}
	if err := run("import", "--quiet", "--config", s.cfgPath, base); err != nil {
		return nil, err
	}
	subj, err := firstSubjects(base, subjects)
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, "run", "--config", s.cfgPath, "--log-level", logLevel)
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	s.cmd.Stderr = logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); logf.Close(); close(s.exited) }()
	br := bufio.NewReader(stdout)
	var bankURL, adminURL string
	for _, prefix := range []string{"bank API on ", "admin API on "} {
		line, err := br.ReadString('\n')
		_, url, ok := strings.Cut(strings.TrimSpace(line), prefix)
		if err != nil || !ok {
			return s, fmt.Errorf("ccnode run printed %q, not its %saddress: %v (log %s)", line, prefix, err, s.logPath)
		}
		if bankURL == "" {
			bankURL = url
		} else {
			adminURL = url
		}
	}
	go io.Copy(io.Discard, br)
	tok, err := os.ReadFile(filepath.Join(dir, "operator.token"))
	if err != nil {
		return s, err
	}
	s.cl = &node.Client{Base: bankURL, Admin: adminURL, OperatorToken: strings.TrimSpace(string(tok)), HTTP: s.hc}
	if err := pollUntil(ctx, time.Minute, "the node ready", func() (bool, string) {
		resp, err := s.hc.Get(bankURL + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	}); err != nil {
		return s, err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return s, err
	}
	s.bank = &consortium.Bank{BankSpec: consortium.BankSpec{ID: "bank-bench", Name: "Benchmark Bank", Region: "440300"}, Key: key}
	if err := s.cl.RegisterBank(ctx, credit.BankMember{ID: s.bank.ID, Name: s.bank.Name, PubKey: key.Public().(ed25519.PublicKey)}); err != nil {
		return s, err
	}
	auth, err := consortium.NewAuthority(credit.Region{ID: "440300", Name: "Shenzhen", Divisions: []string{"4403"}}, time.Now())
	if err != nil {
		return s, err
	}
	authPEM := filepath.Join(dir, "authority.pem")
	if err := os.WriteFile(authPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: auth.Record.Cert}), 0o644); err != nil {
		return s, err
	}
	if err := run("authority", "register", "--admin", adminURL, "--operator-token-file", filepath.Join(dir, "operator.token"), "--cert", authPEM); err != nil {
		return s, err
	}
	for _, u := range subj {
		ent, err := auth.Certify(u, time.Now())
		if err != nil {
			return s, err
		}
		g, err := ent.Grant(s.bank.ID, "440300", credit.AllCategories(), credit.PurposeCreditReview, time.Now(), 24*time.Hour)
		if err != nil {
			return s, err
		}
		res, err := s.cl.RecordConsent(ctx, g)
		if err != nil {
			return s, fmt.Errorf("record consent: %w", err)
		}
		s.grants = append(s.grants, *res.Consent)
	}
	return s, pollUntil(ctx, time.Minute, "a query answered", func() (bool, string) {
		n, err := s.query(ctx, 0)
		return err == nil && n > 0, fmt.Sprint(n, err)
	})
}

// query asks about the i-th consented subject and returns the region's
// record count.
func (s *servedRegion) query(ctx context.Context, i int) (int, error) {
	g := &s.grants[i%len(s.grants)]
	q, err := s.bank.Query(g.Subject, g.Categories, g.Purpose, g, time.Now())
	if err != nil {
		return 0, err
	}
	body, err := json.Marshal(&q)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cl.Base+"/v1/query", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("query: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	var res queryResult
	if err := json.Unmarshal(b, &res); err != nil {
		return 0, err
	}
	if len(res.Regions) != 1 || res.Regions[0].Status != node.StatusOK {
		return 0, fmt.Errorf("query: %+v", res.Regions)
	}
	return res.Regions[0].RecordCount, nil
}

// drive runs k query loops until stop is closed and returns the phase's
// latencies.
func (s *servedRegion) drive(ctx context.Context, k int, stop <-chan struct{}) phaseResult {
	var mu sync.Mutex
	var lat []time.Duration
	failures := 0
	start := time.Now()
	var wg sync.WaitGroup
	for w := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i += k {
				select {
				case <-stop:
					return
				default:
				}
				t0 := time.Now()
				_, err := s.query(ctx, i)
				d := time.Since(t0)
				mu.Lock()
				if err != nil {
					failures++
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	q := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	r := phaseResult{queries: len(lat), failures: failures, p50: q(0.5), p99: q(0.99), p999: q(0.999), seconds: time.Since(start).Seconds(), load: load1()}
	if len(lat) > 0 {
		r.max = lat[len(lat)-1]
	}
	return r
}

// measure runs the idle phase, then the importing phase.
func (s *servedRegion) measure(ctx context.Context, feed string, k int, idle time.Duration, extra []string) (phaseResult, phaseResult, error) {
	stop := make(chan struct{})
	timer := time.AfterFunc(idle, func() { close(stop) })
	a := s.drive(ctx, k, stop)
	timer.Stop()

	args := append([]string{"import", "--quiet", "--json", "--config", s.cfgPath, "--admin", s.cl.Admin,
		"--operator-token-file", filepath.Join(s.dir, "operator.token"), "--errors", filepath.Join(s.dir, "import-errors.jsonl")}, extra...)
	imp := exec.CommandContext(ctx, s.bin, append(args, feed)...)
	var impOut, impErr bytes.Buffer
	imp.Stdout, imp.Stderr = &impOut, &impErr
	if err := imp.Start(); err != nil {
		return a, phaseResult{}, err
	}
	stop = make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- imp.Wait(); close(stop) }()
	b := s.drive(ctx, k, stop)
	if err := <-done; err != nil {
		return a, b, fmt.Errorf("ccnode import into the running node: %w\n%s%s", err, impOut.String(), impErr.String())
	}
	var sum struct {
		Records int64   `json:"records"`
		Rate    float64 `json:"records_per_second"`
	}
	if err := json.Unmarshal(impOut.Bytes(), &sum); err != nil {
		return a, b, fmt.Errorf("import summary %q: %w", impOut.String(), err)
	}
	b.importRate = sum.Rate
	return a, b, nil
}

func (s *servedRegion) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}
