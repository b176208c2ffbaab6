package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/store/ingest"
)

// offlineImportFlags shape how an import writes Badger's files itself;
// through a running node they mean nothing (it writes batch by batch).
var offlineImportFlags = []string{"bulk", "tmp-dir", "bulk-chunk-mb", "compression", "memtable-mb", "cpuprofile", "memprofile"}

// runLiveImport imports every input through the running node's admin API
// (see node/imports.go): with the same validation (the node runs the same
// parser), the same error file and summary, the same exit codes, and a
// rerun of the same command resumes each file after its last committed
// batch.
func runLiveImport(ctx context.Context, c *cli.Context, cl *node.Client, format ingest.Format, errOut io.Writer, prog ingest.ProgressSink, log *slog.Logger) error {
	stdin := c.App.Reader
	for _, f := range offlineImportFlags {
		if c.IsSet(f) {
			return fmt.Errorf("import: --%s applies to a stopped node's store; this node is running (admin API %s) and imports batch by batch", f, cl.Admin)
		}
	}
	// Kept streaming on the admin connection as long as the import runs.
	cl.HTTP = &http.Client{Transport: &http.Transport{DisableCompression: true, ResponseHeaderTimeout: 0}}
	defer cl.HTTP.CloseIdleConnections()
	log.Info("the node is running: importing through its admin API", "admin", cl.Admin)
	enc := json.NewEncoder(errOut)
	enc.SetEscapeHTML(false)
	params := url.Values{}
	if c.IsSet("future-tolerance") {
		params.Set("future_tolerance", c.Duration("future-tolerance").String())
	}
	for _, f := range []struct{ flag, param string }{{"max-line-bytes", "max_line_bytes"}, {"batch-lines", "batch_lines"}, {"workers", "workers"}, {"max-rate", "max_rate"}} {
		if c.IsSet(f.flag) {
			params.Set(f.param, strconv.Itoa(c.Int(f.flag)))
		}
	}
	if prog != nil {
		params.Set("progress_interval", min(c.Duration("progress-interval"), time.Second).String())
	}
	start := time.Now()
	var sum ingest.Summary
	var inputErrs []error
	for _, name := range c.Args().Slice() {
		sum.Inputs++
		err := liveImportOne(ctx, cl, name, stdin, format, params, enc, prog, &sum, start, log)
		if errors.Is(err, ingest.ErrInput) {
			log.Error("input not imported", "input", name, "err", err)
			inputErrs = append(inputErrs, err)
			continue
		}
		if err != nil {
			sum.Elapsed = time.Since(start)
			if ctx.Err() != nil {
				fmt.Fprintf(c.App.Writer, "import interrupted after %s: %d lines read, %d records stored by this run; run the same command again to finish it\n",
					sum.Elapsed.Round(time.Millisecond), sum.Lines, sum.Records())
				return fmt.Errorf("import: %w", ctx.Err())
			}
			return fmt.Errorf("import through the running node: %w (batches it committed stay; run the same command again to resume)", err)
		}
	}
	sum.Elapsed = time.Since(start)
	if prog != nil {
		prog.Finish(sum)
	}
	if err := printImportSummary(c, sum); err != nil {
		return err
	}
	if len(inputErrs) > 0 {
		return fmt.Errorf("import: %w", errors.Join(inputErrs...))
	}
	if sum.Rejected > 0 {
		return importRejectedError{sum.Rejected}
	}
	return nil
}

// liveImportOne streams one input: from the byte the node's store holds
// it up to when a plain JSON Lines file was cut off before, from its start
// otherwise (the node then skips what it holds).
func liveImportOne(ctx context.Context, cl *node.Client, name string, stdin io.Reader, format ingest.Format, base url.Values, enc *json.Encoder,
	prog ingest.ProgressSink, sum *ingest.Summary, start time.Time, log *slog.Logger) error {
	params := url.Values{}
	for k, v := range base {
		params[k] = v
	}
	params.Set("name", name)
	var body io.Reader
	size := int64(-1)
	var f *os.File
	if name == "-" {
		if format == ingest.FormatUnknown {
			format = ingest.FormatJSONL
		}
		body = stdin
	} else {
		if format == ingest.FormatUnknown {
			if format = ingest.FormatOf(name); format == ingest.FormatUnknown {
				return fmt.Errorf("%w: %s: cannot tell the format from the name; use --format", ingest.ErrInput, name)
			}
		}
		var err error
		if f, err = os.Open(name); err != nil {
			return fmt.Errorf("%w: %w", ingest.ErrInput, err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("%w: %w", ingest.ErrInput, err)
		}
		size = st.Size()
		params.Set("id", ingest.InputID(name, st, format))
		params.Set("size", strconv.FormatInt(size, 10))
	}
	params.Set("format", format.String())
	for attempt := 0; ; attempt++ {
		var offset int64
		if id := params.Get("id"); id != "" {
			p, err := cl.ImportProgress(ctx, id)
			if err != nil {
				return err
			}
			if p.Done {
				log.Info("input already imported; skipping", "input", name)
				sum.Skipped++
				return nil
			}
			// A plain JSON Lines file is sent from where the store's
			// progress ends; anything else from its start.
			if p.Offset > 0 && format == ingest.FormatJSONL && !gzipped(f) {
				offset = p.Offset
			}
			if _, err := f.Seek(offset, io.SeekStart); err != nil {
				return fmt.Errorf("%w: %w", ingest.ErrInput, err)
			}
			if offset > 0 {
				log.Info("resuming input", "input", name, "line", p.Line+1, "offset", offset)
			}
		}
		if f != nil {
			body = bufio.NewReaderSize(f, 256<<10)
		}
		params.Set("offset", strconv.FormatInt(offset, 10))
		sent := ingest.NewCountingReader(body, offset)
		if prog != nil {
			prog.Start(name, size)
		}
		res, err := cl.Import(ctx, params, sent, func(ev node.ImportEvent) error {
			switch {
			case ev.Rejected != nil:
				if err := enc.Encode(ev.Rejected); err != nil {
					return fmt.Errorf("error file: %w", err)
				}
			case ev.Progress != nil && prog != nil:
				prog.Update(addSummary(*sum, ev.Progress.Summary, time.Since(start)), sent.Count())
			}
			return nil
		})
		var se *node.StatusError
		if errors.As(err, &se) && se.Status == http.StatusConflict && attempt == 0 && f != nil {
			continue // the progress moved meanwhile: ask again
		}
		if err != nil {
			return err
		}
		if res.Skipped {
			sum.Skipped++
		}
		*sum = addSummary(*sum, res.Summary, 0)
		if res.Error != "" {
			if res.InputFailed {
				return fmt.Errorf("%w: %s: %s", ingest.ErrInput, name, res.Error)
			}
			return errors.New(res.Error)
		}
		return nil
	}
}

// addSummary adds one input's counts to the totals; elapsed, when set,
// replaces theirs.
func addSummary(t, s ingest.Summary, elapsed time.Duration) ingest.Summary {
	t.Lines += s.Lines
	t.Inserted += s.Inserted
	t.Replaced += s.Replaced
	t.Unchanged += s.Unchanged
	t.Rejected += s.Rejected
	t.Bytes += s.Bytes
	if elapsed > 0 {
		t.Elapsed = elapsed
	}
	return t
}

// gzipped reports whether a file starts with gzip's magic bytes.
func gzipped(f *os.File) bool {
	var b [2]byte
	n, _ := f.ReadAt(b[:], 0)
	return n == 2 && b[0] == 0x1f && b[1] == 0x8b
}
