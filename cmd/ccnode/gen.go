package main

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/credit/synth"
)

func genCommand() *cli.Command {
	return &cli.Command{
		Name:  "gen",
		Usage: "generate synthetic credit records (JSON Lines or CSV) for demos, tests and benchmarks",
		Description: `Writes the records of N synthetic enterprises of one region: valid USCCs in the
region's division codes, records from the region's departments (market regulation, tax,
social insurance, housing fund, utilities, courts, customs, ...), about 183 records per
enterprise on average with a long tail, dates within ten years before 2026-11-01.
The same --region, --enterprises and --seed always give the same bytes.

Example:
  ccnode gen --region 440300 --enterprises 1000 --seed 1 -o sz.jsonl.gz
  ccnode gen --enterprises 10 | ccnode import --data-dir ./data -`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "region", Category: catData, Value: "440300", EnvVars: []string{"CCNODE_GEN_REGION"},
				Usage: "six-digit region code (440300 Shenzhen, 440100 Guangzhou, 440400 Zhuhai, ...)"},
			&cli.IntFlag{Name: "enterprises", Aliases: []string{"n"}, Category: catData, Value: 1000, EnvVars: []string{"CCNODE_GEN_ENTERPRISES"},
				Usage: "number of enterprises (about 183 records each)"},
			&cli.Uint64Flag{Name: "seed", Category: catData, Value: 1, EnvVars: []string{"CCNODE_GEN_SEED"},
				Usage: "random seed"},
			&cli.StringFlag{Name: "format", Category: catOutput, Value: "jsonl", EnvVars: []string{"CCNODE_GEN_FORMAT"},
				Usage: "jsonl or csv"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Category: catOutput, EnvVars: []string{"CCNODE_GEN_OUTPUT"},
				Usage: "write to this file (gzip when it ends in .gz); default standard output"},
			&cli.IntFlag{Name: "workers", Category: catData, EnvVars: []string{"CCNODE_GEN_WORKERS"},
				Usage: "goroutines generating in parallel (default: one per CPU); the output does not depend on it"},
		},
		Action: runGen,
	}
}

func runGen(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("gen: unexpected argument %q", c.Args().First())
	}
	f, err := synth.ParseFormat(c.String("format"))
	if err != nil {
		return err
	}
	g, err := synth.New(synth.Config{
		Region: credit.RegionID(c.String("region")), Enterprises: c.Int("enterprises"), Seed: c.Uint64("seed"),
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	out := c.String("output")
	var w io.Writer = c.App.Writer
	var file *os.File
	if out != "" && out != "-" {
		if file, err = os.Create(out); err != nil {
			return fmt.Errorf("gen: %w", err)
		}
		w = file
	}
	var zw *gzip.Writer
	if strings.HasSuffix(out, ".gz") {
		// Fastest level: the generator outruns any higher one by far.
		zw, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		w = zw
	}
	bw := bufio.NewWriterSize(w, 4<<20)
	st, err := g.Write(ctx, bw, f, c.Int("workers"))
	if err == nil {
		err = bw.Flush()
	}
	if zw != nil {
		err = errors.Join(err, zw.Close())
	}
	if file != nil {
		if err == nil {
			err = file.Sync()
		}
		err = errors.Join(err, file.Close())
		if err != nil {
			os.Remove(out) // a partial file would import as a shorter data set
		}
	}
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	if !quiet(c) {
		el := time.Since(start)
		fmt.Fprintf(c.App.ErrWriter, "gen: %d enterprises, %d records, %d bytes in %s (%.0f records/s)\n",
			st.Enterprises, st.Records, st.Bytes, el.Round(time.Millisecond), float64(st.Records)/el.Seconds())
	}
	return nil
}
