package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
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
		Usage: "data folder of an embedded ledger"},
	&cli.StringFlag{Name: "fabric-gateway", Category: catLedger, EnvVars: []string{"CCNODE_FABRIC_GATEWAY"},
		Usage: "Fabric gateway endpoint (host:port) of a consortium peer"},
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
		Flags: append(slicesClone(auditLedgerFlags[1:]),
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Category: catOutput, Required: true, EnvVars: []string{"CCNODE_AUDIT_SNAPSHOT_OUT"},
				Usage: "snapshot file to write"},
		),
		Action: func(c *cli.Context) error {
			l, err := openAuditLedger(c)
			if err != nil {
				return err
			}
			defer l.Close()
			snap, err := audit.TakeSnapshot(c.Context, l, c.Duration("events-quiet"), time.Now())
			if err != nil {
				return err
			}
			return writeFileAtomic(c.String("out"), snap.Write)
		},
	}
}

func slicesClone(f []cli.Flag) []cli.Flag { return append([]cli.Flag(nil), f...) }

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
		docs, err := readConsentDocs(p)
		if err != nil {
			return err
		}
		in.Consents = append(in.Consents, docs...)
	}
	opts := audit.Options{
		AnchorDelay: c.Duration("anchor-delay"),
		Workers:     c.Int("workers"),
		MaxFindings: c.Int("max-findings"),
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
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
	if !c.Bool("no-progress") && isatty.IsTerminal(os.Stderr.Fd()) && total > 0 {
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
		f, err := os.Open(p)
		if err != nil {
			return nil, nil, err
		}
		defer f.Close()
		s, err := audit.ReadSnapshot(f)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p, err)
		}
		return s, func() {}, nil
	}
	l, err := openAuditLedger(c)
	if err != nil {
		return nil, nil, err
	}
	s, err := audit.TakeSnapshot(c.Context, l, c.Duration("events-quiet"), time.Now())
	l.Close()
	if err != nil {
		return nil, nil, err
	}
	return s, func() {}, nil
}

// errNoBackend: the ledger backend named by the flags is not built into
// this binary yet.
var errNoBackend = errors.New("ledger backend not available in this build")

// openAuditLedger opens the backend the flags name.
func openAuditLedger(c *cli.Context) (network.Ledger, error) {
	switch {
	case c.String("ledger-dir") != "":
		// TODO(network/embedded): open the embedded ledger's data folder
		// read-only once that package lands.
		return nil, fmt.Errorf("--ledger-dir %s: embedded ledger: %w (take a snapshot with a build that has it, or use --snapshot)", c.String("ledger-dir"), errNoBackend)
	case c.String("fabric-gateway") != "":
		// TODO(network/fabric): connect through the Fabric gateway.
		return nil, fmt.Errorf("--fabric-gateway %s: %w", c.String("fabric-gateway"), errNoBackend)
	}
	return nil, errors.New("audit: name the ledger: --snapshot FILE, --ledger-dir DIR or --fabric-gateway ADDR")
}

// readConsentDocs reads consent documents: a JSON array or one per line.
func readConsentDocs(path string) ([]credit.ConsentGrant, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var docs []credit.ConsentGrant
	if err := json.Unmarshal(b, &docs); err == nil {
		return docs, nil
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	for {
		var g credit.ConsentGrant
		err := dec.Decode(&g)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: consent document %d: %w", path, len(docs)+1, err)
		}
		docs = append(docs, g)
	}
}

// writeFileAtomic writes through a temporary file in the same folder and
// renames it, so a reader never sees half a file.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
