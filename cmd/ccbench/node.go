package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network/fabricnet"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/consortium"
)

// The three regions of the benchmark consortium, Shenzhen first: its bank
// queries through it.
var benchRegions = []credit.RegionID{"440300", "440100", "440400"}

func nodeCommand() *cli.Command {
	return &cli.Command{
		Name:  "node",
		Usage: "bank queries against three `ccnode run` processes, anchoring on, off and one transaction per receipt",
		Description: `Starts three regional nodes (Shenzhen, Guangzhou, Zhuhai) as separate 'ccnode run'
processes on 127.0.0.1 with generated records, registers a bank at Shenzhen and
consents for a set of Shenzhen enterprises, and drives signed bank queries at each
in-flight level. Every query is answered by all three regions, so it leaves three
receipts, each durable before its answer.

Per run, the nodes are restarted in each anchor.mode, side by side on the same
ledger and data: off (receipts logged, never anchored), checkpoint (the default:
signed checkpoints of the receipt log, one ledger transaction per node per
interval) and per_receipt (one ledger transaction per receipt, committed before
the answer). The checkpoint mode starts on the backlog the off mode left, so its
first checkpoint measures how many receipts one anchoring transaction carries.

Figures: queries/s, p50/p99 latency at the bank, receipts issued and anchored per
second (from the nodes' metrics), anchoring lag p99, node CPU per query; medians
over --runs, and ratios against the checkpoint mode of the same run.

--ledger fabric starts a local Fabric network ('ccnode fabric up'; Fabric's
binaries are built once into .cache/). --ledger embedded runs the embedded
ledger in Shenzhen's process and the other regions reach it over HTTP.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "ledger", Value: "fabric", EnvVars: []string{"CCBENCH_LEDGER"},
				Usage: "comma-separated: fabric, embedded"},
			&cli.StringFlag{Name: "modes", Value: "off,checkpoint,per_receipt", EnvVars: []string{"CCBENCH_MODES"},
				Usage: "anchor modes, run in this order each run"},
			&cli.StringFlag{Name: "inflight", Value: "1,16,64", EnvVars: []string{"CCBENCH_INFLIGHT"},
				Usage: "queries in flight"},
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, EnvVars: []string{"CCBENCH_DURATION"},
				Usage: "measured time per in-flight level"},
			&cli.DurationFlag{Name: "warmup", Value: 3 * time.Second, EnvVars: []string{"CCBENCH_WARMUP"},
				Usage: "unmeasured time before each level"},
			&cli.IntFlag{Name: "runs", Value: 3, EnvVars: []string{"CCBENCH_RUNS"}, Usage: "runs; figures are medians"},
			&cli.IntFlag{Name: "enterprises", Value: 200, EnvVars: []string{"CCBENCH_ENTERPRISES"},
				Usage: "generated enterprises per region (~183 records each)"},
			&cli.IntFlag{Name: "subjects", Value: 20, EnvVars: []string{"CCBENCH_SUBJECTS"},
				Usage: "Shenzhen enterprises with a consent; queries pick among them"},
			&cli.DurationFlag{Name: "anchor-interval", Value: node.DefaultAnchorInterval, EnvVars: []string{"CCBENCH_ANCHOR_INTERVAL"},
				Usage: "anchor.interval of the checkpoint mode"},
			&cli.DurationFlag{Name: "batch-timeout", Value: fabricnet.DefaultBatchTimeout, EnvVars: []string{"CCBENCH_BATCH_TIMEOUT"},
				Usage: "the Fabric orderer's batch timeout"},
			&cli.StringFlag{Name: "dir", Value: "bench-out/node", EnvVars: []string{"CCBENCH_DIR"},
				Usage: "working folder (stores, Fabric network, node logs); emptied first"},
			&cli.StringFlag{Name: "ccnode", EnvVars: []string{"CCBENCH_CCNODE"},
				Usage: "a prebuilt ccnode binary (default: build ./cmd/ccnode)"},
			&cli.IntFlag{Name: "procs", Value: -1, EnvVars: []string{"CCBENCH_PROCS"},
				Usage: "GOMAXPROCS of each node and of the driving bank client: -1 shares this machine's CPUs among the four (at least 1 each); 0 leaves Go's default, one per CPU in each"},
		},
		Action: runNodeBench,
	}
}

type nodeBenchOpts struct {
	dir, bin       string
	modes          []string
	inflight       []int
	duration       time.Duration
	warmup         time.Duration
	runs           int
	enterprises    int
	subjects       int
	anchorInterval time.Duration
	batchTimeout   time.Duration
	procs          int // GOMAXPROCS of each process; 0: Go's default
	out            io.Writer
}

// benchProcs is GOMAXPROCS for each of the four processes that stand for
// machines of their own (three nodes and the bank): flag -1 gives each its
// share of this machine's CPUs, as Go's default does for a process under a
// CPU quota of that share. Go's default in each, one P per CPU, would run
// 4×CPUs Ps on CPUs cores, and the runtime's wakeups of idle Ps then cost
// more than the work at one query in flight (BENCHMARKS.md).
func benchProcs(flag, cpus int) int {
	if flag >= 0 {
		return flag
	}
	return max(1, cpus/(len(benchRegions)+1))
}

func runNodeBench(c *cli.Context) error {
	ctx := c.Context
	o := nodeBenchOpts{
		modes: strings.Split(c.String("modes"), ","), duration: c.Duration("duration"), warmup: c.Duration("warmup"),
		runs: c.Int("runs"), enterprises: c.Int("enterprises"), subjects: c.Int("subjects"),
		anchorInterval: c.Duration("anchor-interval"), batchTimeout: c.Duration("batch-timeout"), out: c.App.Writer,
		procs: benchProcs(c.Int("procs"), runtime.NumCPU()),
	}
	if o.procs > 0 {
		runtime.GOMAXPROCS(o.procs)
	}
	for _, m := range o.modes {
		if m != node.AnchorOff && m != node.AnchorCheckpoint && m != node.AnchorPerReceipt {
			return fmt.Errorf("--modes: unknown anchor mode %q", m)
		}
	}
	for _, s := range strings.Split(c.String("inflight"), ",") {
		k, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || k < 1 {
			return fmt.Errorf("--inflight: %q is not a positive count", s)
		}
		o.inflight = append(o.inflight, k)
	}
	if o.runs < 1 || o.subjects < 1 || o.enterprises < o.subjects {
		return errors.New("want --runs >= 1 and --enterprises >= --subjects >= 1")
	}
	var err error
	if o.dir, err = filepath.Abs(c.String("dir")); err != nil {
		return err
	}
	if err := os.RemoveAll(o.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	o.bin = c.String("ccnode")
	if o.bin == "" {
		o.bin = filepath.Join(o.dir, "ccnode")
		if err := buildCCNode(ctx, o.out, o.bin); err != nil {
			return err
		}
	}
	procs := "Go's default"
	if o.procs > 0 {
		procs = strconv.Itoa(o.procs)
	}
	fmt.Fprintf(o.out, "ccbench node: %d runs, modes %s, in flight %v, %s per level after %s warm-up; %d CPUs, GOMAXPROCS %s per process; load average at start %s\n",
		o.runs, strings.Join(o.modes, ","), o.inflight, o.duration, o.warmup, runtime.NumCPU(), procs, loadAvg())
	for _, l := range strings.Split(c.String("ledger"), ",") {
		if err := benchLedger(ctx, o, strings.TrimSpace(l)); err != nil {
			return fmt.Errorf("ledger %s: %w", l, err)
		}
	}
	return nil
}

// benchLedger runs every run, mode and level on one ledger and prints
// its summary.
func benchLedger(ctx context.Context, o nodeBenchOpts, ledger string) (err error) {
	cons, err := newBenchConsortium(ctx, o, ledger)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, cons.close()) }()
	var levels []levelResult
	var drains []drainResult
	for run := 1; run <= o.runs; run++ {
		prev := ""
		// Even runs take the last mode first, so that a drift of the
		// machine's load does not always favour the same mode (off still
		// comes right before checkpoint in the default order).
		modes := o.modes
		if run%2 == 0 && len(modes) > 1 {
			modes = append([]string{modes[len(modes)-1]}, modes[:len(modes)-1]...)
		}
		for _, mode := range modes {
			if err := cons.start(ctx, mode); err != nil {
				return err
			}
			if mode == node.AnchorCheckpoint && prev == node.AnchorOff && cons.ended != nil {
				d, err := cons.drain(ctx, cons.ended)
				if err != nil {
					return err
				}
				d.run = run
				drains = append(drains, d)
				fmt.Fprintf(o.out, "%s run %d: backlog of %.0f receipts anchored in %.0f transactions, %.0f ms each at most: %.0f receipts per anchoring second\n",
					ledger, run, d.receipts, d.txs, d.maxTx*1000, d.rate())
			}
			for _, k := range o.inflight {
				r, err := cons.drive(ctx, k)
				if err != nil {
					return err
				}
				r.ledger, r.mode, r.run = ledger, mode, run
				levels = append(levels, r)
				fmt.Fprintf(o.out, "%s run %d %-11s %3d in flight: %s\n", ledger, run, mode, k, r)
			}
			if cons.ended, err = cons.sample(ctx); err != nil {
				return err
			}
			if err := cons.stop(); err != nil {
				return err
			}
			prev = mode
		}
	}
	printNodeSummary(o, ledger, levels, drains)
	return nil
}

// benchConsortium is three `ccnode run` processes on one ledger.
type benchConsortium struct {
	o       nodeBenchOpts
	ledger  string
	dir     string
	regions []*benchRegion
	// fabricDir is the local Fabric network (fabric ledger).
	fabricDir string
	// ledgerURL is where Shenzhen's node serves the embedded ledger
	// (embedded ledger), from its last start.
	ledgerURL string
	bank      *consortium.Bank
	grants    []credit.ConsentGrant
	setUp     bool
	hc        *http.Client
	// authorityPEM is the CA certificate of the development identity
	// authority that certified the consents' enterprises; Shenzhen
	// registers it at setup.
	authorityPEM string
	// ended is the nodes' last sample before they stopped.
	ended []nodeSample
}

type benchRegion struct {
	id      credit.RegionID
	cfg     string // config file text; {{LEDGER_URL}} is filled at start
	dir     string
	cfgPath string
	token   string // operator token
	admin   string // admin API URL
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	url     string
	cl      *node.Client
}

func newBenchConsortium(ctx context.Context, o nodeBenchOpts, ledger string) (_ *benchConsortium, err error) {
	c := &benchConsortium{o: o, ledger: ledger, dir: filepath.Join(o.dir, ledger),
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 5 * time.Minute}}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.close())
		}
	}()
	ledgerYAML := map[credit.RegionID]string{}
	keyFiles := map[credit.RegionID]string{}
	switch ledger {
	case "fabric":
		c.fabricDir = filepath.Join(c.dir, "fabric")
		t0 := time.Now()
		fmt.Fprintf(o.out, "fabric up (batch timeout %s)\n", o.batchTimeout)
		cmd := exec.CommandContext(ctx, o.bin, "fabric", "up", "--dir", c.fabricDir, "--batch-timeout", o.batchTimeout.String(), "--timeout", "30m")
		if out, err := cmd.CombinedOutput(); err != nil {
			return c, fmt.Errorf("ccnode fabric up: %w\n%s", err, out)
		}
		fmt.Fprintf(o.out, "fabric up took %.1fs\n", time.Since(t0).Seconds())
		fnet, err := fabricnet.Load(c.fabricDir)
		if err != nil {
			return c, err
		}
		for i, fr := range fnet.Regions {
			ledgerYAML[fr.ID] = fmt.Sprintf("  embedded_dir: \"\"\n  fabric_gateway: %q\n  msp_id: %q\n", fnet.GatewayFiles[i], fr.MSPID)
			keyFiles[fr.ID] = filepath.Join(c.fabricDir, "nodes", string(fr.ID), "node.key")
		}
	case "embedded":
		// Shenzhen's node runs the embedded ledger and serves it; the
		// other two reach it over HTTP (ledger.embedded_url, known once
		// Shenzhen has started, so their configs are written at start).
		boot := struct {
			Regions []credit.RegionMember `json:"regions"`
		}{}
		for _, id := range benchRegions {
			kf := filepath.Join(c.dir, "keys", string(id)+".key")
			key, err := node.GenerateKeyFile(kf)
			if err != nil {
				return c, err
			}
			pub := key.Public().(ed25519.PublicKey)
			pid, err := node.PeerID(pub)
			if err != nil {
				return c, err
			}
			msp := "Region" + string(id) + "MSP"
			boot.Regions = append(boot.Regions, credit.RegionMember{ID: id, Name: "region " + string(id), MSPID: msp, PeerID: pid,
				PubKey: pub, Status: credit.StatusActive, Divisions: []string{strings.TrimRight(string(id), "0")}})
			keyFiles[id] = kf
			if id == benchRegions[0] {
				ledgerYAML[id] = fmt.Sprintf("  embedded_dir: %q\n  serve_addr: \"127.0.0.1:0\"\n  bootstrap_file: %q\n  msp_id: %q\n",
					filepath.Join(c.dir, "ledger"), filepath.Join(c.dir, "members.json"), msp)
			} else {
				ledgerYAML[id] = fmt.Sprintf("  embedded_dir: \"\"\n  embedded_url: \"{{LEDGER_URL}}\"\n  msp_id: %q\n", msp)
			}
		}
		b, err := json.Marshal(boot)
		if err != nil {
			return c, err
		}
		if err := os.WriteFile(filepath.Join(c.dir, "members.json"), b, 0o600); err != nil {
			return c, err
		}
	default:
		return c, fmt.Errorf("unknown ledger %q (want fabric or embedded)", ledger)
	}
	for _, id := range benchRegions {
		if ledgerYAML[id] == "" {
			return c, fmt.Errorf("the %s ledger set up no identity for region %s", ledger, id)
		}
	}
	var subjects []credit.USCC
	for i, id := range benchRegions {
		r := &benchRegion{id: id, dir: filepath.Join(c.dir, "nodes", string(id))}
		if err := os.MkdirAll(r.dir, 0o700); err != nil {
			return c, err
		}
		opsFile := filepath.Join(r.dir, "operators")
		var err error
		if r.token, err = node.AddOperator(opsFile, "bench"); err != nil {
			return c, err
		}
		// Timeouts far above any latency the benchmark meets, so that a
		// slow design shows as latency, not as failed regions.
		cfg := fmt.Sprintf(`region: %q
data_dir: %q
key_file: %q
p2p:
  listen: ["/ip4/127.0.0.1/tcp/0"]
http:
  addr: "127.0.0.1:0"
  write_timeout: 5m
admin:
  addr: "127.0.0.1:0"
  operators_file: %q
ledger:
%sanchor:
  interval: %s
query:
  region_timeout: 2m
`, id, r.dir, keyFiles[id], opsFile, ledgerYAML[id], c.o.anchorInterval)
		r.cfgPath = filepath.Join(r.dir, "ccnode.yaml")
		r.cfg = cfg
		r.logPath = filepath.Join(r.dir, "ccnode.log")
		feed := filepath.Join(r.dir, "feed.jsonl")
		if out, err := exec.CommandContext(ctx, o.bin, "gen", "--region", string(id), "--enterprises", strconv.Itoa(o.enterprises),
			"--seed", strconv.Itoa(41+i), "--quiet", "-o", feed).CombinedOutput(); err != nil {
			return c, fmt.Errorf("ccnode gen %s: %w\n%s", id, err, out)
		}
		if i == 0 {
			if subjects, err = firstSubjects(feed, o.subjects); err != nil {
				return c, err
			}
		}
		if out, err := exec.CommandContext(ctx, o.bin, "import", "--data-dir", r.dir, feed).CombinedOutput(); err != nil {
			return c, fmt.Errorf("ccnode import %s: %w\n%s", id, err, out)
		}
		c.regions = append(c.regions, r)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return c, err
	}
	c.bank = &consortium.Bank{BankSpec: consortium.BankSpec{ID: "bank-bench", Name: "Benchmark Bank", Region: benchRegions[0]}, Key: key}
	// The subjects are Shenzhen's enterprises: Shenzhen's authority
	// certifies their keys.
	szRegion := credit.Region{ID: benchRegions[0], Name: "Shenzhen", Divisions: []string{strings.TrimRight(string(benchRegions[0]), "0")}}
	auth, err := consortium.NewAuthority(szRegion, time.Now())
	if err != nil {
		return c, err
	}
	c.authorityPEM = filepath.Join(c.dir, "authority.pem")
	if err := os.WriteFile(c.authorityPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: auth.Record.Cert}), 0o644); err != nil {
		return c, err
	}
	for _, s := range subjects {
		ent, err := auth.Certify(s, time.Now())
		if err != nil {
			return c, err
		}
		g, err := ent.Grant(c.bank.ID, benchRegions[0], credit.AllCategories(), credit.PurposeCreditReview, time.Now(), 24*time.Hour)
		if err != nil {
			return c, err
		}
		c.grants = append(c.grants, g)
	}
	return c, nil
}

// firstSubjects reads the first n distinct USCCs of a generated feed.
func firstSubjects(feed string, n int) ([]credit.USCC, error) {
	f, err := os.Open(feed)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []credit.USCC
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() && len(out) < n {
		var rec struct {
			USCC credit.USCC `json:"uscc"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("%s: %w", feed, err)
		}
		if !slices.Contains(out, rec.USCC) {
			out = append(out, rec.USCC)
		}
	}
	if len(out) < n {
		return nil, fmt.Errorf("%s: %d subjects, want %d (%v)", feed, len(out), n, sc.Err())
	}
	return out, nil
}

// start runs the three nodes in the given anchor mode and waits until each
// is ready; the first time it registers the bank and records the
// consents.
func (c *benchConsortium) start(ctx context.Context, mode string) error {
	for _, r := range c.regions {
		logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		cfg := strings.ReplaceAll(r.cfg, "{{LEDGER_URL}}", c.ledgerURL)
		if err := os.WriteFile(r.cfgPath, []byte(cfg), 0o600); err != nil {
			logf.Close()
			return err
		}
		r.cmd = exec.Command(c.o.bin, "run", "--config", r.cfgPath, "--anchor-mode", mode, "--log-level", "warn")
		r.cmd.Env = os.Environ()
		if c.o.procs > 0 {
			r.cmd.Env = append(r.cmd.Env, "GOMAXPROCS="+strconv.Itoa(c.o.procs))
		}
		stdout, err := r.cmd.StdoutPipe()
		if err != nil {
			logf.Close()
			return err
		}
		r.cmd.Stderr = logf
		if err := r.cmd.Start(); err != nil {
			logf.Close()
			return fmt.Errorf("start ccnode run %s: %w", r.id, err)
		}
		r.exited = make(chan struct{})
		// The node prints its bank API address, its admin API's, then the
		// address it serves its embedded ledger on if it does.
		lines := make(chan string, 3)
		go func() {
			br := bufio.NewReader(stdout)
			for range 3 {
				line, err := br.ReadString('\n')
				if err != nil {
					break
				}
				lines <- line
			}
			close(lines)
			io.Copy(logf, br)
		}()
		go func() {
			r.cmd.Wait()
			logf.Close()
			close(r.exited)
		}()
		want := 2 // the bank API's address, then the admin API's
		if strings.Contains(cfg, "serve_addr") {
			want = 3
		}
		for range want {
			select {
			case line := <-lines:
				line = strings.TrimSpace(line)
				if _, url, ok := strings.Cut(line, "bank API on "); ok {
					r.url = url
				} else if _, url, ok := strings.Cut(line, "admin API on "); ok {
					r.admin = url
				} else if _, url, ok := strings.Cut(line, "embedded ledger served on "); ok {
					c.ledgerURL = url
				} else {
					return fmt.Errorf("ccnode run %s printed %q, not its addresses (log: %s)", r.id, line, r.logPath)
				}
			case <-time.After(2 * time.Minute):
				return fmt.Errorf("ccnode run %s printed no address in 2m (log: %s)", r.id, r.logPath)
			}
		}
		r.cl = &node.Client{Base: r.url, Admin: r.admin, OperatorToken: r.token, HTTP: c.hc}
	}
	for _, r := range c.regions {
		if err := pollUntil(ctx, time.Minute, "region "+string(r.id)+" ready", func() (bool, string) {
			select {
			case <-r.exited:
				return false, "exited; see " + r.logPath
			default:
			}
			resp, err := c.hc.Get(r.url + "/readyz")
			if err != nil {
				return false, err.Error()
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, fmt.Sprintf("%d %s", resp.StatusCode, b)
		}); err != nil {
			return err
		}
	}
	if !c.setUp {
		if err := c.setup(ctx); err != nil {
			return err
		}
		c.setUp = true
	}
	// Every region must answer (a restarted node reloads its view).
	return pollUntil(ctx, time.Minute, "a query every region answers", func() (bool, string) {
		res, err := c.query(ctx, 0)
		if err != nil {
			return false, err.Error()
		}
		return allOK(res), fmt.Sprintf("%+v", res.Regions)
	})
}

func (c *benchConsortium) setup(ctx context.Context) error {
	sz := c.regions[0]
	if err := sz.cl.RegisterBank(ctx, credit.BankMember{ID: c.bank.ID, Name: c.bank.Name, PubKey: c.bank.Key.Public().(ed25519.PublicKey)}); err != nil {
		return fmt.Errorf("register bank: %w", err)
	}
	// Shenzhen registers the authority of its enterprises' keys, as an
	// operator does with the command.
	reg := exec.CommandContext(ctx, c.o.bin, "authority", "register", "--admin", sz.admin, "--cert", c.authorityPEM)
	reg.Env = append(os.Environ(), "CCNODE_OPERATOR_TOKEN="+sz.token)
	if out, err := reg.CombinedOutput(); err != nil {
		return fmt.Errorf("ccnode authority register: %w\n%s", err, out)
	}
	// Consents recorded a few at a time (each is a ledger transaction).
	errs := make(chan error, len(c.grants))
	sem := make(chan struct{}, 8)
	for i := range c.grants {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			res, err := sz.cl.RecordConsent(ctx, c.grants[i])
			if err == nil {
				c.grants[i] = *res.Consent
			}
			errs <- err
		}()
	}
	for range c.grants {
		if err := <-errs; err != nil {
			return fmt.Errorf("record consent: %w", err)
		}
	}
	for _, r := range c.regions {
		for _, g := range c.grants {
			if err := pollUntil(ctx, time.Minute, "consent at "+string(r.id), func() (bool, string) {
				res, err := r.cl.ConsentStatus(ctx, g.ID)
				if err != nil {
					return false, err.Error()
				}
				return res.Status == credit.ConsentActive, string(res.Status)
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

func allOK(res *queryResult) bool {
	if len(res.Regions) != len(benchRegions) {
		return false
	}
	for _, st := range res.Regions {
		if st.Status != node.StatusOK {
			return false
		}
	}
	return true
}

// queryResult is the part of a consolidated answer (node.Consolidated)
// the benchmark checks: each region's status. Decoding only it keeps the
// client's CPU out of the nodes' way on a small machine: building the
// records and receipts of a three-region answer (about 130 KB) cost the
// client about 1 ms of CPU per query, a third of what the three nodes
// spend on it; skipping them costs a scan.
type queryResult struct {
	Regions []struct {
		Region      credit.RegionID `json:"region"`
		Status      string          `json:"status"`
		Reason      credit.Code     `json:"reason"`
		Message     string          `json:"message"`
		RecordCount int             `json:"record_count"`
	} `json:"regions"`
}

// query sends one signed bank query about the i-th consented subject to
// the home node's bank API (POST /v1/query, as node.Client.Query does).
func (c *benchConsortium) query(ctx context.Context, i int) (*queryResult, error) {
	g := &c.grants[i%len(c.grants)]
	q, err := c.bank.Query(g.Subject, g.Categories, g.Purpose, g, time.Now())
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(&q)
	if err != nil {
		return nil, err
	}
	base := c.regions[0].url
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimRight(base, "/")+"/v1/query", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("query: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	var res queryResult
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("query: answer: %w", err)
	}
	return &res, nil
}

// stop ends the nodes with SIGTERM and waits for them.
func (c *benchConsortium) stop() error {
	var errs []error
	for _, r := range c.regions {
		if r.cmd != nil && r.cmd.Process != nil {
			r.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, r := range c.regions {
		if r.cmd == nil {
			continue
		}
		select {
		case <-r.exited:
			if code := r.cmd.ProcessState.ExitCode(); code != 0 {
				errs = append(errs, fmt.Errorf("ccnode run %s exited %d (log: %s)", r.id, code, r.logPath))
			}
		case <-time.After(time.Minute):
			r.cmd.Process.Kill()
			<-r.exited
			errs = append(errs, fmt.Errorf("ccnode run %s still running 1m after SIGTERM; killed", r.id))
		}
		r.cmd = nil
	}
	return errors.Join(errs...)
}

func (c *benchConsortium) close() error {
	errs := []error{c.stop()}
	if c.fabricDir != "" {
		if out, err := exec.Command(c.o.bin, "fabric", "down", "--dir", c.fabricDir).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ccnode fabric down: %w\n%s", err, out))
		}
	}
	return errors.Join(errs...)
}

// nodeSample is what one node's metrics and /proc say at one moment.
type nodeSample struct {
	logSize, anchoredSize, checkpoints, anchorFails float64
	lag, anchorTx                                   *dto.Histogram
	cpu                                             float64 // seconds, user + system
}

func (c *benchConsortium) sample(ctx context.Context) ([]nodeSample, error) {
	out := make([]nodeSample, len(c.regions))
	for i, r := range c.regions {
		req, err := http.NewRequestWithContext(ctx, "GET", r.url+"/metrics", nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("metrics of %s: %w", r.id, err)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("metrics of %s: %w", r.id, err)
		}
		one := func(name string) *dto.Metric {
			if mf := mfs[name]; mf != nil && len(mf.Metric) > 0 {
				return mf.Metric[0]
			}
			return &dto.Metric{}
		}
		s := nodeSample{
			logSize:      one("ccnode_receipt_log_size").GetGauge().GetValue(),
			anchoredSize: one("ccnode_anchored_log_size").GetGauge().GetValue(),
			checkpoints:  one("ccnode_checkpoints_anchored_total").GetCounter().GetValue(),
			anchorFails:  one("ccnode_anchor_failures_total").GetCounter().GetValue(),
			lag:          one("ccnode_anchor_lag_seconds").GetHistogram(),
			anchorTx:     one("ccnode_anchor_tx_seconds").GetHistogram(),
		}
		if s.cpu, err = procCPU(r.cmd.Process.Pid); err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// drainResult: the first checkpoint after the off mode carries its backlog.
type drainResult struct {
	run      int
	receipts float64 // backlog anchored
	txs      float64
	maxTx    float64 // the slowest node's anchoring transaction time, s
}

// rate is receipts anchored per second of anchoring: the nodes anchor in
// parallel, so the slowest node's transaction bounds the drain.
func (d drainResult) rate() float64 { return d.receipts / d.maxTx }

// drain waits until the checkpoint mode, just started, has anchored the
// backlog the off mode left (off is what the nodes sampled before they
// stopped), and reports what its anchoring transactions carried. The
// nodes' counters and histograms started at zero with the new processes.
func (c *benchConsortium) drain(ctx context.Context, off []nodeSample) (drainResult, error) {
	var after []nodeSample
	err := pollUntil(ctx, c.o.anchorInterval+5*time.Minute, "backlog anchored", func() (bool, string) {
		var err error
		if after, err = c.sample(ctx); err != nil {
			return false, err.Error()
		}
		for i, s := range after {
			if s.anchoredSize < off[i].logSize {
				return false, fmt.Sprintf("anchored %.0f of %.0f", s.anchoredSize, off[i].logSize)
			}
		}
		return true, ""
	})
	if err != nil {
		return drainResult{}, err
	}
	var d drainResult
	for i, s := range after {
		d.receipts += s.anchoredSize - off[i].anchoredSize
		d.txs += s.checkpoints
		d.maxTx = max(d.maxTx, s.anchorTx.GetSampleSum())
	}
	return d, nil
}

// levelResult is one in-flight level of one mode of one run.
type levelResult struct {
	ledger, mode string
	run, k       int
	queries      int
	failed       int // HTTP errors and answers where some region was not ok
	qps          float64
	p50, p99     float64 // ms
	receipts     float64 // issued per second, all nodes
	anchored     float64 // covered by anchored checkpoints per second
	txs          float64 // anchoring transactions per second
	lagP99       float64 // s; NaN without anchoring
	cpuPerQuery  float64 // ms of node CPU (three processes)
	load1        float64
}

func (r levelResult) String() string {
	return fmt.Sprintf("%7.1f q/s  p50 %8.1f ms  p99 %8.1f ms  receipts %7.1f/s  anchored %7.1f/s  txs %6.2f/s  lag p99 %6.2fs  cpu %5.2f ms/q  failed %d  load %.2f",
		r.qps, r.p50, r.p99, r.receipts, r.anchored, r.txs, r.lagP99, r.cpuPerQuery, r.failed, r.load1)
}

// drive keeps k queries in flight for warm-up plus duration and measures
// the queries that complete inside the measured window.
func (c *benchConsortium) drive(ctx context.Context, k int) (levelResult, error) {
	r := levelResult{k: k, load1: load1()}
	start := time.Now()
	from, to := start.Add(c.o.warmup), start.Add(c.o.warmup+c.o.duration)
	var (
		mu     sync.Mutex
		lat    []float64
		failed int
		wg     sync.WaitGroup
	)
	for w := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(to); i += k {
				t0 := time.Now()
				res, err := c.query(ctx, i)
				t1 := time.Now()
				if t1.Before(from) || t1.After(to) {
					continue
				}
				mu.Lock()
				if err != nil || !allOK(res) {
					failed++
				} else {
					lat = append(lat, float64(t1.Sub(t0).Microseconds())/1000)
				}
				mu.Unlock()
			}
		}()
	}
	waitUntil := func(t time.Time) {
		select {
		case <-time.After(time.Until(t)):
		case <-ctx.Done():
		}
	}
	waitUntil(from)
	before, err := c.sample(ctx)
	if err != nil {
		return r, err
	}
	waitUntil(to)
	after, err := c.sample(ctx)
	if err != nil {
		return r, err
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return r, err
	}
	secs := c.o.duration.Seconds()
	r.queries, r.failed = len(lat), failed
	r.qps = float64(len(lat)) / secs
	r.p50, r.p99 = quantile(lat, 0.5), quantile(lat, 0.99)
	var cpu float64
	lag := map[float64]float64{}
	var lagCount float64
	for i := range after {
		a, b := after[i], before[i]
		r.receipts += (a.logSize - b.logSize) / secs
		r.anchored += (a.anchoredSize - b.anchoredSize) / secs
		r.txs += (a.checkpoints - b.checkpoints) / secs
		cpu += a.cpu - b.cpu
		for j, bk := range a.lag.GetBucket() {
			d := float64(bk.GetCumulativeCount())
			if j < len(b.lag.GetBucket()) {
				d -= float64(b.lag.GetBucket()[j].GetCumulativeCount())
			}
			lag[bk.GetUpperBound()] += d
		}
		lagCount += float64(a.lag.GetSampleCount() - b.lag.GetSampleCount())
	}
	r.lagP99 = histQuantile(lag, lagCount, 0.99)
	if len(lat) > 0 {
		r.cpuPerQuery = cpu * 1000 / float64(len(lat))
	}
	return r, nil
}

// histQuantile interpolates a quantile inside cumulative buckets (upper
// bound -> count), as Prometheus's histogram_quantile does; NaN when empty.
func histQuantile(buckets map[float64]float64, total, q float64) float64 {
	if total == 0 {
		return math.NaN()
	}
	bounds := make([]float64, 0, len(buckets))
	for b := range buckets {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	rank := q * total
	lo, prev := 0.0, 0.0
	for _, b := range bounds {
		n := buckets[b]
		if n >= rank {
			if n == prev {
				return b
			}
			return lo + (b-lo)*(rank-prev)/(n-prev)
		}
		lo, prev = b, n
	}
	return lo // beyond the last bucket
}

// quantile of samples (nearest rank); NaN when empty.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func medianOf(xs []float64) float64 { return quantile(xs, 0.5) }

// pollUntil polls cond every 50 ms until it holds or d passes.
func pollUntil(ctx context.Context, d time.Duration, what string, cond func() (bool, string)) error {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, last := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %s (last: %s)", what, d, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// printNodeSummary prints medians over runs per mode and level, with each
// mode's ratios against the checkpoint mode.
func printNodeSummary(o nodeBenchOpts, ledger string, levels []levelResult, drains []drainResult) {
	type key struct {
		mode string
		k    int
	}
	med := map[key]levelResult{}
	ratios := map[key][4]float64{}
	for _, mode := range o.modes {
		for _, k := range o.inflight {
			var qps, p50, p99, rec, anc, txs, lag, cpu, load []float64
			m := levelResult{ledger: ledger, mode: mode, k: k}
			for _, r := range levels {
				if r.mode != mode || r.k != k {
					continue
				}
				qps, p50, p99 = append(qps, r.qps), append(p50, r.p50), append(p99, r.p99)
				rec, anc, txs = append(rec, r.receipts), append(anc, r.anchored), append(txs, r.txs)
				lag, cpu, load = append(lag, r.lagP99), append(cpu, r.cpuPerQuery), append(load, r.load1)
				m.failed += r.failed
				m.queries += r.queries
			}
			// Ratios against checkpoint within each run, then their median.
			var rq, r50, r99, rcpu []float64
			for _, r := range levels {
				if r.mode != mode || r.k != k {
					continue
				}
				for _, b := range levels {
					if b.mode == node.AnchorCheckpoint && b.k == k && b.run == r.run {
						rq, r50, r99 = append(rq, r.qps/b.qps), append(r50, r.p50/b.p50), append(r99, r.p99/b.p99)
						rcpu = append(rcpu, r.cpuPerQuery/b.cpuPerQuery)
					}
				}
			}
			ratios[key{mode, k}] = [4]float64{medianOf(rq), medianOf(r50), medianOf(r99), medianOf(rcpu)}
			m.qps, m.p50, m.p99 = medianOf(qps), medianOf(p50), medianOf(p99)
			m.receipts, m.anchored, m.txs = medianOf(rec), medianOf(anc), medianOf(txs)
			m.lagP99, m.cpuPerQuery, m.load1 = medianOf(dropNaN(lag)), medianOf(cpu), medianOf(load)
			med[key{mode, k}] = m
		}
	}
	w := tabwriter.NewWriter(o.out, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(o.out, "\n%s ledger: medians of %d runs (%s measured per level); × columns: median over runs of the ratio to checkpoint at the same level in the same run\n", ledger, o.runs, o.duration)
	fmt.Fprintln(w, "mode\tin flight\tq/s\tp50 ms\tp99 ms\treceipts/s\tanchored/s\tanchor tx/s\tlag p99 s\tCPU ms/q\tfailed\tload\tq/s ×\tp50 ×\tp99 ×\tCPU/q ×\t")
	for _, mode := range o.modes {
		for _, k := range o.inflight {
			m, x := med[key{mode, k}], ratios[key{mode, k}]
			fmt.Fprintf(w, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t%.2f\t%.2f\t%d\t%.2f\t%.3f\t%.3f\t%.3f\t%.3f\t\n",
				mode, k, m.qps, m.p50, m.p99, m.receipts, m.anchored, m.txs, m.lagP99, m.cpuPerQuery, m.failed, m.load1,
				x[0], x[1], x[2], x[3])
		}
	}
	w.Flush()
	if len(drains) > 0 {
		var rates, recs []float64
		for _, d := range drains {
			rates, recs = append(rates, d.rate()), append(recs, d.receipts)
		}
		fmt.Fprintf(o.out, "checkpoint capacity: the off mode's backlog (median %.0f receipts) anchored at a median %.0f receipts per anchoring second\n",
			medianOf(recs), medianOf(rates))
		var best float64
		for _, k := range o.inflight {
			best = max(best, med[key{node.AnchorPerReceipt, k}].anchored)
		}
		if best > 0 {
			fmt.Fprintf(o.out, "per_receipt: at most %.1f receipts anchored/s (best level); checkpoint capacity / per_receipt = %.0f×\n",
				best, medianOf(rates)/best)
		}
	}
}

func dropNaN(xs []float64) []float64 {
	return slices.DeleteFunc(slices.Clone(xs), math.IsNaN)
}
