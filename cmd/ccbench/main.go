// Command ccbench measures ccnode as whole processes, the way a bureau runs
// it, beside the alternative a bureau would otherwise pick (PostgreSQL).
// Each subcommand prints its figures as medians of several runs; the
// figures go into BENCHMARKS.md.
//
// It generates its data with credit/synth, runs the ccnode binary it builds,
// and opens the resulting store in process only to time reads.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	app := &cli.App{
		Name:  "ccbench",
		Usage: "whole-process benchmarks of ccnode",
		// cli would otherwise call os.Exit from inside Run; main does it.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			auditCommand(),
			importCommand(),
			nodeCommand(),
			serveImportCommand(),
			reportCommand(),
		},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "ccbench:", err)
		os.Exit(1)
	}
}
