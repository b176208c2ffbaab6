package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4/options"
	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/store"
	"github.com/prdcredit/ccnode/store/ingest"
)

// Exit codes of ccnode import.
const (
	importExitOK       = 0 // every line imported
	importExitFailed   = 1 // an input or the store failed
	importExitRejected = 2 // everything readable imported, some lines rejected
)

// importRejectedError makes the process exit with importExitRejected.
type importRejectedError struct{ n int64 }

func (e importRejectedError) Error() string {
	return fmt.Sprintf("import: %d line(s) rejected (see the error file)", e.n)
}
func (e importRejectedError) ExitCode() int { return importExitRejected }

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "import department feeds (JSON Lines or CSV, plain or gzip) into the record store",
		ArgsUsage: "FILE... ('-' reads standard input)",
		Description: `Reads each FILE in turn. Field names, the same in both formats:
  uscc, source (department id), source_id, category (short code), date (YYYY-MM-DD),
  attrs (a JSON object).
JSON Lines: one object per line, e.g.
  {"uscc":"91440300MA5F123452","source":"szmr","source_id":"R1","category":"penalty","date":"2024-03-01","attrs":{"amount":5000}}
CSV: a header row naming the columns (any order, extra columns ignored); attrs is a
quoted JSON column, e.g.
  uscc,source,source_id,category,date,attrs
  91440300MA5F123452,szmr,R1,penalty,2024-03-01,"{""amount"":5000}"
The format comes from the extension (.jsonl/.ndjson/.json/.csv, optionally .gz) unless
--format is given ('-', standard input, is JSON Lines unless --format says csv); gzip is
recognised by its content.

Every line is validated; a bad line is written to the error file (JSON Lines: file, line,
field, reason) and counted, and never stops the import. Importing the same record again
changes nothing; a record with the same (uscc, source, source_id) but other content
replaces the stored one.

How it writes: the whole input is parsed, sorted (spilling sorted runs to --tmp-dir when
larger than --bulk-chunk-mb), merged in key order with what the store holds, and written
as sorted tables in one durable step at the end. Killed at any moment, run the same
command again: the store ends exactly as an uninterrupted run leaves it (a run killed
while writing is finished by the next command that opens the store; one killed before
starts over). A file already imported completely is skipped. --transactional instead
commits every --batch-lines lines in its own transaction, so that a rerun continues
after the last committed batch, at a fraction of the speed.

--bulk loads an EMPTY store with Badger's stream writer (much faster; sorts the input,
spilling to --tmp-dir). An interrupted bulk load starts over when run again.

While the node of --config runs (it holds its store), the inputs go through its
admin API (--admin, default the config's admin.addr; the operator token from
--operator-token-file, $CCNODE_OPERATOR_TOKEN or the operator.token beside the
config): the node imports them batch by batch while it keeps answering queries,
with the same validation, error file and exit codes; a rerun of the same command
resumes each file after its last committed batch. Between batches (500 lines
unless --batch-lines says otherwise) the node gives way to the queries it is
answering, and --max-rate caps the lines per second. --bulk and the store tuning
flags apply to a stopped node only.

Before it opens the store, an import estimates the space it writes (the load's plan and its
tables, about twice the input's size uncompressed; a gzip input by its uncompressed size)
and refuses, naming the store's folder and the bytes needed and free, when that would
leave less than the node's store.min_free_bytes free (default 1 GiB). Progress is logged
every --progress-interval in every phase (reading, merging with the store, writing the
tables); --quiet logs none.

Exit codes: 0 every line imported; 2 some lines rejected (the rest imported); 1 failed.`,
		Flags: append(append(storeFlags(), nodeAdminFlags()...),
			&cli.StringFlag{Name: "format", Category: catData, EnvVars: []string{"CCNODE_IMPORT_FORMAT"},
				Usage: "input format, jsonl or csv (default: from each file's extension; jsonl for '-')"},
			&cli.StringFlag{Name: "errors", Category: catOutput, EnvVars: []string{"CCNODE_IMPORT_ERRORS"},
				Usage: "append rejected lines to this JSON Lines file (default: standard error)"},
			&cli.BoolFlag{Name: "bulk", Category: catData, EnvVars: []string{"CCNODE_IMPORT_BULK"},
				Usage: "initial load into an empty store via Badger's stream writer"},
			&cli.BoolFlag{Name: "transactional", Category: catData, EnvVars: []string{"CCNODE_IMPORT_TRANSACTIONAL"},
				Usage: "commit every --batch-lines lines (resumes batch by batch; several times slower)"},
			&cli.DurationFlag{Name: "future-tolerance", Category: catData, EnvVars: []string{"CCNODE_IMPORT_FUTURE_TOLERANCE"},
				Value: ingest.DefaultFutureTolerance, Usage: "accept event dates up to this far in the future"},
			&cli.IntFlag{Name: "max-line-bytes", Category: catData, EnvVars: []string{"CCNODE_IMPORT_MAX_LINE_BYTES"},
				Value: ingest.DefaultMaxLineBytes, Usage: "reject longer lines"},
			&cli.IntFlag{Name: "batch-lines", Category: catData, EnvVars: []string{"CCNODE_IMPORT_BATCH_LINES"},
				Value: ingest.DefaultBatchLines, Usage: "lines per parsing batch (with --transactional, per transaction and resume step; into a running node, default 500)"},
			&cli.IntFlag{Name: "workers", Category: catData, EnvVars: []string{"CCNODE_IMPORT_WORKERS"},
				Usage: "parsing goroutines (default: number of CPUs; into a running node, half of its CPUs)"},
			&cli.IntFlag{Name: "max-rate", Category: catData, EnvVars: []string{"CCNODE_IMPORT_MAX_RATE"},
				Usage: "into a running node: at most this many lines per second, leaving its CPU to queries (0: no limit; BENCHMARKS.md, \"Reports while importing\")"},
			&cli.StringFlag{Name: "tmp-dir", Category: catData, EnvVars: []string{"CCNODE_IMPORT_TMP_DIR"},
				Usage: "where sorted runs are spilled (default: the system temp directory)"},
			&cli.IntFlag{Name: "bulk-chunk-mb", Category: catData, EnvVars: []string{"CCNODE_IMPORT_BULK_CHUNK_MB"},
				Value: store.DefaultChunkBytes >> 20, Usage: "MiB of records sorted in memory before a sorted run is spilled"},
			&cli.StringFlag{Name: "compression", Category: catData, EnvVars: []string{"CCNODE_STORE_COMPRESSION"}, Value: "none",
				Usage: "compression of the tables this import writes: none, snappy or zstd. " +
					"none (the default) takes about twice the disk of snappy (about 280 against 133 bytes per record, " +
					"PostgreSQL about 370) and makes reports about 1.7x cheaper: blocks are read straight from the mapped " +
					"tables instead of being decompressed on every cache miss (BENCHMARKS.md)"},
			&cli.IntFlag{Name: "memtable-mb", Category: catData, EnvVars: []string{"CCNODE_STORE_MEMTABLE_MB"}, Value: store.DefaultMemTableSize >> 20,
				Usage: "Badger memtable size; also bounds one transaction to 15% of it"},
			&cli.BoolFlag{Name: "json", Category: catOutput, EnvVars: []string{"CCNODE_JSON"},
				Usage: "print the summary as JSON"},
			&cli.DurationFlag{Name: "progress-interval", Category: catOutput, EnvVars: []string{"CCNODE_IMPORT_PROGRESS_INTERVAL"},
				Value: 5 * time.Second, Usage: "log progress this often: while reading when not on a terminal, and in every later phase (merge, write); --quiet logs none"},
			&cli.StringFlag{Name: "cpuprofile", Category: catOutput, EnvVars: []string{"CCNODE_IMPORT_CPUPROFILE"},
				Usage: "write a CPU profile of the import to this file (for tuning)"},
			&cli.StringFlag{Name: "memprofile", Category: catOutput, EnvVars: []string{"CCNODE_IMPORT_MEMPROFILE"},
				Usage: "write a profile of the import's allocations to this file at its end (for tuning)"},
		),
		Action: runImport,
	}
}

func runImport(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("import: no input files (use '-' for standard input)")
	}
	// An import allocates at a high rate; a lazier collector held under a
	// memory limit costs far less CPU. The limit covers the Go heap only:
	// the sort buffer (--bulk-chunk-mb) is mapped outside it and the
	// table files' pages are released as they are written, so heap, sort
	// buffer and mapped pages stay under 2 GiB of RSS; a lower limit keeps
	// the collector running (`ccbench import`). GOGC / GOMEMLIMIT still win.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(1280 << 20)
	}
	if p := c.String("cpuprofile"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			return fmt.Errorf("import: cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("import: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if p := c.String("memprofile"); p != "" {
		// Every allocation since the start counts: on a machine where a
		// fresh page costs more than the work done in it, what an import
		// allocates matters more than what it keeps.
		defer func() {
			f, err := os.Create(p)
			if err == nil {
				err = errors.Join(pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
			}
			if err != nil {
				fmt.Fprintf(c.App.ErrWriter, "import: memory profile: %v\n", err)
			}
		}()
	}
	ctx, stop := signal.NotifyContext(contextOf(c), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log, err := newLogger(c, slog.LevelInfo)
	if err != nil {
		return err
	}

	var format ingest.Format
	if f := c.String("format"); f != "" {
		var err error
		if format, err = ingest.ParseFormat(f); err != nil {
			return err
		}
	}
	var errOut io.Writer = c.App.ErrWriter
	if p := c.String("errors"); p != "" && p != "-" {
		// Rejected lines are records: owner-only, like the store.
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("import: error file: %w", err)
		}
		defer f.Close()
		errOut = f
	}
	var prog ingest.ProgressSink
	if !quiet(c) {
		if f, ok := c.App.ErrWriter.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			prog = ingest.NewBarProgress(f)
		} else {
			prog = ingest.NewLogProgress(log, c.Duration("progress-interval"))
		}
	}
	// A running node owns its store: the inputs go through its admin API.
	if cfgPath := c.String("config"); cfgPath != "" && c.String("data-dir") == "" {
		cfg, err := node.LoadConfig(cfgPath)
		if err != nil {
			return err
		}
		cl, err := runningNodeAdmin(c, cfgPath, cfg)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		if cl != nil {
			return runLiveImport(ctx, c, cl, format, errOut, prog, log)
		}
	}
	if c.IsSet("max-rate") {
		return errors.New("import: --max-rate paces an import into a running node; this store is not in use")
	}
	// Without --transactional nothing of an import goes through Badger's
	// memtable, so its compactors would only move tables the import just
	// wrote, and Close would wait for them (see store.Options).
	cfg, err := nodeConfigOf(c)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	dir := node.StoreDir(cfg)
	if storeLocked(dir) {
		return fmt.Errorf("import: %s is in use by another process (a running node holds it): give that node's --config to import through it", dir)
	}
	if err := checkImportSpace(dir, cfg, c.Args().Slice(), c.String("format"), c.String("compression")); err != nil {
		return err
	}
	so := store.Options{Dir: dir, Logger: log, MemTableSize: int64(c.Int("memtable-mb")) << 20,
		NoCompactions: !c.Bool("transactional")}
	switch c.String("compression") {
	case "snappy":
		so.Compression = options.Snappy
	case "zstd":
		so.Compression = options.ZSTD
	case "none":
		so.NoCompression = true
	default:
		return fmt.Errorf("import: --compression %q: want snappy, zstd or none", c.String("compression"))
	}
	db, err := store.Open(ctx, so)
	if err != nil {
		return err
	}
	defer db.Close()

	im, err := ingest.New(db, ingest.Options{
		Format:          format,
		Bulk:            c.Bool("bulk"),
		Transactional:   c.Bool("transactional"),
		BulkOptions:     store.BulkOptions{TempDir: c.String("tmp-dir"), ChunkBytes: c.Int("bulk-chunk-mb") << 20, ProgressEvery: importProgressEvery(c)},
		FutureTolerance: c.Duration("future-tolerance"),
		MaxLineBytes:    c.Int("max-line-bytes"),
		BatchLines:      c.Int("batch-lines"),
		Workers:         c.Int("workers"),
		Errors:          errOut,
		Stdin:           c.App.Reader,
		Logger:          log,
		Progress:        prog,
	})
	if err != nil {
		return err
	}
	sum, ierr := im.Import(ctx, c.Args().Slice())
	if errors.Is(ierr, context.Canceled) {
		fmt.Fprintf(c.App.Writer, "import interrupted after %s: %d lines read, %d records stored by this run; run the same command again to finish it\n",
			sum.Elapsed.Round(time.Millisecond), sum.Lines, sum.Records())
	} else if err := printImportSummary(c, sum); err != nil {
		return err
	}
	if cerr := db.Close(); cerr != nil && ierr == nil {
		ierr = cerr
	}
	if ierr != nil {
		return fmt.Errorf("import: %w", ierr)
	}
	if sum.Rejected > 0 {
		return importRejectedError{sum.Rejected}
	}
	return nil
}

func contextOf(c *cli.Context) context.Context {
	if c.Context != nil {
		return c.Context
	}
	return context.Background()
}

func printImportSummary(c *cli.Context, s ingest.Summary) error {
	w := c.App.Writer
	if c.Bool("json") {
		out := struct {
			ingest.Summary
			Records int64   `json:"records"`
			Rate    float64 `json:"records_per_second"`
		}{s, s.Records(), s.Rate()}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	_, err := fmt.Fprintf(w, "imported %d records in %s (%.0f records/s): %d new, %d replaced, %d unchanged; %d lines rejected; %d inputs (%d already done)\n",
		s.Records(), s.Elapsed.Round(time.Millisecond), s.Rate(), s.Inserted, s.Replaced, s.Unchanged, s.Rejected, s.Inputs, s.Skipped)
	return err
}
