package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/atomicfile"
	"github.com/prdcredit/ccnode/node/audit"
	"github.com/urfave/cli/v2"
)

func auditCommand() *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "time `ccnode audit` of two binaries, alternately: speed on an export, peak RSS on large inputs",
		Description: `Runs 'ccnode audit' of --old and --new one after the other, --runs times, on:

  speed      the export (--export, with --snapshot): receipts/s, receipts per CPU-second, peak RSS
  snapshot   --snapshot padded with synthetic consent records to --big-mb, on --small-export
  consents   a --consents file of --big-mb (the export's consent documents, repeated under
             new ids), on --small-export
  longline   --small-export with its middle line replaced by one of --big-mb bytes

The export and snapshot come from the audit benchmark, which generates and keeps them:
  go test -run XXX -bench 'Audit/receipts=200000$' -benchtime 1x ./node/audit/
  (files in $TMPDIR/ccnode-audit-bench/). Peak RSS is wait4's ru_maxrss. Medians and
new/old ratios are printed; each run's figures too.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "old", Required: true, Usage: "ccnode binary to compare against"},
			&cli.StringFlag{Name: "new", Required: true, Usage: "ccnode binary under test"},
			&cli.StringFlag{Name: "export", Required: true, Usage: "answered export for the speed case"},
			&cli.StringFlag{Name: "snapshot", Required: true, Usage: "ledger snapshot the exports audit against"},
			&cli.StringFlag{Name: "small-export", Usage: "export for the large-input cases (default --export)"},
			&cli.StringFlag{Name: "small-snapshot", Usage: "the snapshot --small-export audits against (default --snapshot)"},
			&cli.IntFlag{Name: "runs", Value: 3},
			&cli.IntFlag{Name: "big-mb", Value: 200, Usage: "size of the large inputs"},
			&cli.StringSliceFlag{Name: "cases", Value: cli.NewStringSlice("speed", "snapshot", "consents", "longline")},
			&cli.StringFlag{Name: "dir", Value: filepath.Join(os.TempDir(), "ccnode-audit-bench"), Usage: "where the large inputs are written (kept)"},
		},
		Action: runAuditBench,
	}
}

type auditRun struct {
	wall, cpu time.Duration
	maxRSS    int64
	code      int
	out       string
}

func runAuditBench(c *cli.Context) error {
	ctx := c.Context
	export, snap, dir := c.String("export"), c.String("snapshot"), c.String("dir")
	small, smallSnap := c.String("small-export"), c.String("small-snapshot")
	if small == "" {
		small, smallSnap = export, snap
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	big := int64(c.Int("big-mb")) << 20
	n, err := exportLines(export)
	if err != nil {
		return err
	}
	for _, name := range c.StringSlice("cases") {
		var args []string
		switch name {
		case "speed":
			args = []string{"--snapshot", snap, export}
		case "snapshot":
			p := filepath.Join(dir, fmt.Sprintf("snapshot-%dmb.json", c.Int("big-mb")))
			if err := padSnapshot(smallSnap, p, big); err != nil {
				return err
			}
			args = []string{"--snapshot", p, small}
		case "consents":
			p := filepath.Join(dir, fmt.Sprintf("consents-%dmb.json", c.Int("big-mb")))
			if err := bigConsents(small, p, big); err != nil {
				return err
			}
			args = []string{"--snapshot", smallSnap, "--consents", p, small}
		case "longline":
			p := filepath.Join(dir, fmt.Sprintf("longline-%dmb.jsonl", c.Int("big-mb")))
			if err := longLineExport(small, p, big); err != nil {
				return err
			}
			args = []string{"--snapshot", smallSnap, p}
		default:
			return fmt.Errorf("unknown case %q", name)
		}
		args = append([]string{"audit", "--no-progress", "--anchor-delay", "24h"}, args...)
		var runs [2][]auditRun
		for i := range c.Int("runs") {
			for j, bin := range []string{c.String("old"), c.String("new")} {
				r, err := runAudit(ctx, bin, args)
				if err != nil {
					return err
				}
				runs[j] = append(runs[j], r)
				fmt.Printf("%-9s run %d %-3s: exit %d, %s wall, %s CPU, peak RSS %s", name, i+1, []string{"old", "new"}[j], r.code,
					r.wall.Round(time.Millisecond), r.cpu.Round(time.Millisecond), mib(r.maxRSS))
				if name == "speed" {
					fmt.Printf(", %.0f receipts/s, %.0f receipts/CPU-s", float64(n)/r.wall.Seconds(), float64(n)/r.cpu.Seconds())
				}
				fmt.Println()
				if name == "longline" || name == "consents" || r.code == 1 {
					fmt.Printf("    %s\n", firstLines(r.out, "longer than", "JSON input", "consent document", "error", "ccnode:"))
				}
			}
		}
		med := func(rs []auditRun, f func(auditRun) float64) float64 {
			var xs []float64
			for _, r := range rs {
				xs = append(xs, f(r))
			}
			return median(xs)
		}
		rss := func(r auditRun) float64 { return float64(r.maxRSS) / (1 << 20) }
		wall := func(r auditRun) float64 { return r.wall.Seconds() }
		fmt.Printf("%-9s medians: peak RSS %.0f → %.0f MiB; wall %.2f → %.2f s", name, med(runs[0], rss), med(runs[1], rss), med(runs[0], wall), med(runs[1], wall))
		if name == "speed" {
			rate := func(r auditRun) float64 { return float64(n) / r.wall.Seconds() }
			cpuRate := func(r auditRun) float64 { return float64(n) / r.cpu.Seconds() }
			fmt.Printf("; receipts/s %.0f → %.0f (%.2f×); receipts/CPU-s %.0f → %.0f (%.2f×)",
				med(runs[0], rate), med(runs[1], rate), med(runs[1], rate)/med(runs[0], rate),
				med(runs[0], cpuRate), med(runs[1], cpuRate), med(runs[1], cpuRate)/med(runs[0], cpuRate))
		}
		fmt.Println()
	}
	return nil
}

// runAudit runs bin under /usr/bin/time: a child that Go starts inherits
// this process's own peak RSS in its ru_maxrss (it is cloned from it
// before exec), which the large inputs' generation makes large; time's
// child starts from time's small one.
func runAudit(ctx context.Context, bin string, args []string) (auditRun, error) {
	stats, err := os.CreateTemp("", "ccbench-time-*")
	if err != nil {
		return auditRun{}, err
	}
	stats.Close()
	defer os.Remove(stats.Name())
	cmd := exec.CommandContext(ctx, "/usr/bin/time", append([]string{"-o", stats.Name(), "-f", "%M %U %S", bin}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	r := auditRun{wall: time.Since(start), out: out.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		return r, err
	}
	b, err := os.ReadFile(stats.Name())
	if err != nil {
		return r, err
	}
	// time writes "Command exited with non-zero status N" first then.
	fields := strings.Fields(string(b[bytes.LastIndexByte(bytes.TrimSpace(b), '\n')+1:]))
	var kb int64
	var user, sys float64
	if len(fields) != 3 {
		return r, fmt.Errorf("/usr/bin/time wrote %q", b)
	}
	fmt.Sscan(fields[0], &kb)
	fmt.Sscan(fields[1], &user)
	fmt.Sscan(fields[2], &sys)
	r.maxRSS = kb << 10
	r.cpu = time.Duration((user + sys) * float64(time.Second))
	return r, nil
}

// firstLines returns the output lines that contain any of the words, at
// most three, each cut to 200 bytes around the word.
func firstLines(out string, words ...string) string {
	var got []string
	for _, l := range strings.Split(out, "\n") {
		for _, w := range words {
			if i := strings.Index(l, w); i >= 0 {
				if len(l) > 200 {
					from := max(0, min(i-100, len(l)-200))
					l = "…" + l[from:from+200] + "…"
				}
				got = append(got, strings.TrimSpace(l))
				break
			}
		}
		if len(got) == 3 {
			break
		}
	}
	return strings.Join(got, "\n    ")
}

func exportLines(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	er, err := credit.NewExportReader(f)
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		if _, err := er.Next(); errors.Is(err, io.EOF) {
			return n, nil
		} else if err != nil {
			return n, err
		}
		n++
	}
}

// padSnapshot writes src with synthetic consent records added until the
// file is about size bytes (every tenth revoked), unless out exists.
func padSnapshot(src, out string, size int64) error {
	if _, err := os.Stat(out); err == nil {
		return nil
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	s, err := audit.ReadSnapshot(f)
	f.Close()
	if err != nil {
		return err
	}
	var one bytes.Buffer
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := func(i int) credit.ConsentCommitment {
		c := credit.ConsentCommitment{ID: fmt.Sprintf("pad-consent-%09d", i), Commitment: bytes.Repeat([]byte{byte(i)}, 32),
			Region: "sz", ValidFrom: t0, ValidUntil: t0.AddDate(1, 0, 0), Status: credit.ConsentActive, RecordedAt: t0.Add(time.Duration(i) * time.Second)}
		if i%10 == 0 {
			rev := t0.AddDate(0, 6, 0)
			c.RevokedAt, c.Status = &rev, credit.ConsentRevoked
		}
		return c
	}
	b, _ := json.MarshalIndent(map[string]credit.ConsentCommitment{"x": rec(1)}, "  ", " ")
	one.Write(b)
	n := int(size / int64(one.Len()-8))
	for i := range n {
		c := rec(i)
		s.ConsentRecords[c.ID] = c
	}
	return atomicfile.Replace(out, 0o644, s.Write)
}

// bigConsents writes a JSON array of consent documents of about size
// bytes: those the export's queries carry, each once under its own id
// (so the audit compares them, and finds them equal), then copies under
// new ids.
func bigConsents(export, out string, size int64) error {
	if _, err := os.Stat(out); err == nil {
		return nil
	}
	f, err := os.Open(export)
	if err != nil {
		return err
	}
	defer f.Close()
	er, err := credit.NewExportReader(f)
	if err != nil {
		return err
	}
	var docs []credit.ConsentGrant
	seen := map[string]bool{}
	for range 50_000 {
		line, err := er.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		_, rc, lerr, rerr := credit.DecodeExportEntry(line)
		if lerr != nil || rerr != nil || rc.Query.Consent == nil || seen[rc.Query.Consent.ID] {
			continue
		}
		seen[rc.Query.Consent.ID] = true
		docs = append(docs, *rc.Query.Consent)
	}
	if len(docs) == 0 {
		return fmt.Errorf("%s: no consent documents in its queries", export)
	}
	return atomicfile.Replace(out, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		bw.WriteString("[\n")
		var written int64
		for i := 0; written < size || i < len(docs); i++ {
			g := docs[i%len(docs)]
			if i >= len(docs) {
				g.ID = fmt.Sprintf("%s-copy-%d", g.ID, i)
			}
			b, err := json.MarshalIndent(g, "  ", "  ")
			if err != nil {
				return err
			}
			if i > 0 {
				bw.WriteString(",\n")
			}
			bw.WriteString("  ")
			bw.Write(b)
			written += int64(len(b) + 4)
		}
		bw.WriteString("\n]\n")
		return bw.Flush()
	})
}

// longLineExport copies export with its middle line replaced by one of
// size bytes.
func longLineExport(export, out string, size int64) error {
	if _, err := os.Stat(out); err == nil {
		return nil
	}
	n, err := exportLines(export)
	if err != nil {
		return err
	}
	in, err := os.Open(export)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Replace(out, 0o644, func(w io.Writer) error {
		br := bufio.NewReaderSize(in, 1<<20)
		bw := bufio.NewWriterSize(w, 1<<20)
		for i := 0; ; i++ {
			line, err := br.ReadBytes('\n')
			if len(line) == 0 && errors.Is(err, io.EOF) {
				break
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if i != n/2+1 { // line 0 is the header
				bw.Write(line)
				continue
			}
			prefix := fmt.Sprintf(`{"index":%d,"receipt":{"v":1,"id":"`, i-1)
			bw.WriteString(prefix)
			chunk := bytes.Repeat([]byte("x"), 1<<20)
			for left := size - int64(len(prefix)) - 3; left > 0; left -= int64(len(chunk)) {
				bw.Write(chunk[:min(int64(len(chunk)), left)])
			}
			bw.WriteString("\"}}\n")
		}
		return bw.Flush()
	})
}
