package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/node"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "run a regional node",
		Description: "Serves the region's bank API, answers consented queries, logs receipts and\n" +
			"anchors checkpoints until interrupted. The embedded ledger is the default; a\n" +
			"config with ledger.fabric_gateway uses Fabric. With ledger.serve_addr the node\n" +
			"serves its embedded ledger to other regions' nodes on this machine, which name\n" +
			"it in ledger.embedded_url. Prints the bank API's address, the admin API's on a\n" +
			"second line, and the served ledger's (if any) on a third.",
		Flags: append(runFlags,
			&cli.StringFlag{Name: "cpuprofile", Category: catOutput, EnvVars: []string{"CCNODE_RUN_CPUPROFILE"},
				Usage: "write a pprof CPU profile of the whole run to `FILE` (written at shutdown)"}),
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			if err := checkRegion("config region", cfg.Region); err != nil {
				return err
			}
			log, err := newLogger(c, slog.LevelInfo)
			if err != nil {
				return err
			}
			if p := c.String("cpuprofile"); p != "" {
				f, err := os.Create(p)
				if err != nil {
					return fmt.Errorf("run: cpu profile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("run: cpu profile: %w", err)
				}
				// Deferred after f.Close, so it runs first and flushes the
				// profile once the node has shut down.
				defer pprof.StopCPUProfile()
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			s, err := node.Open(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer s.Close()
			fmt.Fprintf(c.App.Writer, "region %s: bank API on %s\n", cfg.Region, s.HTTPURL())
			fmt.Fprintf(c.App.Writer, "region %s: admin API on http://%s\n", cfg.Region, s.AdminAddr())
			if s.LedgerAddr != "" {
				fmt.Fprintf(c.App.Writer, "region %s: embedded ledger served on http://%s\n", cfg.Region, s.LedgerAddr)
			}
			<-ctx.Done()
			log.Info("shutting down")
			return s.Close()
		},
	}
}
