package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/atomicfile"
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/network/embedded"
	"github.com/prdcredit/ccnode/network/fabric"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/audit"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
)

// findingsError makes the process exit with status 2 when an audit found
// something (1 stays for "the audit could not run").
type findingsError struct{ n int }

func (e findingsError) Error() string { return fmt.Sprintf("audit: %d finding(s)", e.n) }
func (e findingsError) ExitCode() int { return 2 }

var auditLedgerFlags = []cli.Flag{
	&cli.StringFlag{Name: "snapshot", Category: catLedger, EnvVars: []string{"CCNODE_AUDIT_SNAPSHOT"},
		Usage: "ledger snapshot file written by 'ccnode audit snapshot' (air-gapped audit)"},
	&cli.StringFlag{Name: "ledger-dir", Category: catLedger, EnvVars: []string{"CCNODE_LEDGER_DIR"},
		Usage: "data folder of an embedded ledger (stop the node that uses it first)"},
	&cli.StringFlag{Name: "ledger-url", Category: catLedger, EnvVars: []string{"CCNODE_AUDIT_LEDGER_URL"},
		Usage: "an embedded ledger a running node serves (its ledger.serve_addr, as http://host:port), read as --ledger-msp"},
	&cli.StringFlag{Name: "ledger-msp", Category: catLedger, EnvVars: []string{"CCNODE_AUDIT_LEDGER_MSP"},
		Usage: "embedded ledger: act as this registered identity (default with --ledger-dir: a fresh auditor identity)"},
	&cli.StringFlag{Name: "ledger-key", Category: catLedger, EnvVars: []string{"CCNODE_AUDIT_LEDGER_KEY"},
		Usage: "embedded ledger: the ed25519 key file of --ledger-msp"},
	&cli.StringFlag{Name: "fabric-config", Category: catLedger, EnvVars: []string{"CCNODE_FABRIC_CONFIG"},
		Usage: "Fabric connection file (gateway endpoint, TLS CA, MSP id, certificate and key, channel, chaincode)"},
	&cli.DurationFlag{Name: "ledger-timeout", Category: catLedger, EnvVars: []string{"CCNODE_AUDIT_LEDGER_TIMEOUT"}, Value: 2 * time.Minute,
		Usage: "longest to spend reading a live ledger"},
	&cli.DurationFlag{Name: "events-quiet", Category: catLedger, EnvVars: []string{"CCNODE_AUDIT_EVENTS_QUIET"}, Value: 500 * time.Millisecond,
		Usage: "when reading a live ledger, stop replaying its events once caught up and quiet this long"},
}

func auditCommand() *cli.Command {
	return &cli.Command{
		Name:      "audit",
		Usage:     "verify receipt exports against the ledger, offline",
		ArgsUsage: "EXPORT.jsonl...",
		Description: "Checks every signature, every consent at the time of the answer, inclusion under\n" +
			"anchored checkpoints, their consistency, the completeness of each region's log, the\n" +
			"requesters' acknowledgements against the answerers' logs, and how soon receipts were\n" +
			"anchored. Exports come from `ccnode receipts export` (answered or received). Exit\n" +
			"status 0: no finding; 2: findings; 1: the audit could not run.",
		Flags: append(slicesClone(auditLedgerFlags),
			&cli.StringSliceFlag{Name: "consents", Category: catData, EnvVars: []string{"CCNODE_AUDIT_CONSENTS"},
				Usage: "file of consent documents the auditor holds (JSON array or one per line)"},
			&cli.StringSliceFlag{Name: "region", Category: catData, EnvVars: []string{"CCNODE_AUDIT_REGIONS"},
				Usage: "audit only these answering regions (repeat or comma-separate)"},
			&cli.TimestampFlag{Name: "since", Category: catData, Layout: time.RFC3339, EnvVars: []string{"CCNODE_AUDIT_SINCE"},
				Usage: "check receipts at or after this time (RFC 3339)"},
			&cli.TimestampFlag{Name: "until", Category: catData, Layout: time.RFC3339, EnvVars: []string{"CCNODE_AUDIT_UNTIL"},
				Usage: "check receipts before this time (RFC 3339)"},
			&cli.DurationFlag{Name: "anchor-delay", Category: catData, Value: audit.DefaultAnchorDelay, EnvVars: []string{"CCNODE_AUDIT_ANCHOR_DELAY"},
				Usage: "longest a receipt may wait for an anchored checkpoint"},
			&cli.DurationFlag{Name: "revocation-bound", Category: catData, EnvVars: []string{"CCNODE_AUDIT_REVOCATION_BOUND"},
				Usage: "answers on a consent this long after its revocation's ledger time are counted, not findings: the consortium's propagation bound, its nodes' ledger.grace_period (0: none allowed)"},
			&cli.DurationFlag{Name: "retirement-bound", Category: catData, EnvVars: []string{"CCNODE_AUDIT_RETIREMENT_BOUND"},
				Usage: "a retired region's receipt for a query signed this long after its retirement's ledger time is judged as asked before it: the time a vote takes to commit and reach the nodes, at most their ledger.grace_period (0: none allowed)"},
			&cli.BoolFlag{Name: "require-anchored", Category: catData, EnvVars: []string{"CCNODE_AUDIT_REQUIRE_ANCHORED"},
				Usage: "a receipt no anchored checkpoint covers yet is a finding, however recent (pending receipts are otherwise counted, and checked for everything but inclusion)"},
			&cli.IntFlag{Name: "workers", Category: catData, EnvVars: []string{"CCNODE_AUDIT_WORKERS"},
				Usage: "verifying goroutines (0: one per core)"},
			&cli.BoolFlag{Name: "json", Category: catOutput, EnvVars: []string{"CCNODE_AUDIT_JSON"},
				Usage: "write the report as JSON"},
			&cli.IntFlag{Name: "max-findings", Category: catOutput, Value: audit.DefaultMaxFindings, EnvVars: []string{"CCNODE_AUDIT_MAX_FINDINGS"},
				Usage: "findings listed in the report (all are counted)"},
			&cli.BoolFlag{Name: "no-progress", Category: catOutput, EnvVars: []string{"CCNODE_NO_PROGRESS"},
				Usage: "no progress bar even on a terminal"},
		),
		Action:      runAudit,
		Subcommands: []*cli.Command{auditSnapshotCommand()},
	}
}

func auditSnapshotCommand() *cli.Command {
	return &cli.Command{
		Name:  "snapshot",
		Usage: "write what an audit needs from the ledger to a file, for an air-gapped audit",
		Description: "With --config, the ledger of that node: a running node takes the snapshot through\n" +
			"its own ledger client and streams it from its admin API (it holds its embedded\n" +
			"ledger's folder); a stopped node's ledger.embedded_dir is opened directly.",
		Flags: append(append(slicesClone(auditLedgerFlags[1:]),
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Category: catLedger,
				Usage: "a node's config: its ledger (through the node when it runs, else its ledger.embedded_dir)"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Category: catOutput, Required: true, EnvVars: []string{"CCNODE_AUDIT_SNAPSHOT_OUT"},
				Usage: "snapshot file to write"},
		), nodeAdminFlags()...),
		Action: func(c *cli.Context) error {
			if cfgPath := c.String("config"); cfgPath != "" {
				done, err := snapshotThroughNode(c, cfgPath)
				if done || err != nil {
					return err
				}
			}
			l, err := openAuditLedger(c)
			if err != nil {
				return err
			}
			defer l.Close()
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("ledger-timeout"))
			defer cancel()
			snap, err := audit.TakeSnapshot(ctx, l, c.Duration("events-quiet"), time.Now())
			if err != nil {
				return err
			}
			return atomicfile.Replace(c.String("out"), 0o600, snap.Write)
		},
	}
}

func slicesClone(f []cli.Flag) []cli.Flag { return append([]cli.Flag(nil), f...) }

// snapshotThroughNode takes the snapshot of the node cfgPath configures
// from its admin API when it runs (done), or, when it is stopped, sets
// --ledger-dir to its ledger.embedded_dir for the offline path.
func snapshotThroughNode(c *cli.Context, cfgPath string) (done bool, err error) {
	for _, f := range []string{"ledger-dir", "ledger-url", "fabric-config"} {
		if c.IsSet(f) {
			return false, fmt.Errorf("audit snapshot: give --config (a node's ledger) or --%s, not both", f)
		}
	}
	cfg, err := node.LoadConfig(cfgPath)
	if err != nil {
		return false, err
	}
	cl, err := runningNodeAdmin(c, cfgPath, cfg)
	if err != nil {
		return false, fmt.Errorf("audit snapshot: %w", err)
	}
	if cl != nil {
		err := atomicfile.Replace(c.String("out"), 0o600, func(w io.Writer) error {
			return cl.LedgerSnapshot(c.Context, c.Duration("events-quiet"), c.Duration("ledger-timeout"), w)
		})
		if err != nil {
			return true, fmt.Errorf("audit snapshot through the running node: %w", err)
		}
		return true, nil
	}
	if cfg.Ledger.EmbeddedDir == "" {
		return false, fmt.Errorf("audit snapshot: %s is stopped and has no ledger.embedded_dir: name its ledger with --ledger-url or --fabric-config", cfgPath)
	}
	return false, c.Set("ledger-dir", cfg.Ledger.EmbeddedDir)
}

func runAudit(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("audit: name at least one export file")
	}
	view, closeView, err := auditView(c)
	if err != nil {
		return err
	}
	defer closeView()
	in := audit.Inputs{}
	var total int64
	for _, p := range c.Args().Slice() {
		in.Exports = append(in.Exports, audit.FileSource(p))
		if st, err := os.Stat(p); err == nil {
			total += st.Size()
		}
	}
	for _, p := range c.StringSlice("consents") {
		in.ConsentFiles = append(in.ConsentFiles, audit.FileSource(p))
	}
	opts := audit.Options{
		AnchorDelay:     c.Duration("anchor-delay"),
		RevocationBound: c.Duration("revocation-bound"),
		RetirementBound: c.Duration("retirement-bound"),
		RequireAnchored: c.Bool("require-anchored"),
		Workers:         c.Int("workers"),
		MaxFindings:     c.Int("max-findings"),
		Logger:          auditLogger(c),
	}
	if t := c.Timestamp("since"); t != nil {
		opts.Since = *t
	}
	if t := c.Timestamp("until"); t != nil {
		opts.Until = *t
	}
	for _, r := range c.StringSlice("region") {
		for _, s := range strings.Split(r, ",") {
			if s = strings.TrimSpace(s); s != "" {
				opts.Regions = append(opts.Regions, credit.RegionID(s))
			}
		}
	}
	if !c.Bool("no-progress") && !quiet(c) && isatty.IsTerminal(os.Stderr.Fd()) && total > 0 {
		bar := progressbar.NewOptions64(total, progressbar.OptionSetWriter(os.Stderr), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription("auditing"), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
		opts.Progress = func(n int64) {
			if bar.State().CurrentNum+n > bar.GetMax64() {
				bar.ChangeMax64(bar.State().CurrentNum + n) // requesters' exports are read twice
			}
			bar.Add64(n)
		}
		defer bar.Finish()
	}
	// The collector keeps Go's default (GOGC=100): GOGC=400 let a large
	// consent file's garbage grow to five times the live heap for no CPU
	// measurably saved (BENCHMARKS.md, issue 15).
	rep, err := audit.Run(c.Context, in, view, opts)
	if err != nil {
		return err
	}
	out := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := rep.WriteText(out); err != nil {
		return err
	}
	if !rep.OK() {
		return findingsError{rep.Total}
	}
	return nil
}

// auditView opens the snapshot file or the live ledger. A live ledger is
// read once into an in-memory snapshot: the audit then asks it nothing
// more, and keys are checked as registered at each document's time.
func auditView(c *cli.Context) (audit.LedgerView, func(), error) {
	if p := c.String("snapshot"); p != "" {
		// Read one record at a time, its consents left in the file.
		s, err := audit.OpenSnapshotFile(p)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p, err)
		}
		return s, func() { s.Close() }, nil
	}
	l, err := openAuditLedger(c)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("ledger-timeout"))
	defer cancel()
	s, err := audit.TakeSnapshot(ctx, l, c.Duration("events-quiet"), time.Now())
	l.Close()
	if err != nil {
		return nil, nil, err
	}
	return s, func() {}, nil
}

// openAuditLedger opens the backend the flags name.
func openAuditLedger(c *cli.Context) (network.Ledger, error) {
	logger := auditLogger(c)
	switch {
	case c.String("ledger-dir") != "":
		return openEmbeddedForAudit(c.String("ledger-dir"), c.String("ledger-msp"), c.String("ledger-key"), logger)
	case c.String("ledger-url") != "":
		// A served ledger reads only for identities it knows: the
		// auditor's must be registered with it.
		if c.String("ledger-msp") == "" || c.String("ledger-key") == "" {
			return nil, errors.New("--ledger-url needs --ledger-msp and --ledger-key (an identity the serving node registered)")
		}
		b, err := os.ReadFile(c.String("ledger-key"))
		if err != nil {
			return nil, err
		}
		key, err := parseAuditKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.String("ledger-key"), err)
		}
		return embedded.Dial(c.String("ledger-url"), c.String("ledger-msp"), key)
	case c.String("fabric-config") != "":
		cfg, err := fabric.LoadConfig(c.String("fabric-config"))
		if err != nil {
			return nil, err
		}
		return fabric.Dial(c.Context, cfg, logger)
	}
	return nil, errors.New("audit: name the ledger: --snapshot FILE, --ledger-dir DIR, --ledger-url URL or --fabric-config FILE")
}

// embeddedAuditLedger closes the server it opened with its client.
type embeddedAuditLedger struct {
	*embedded.Client
	srv *embedded.Server
}

func (l embeddedAuditLedger) Close() error { return l.srv.Close() }

// openEmbeddedForAudit opens an embedded ledger's data folder (the node
// that uses it must be stopped: Badger allows one process), checks its
// block chain, and returns a client. Reads are signed proposals like
// writes, so the client acts as an identity: the one named, or else a
// fresh identity of this audit, registered for it (a non-member may read,
// and may write nothing).
func openEmbeddedForAudit(dir, msp, keyPath string, logger *slog.Logger) (network.Ledger, error) {
	// Opening a folder that is not there would create an empty ledger, and
	// the audit would then report every receipt instead of the typo.
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("embedded ledger: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("embedded ledger: %s is not a folder", dir)
	}
	if storeLocked(dir) {
		return nil, fmt.Errorf("embedded ledger %s is in use by another process (the node that runs it): take the snapshot through it with 'ccnode audit snapshot --config <its config>'", dir)
	}
	srv, err := embedded.Open(dir, embedded.Options{Logger: logger})
	if err != nil {
		return nil, err
	}
	fail := func(err error) (network.Ledger, error) {
		srv.Close()
		return nil, err
	}
	if err := srv.VerifyChain(); err != nil {
		return fail(fmt.Errorf("embedded ledger %s: %w", dir, err))
	}
	var key ed25519.PrivateKey
	if msp != "" {
		if keyPath == "" {
			return fail(errors.New("--ledger-msp needs --ledger-key"))
		}
		b, err := os.ReadFile(keyPath)
		if err != nil {
			return fail(err)
		}
		if key, err = parseAuditKey(b); err != nil {
			return fail(fmt.Errorf("%s: %w", keyPath, err))
		}
	} else {
		var id [6]byte
		if _, err := rand.Read(id[:]); err != nil {
			return fail(err)
		}
		msp = "auditor-" + hex.EncodeToString(id[:])
		if _, key, err = ed25519.GenerateKey(rand.Reader); err != nil {
			return fail(err)
		}
		if err := srv.AddIdentity(msp, key.Public().(ed25519.PublicKey)); err != nil {
			return fail(err)
		}
	}
	return embeddedAuditLedger{Client: srv.Client(msp, key), srv: srv}, nil
}

// parseAuditKey reads an ed25519 private key: 64 raw bytes, or its seed or
// whole key in hex or base64 on one line.
func parseAuditKey(b []byte) (ed25519.PrivateKey, error) {
	if len(b) == ed25519.PrivateKeySize {
		return ed25519.PrivateKey(b), nil
	}
	t := strings.TrimSpace(string(b))
	for _, dec := range []func(string) ([]byte, error){hex.DecodeString, base64.StdEncoding.DecodeString} {
		if k, err := dec(t); err == nil {
			switch len(k) {
			case ed25519.SeedSize:
				return ed25519.NewKeyFromSeed(k), nil
			case ed25519.PrivateKeySize:
				return ed25519.PrivateKey(k), nil
			}
		}
	}
	return nil, errors.New("not an ed25519 private key (64 bytes, or seed or key in hex or base64)")
}

// auditLogger logs warnings and worse unless --log-level says otherwise:
// an audit's findings, not its steps, are its output. The flags were
// checked before the command ran.
func auditLogger(c *cli.Context) *slog.Logger {
	log, err := newLogger(c, slog.LevelWarn)
	if err != nil {
		return slog.Default()
	}
	return log
}
