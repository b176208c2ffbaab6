// Command ccnode is the node software of the cross-region credit consortium:
// it imports a region's records, serves them to consented bank queries,
// anchors its receipt log on the shared ledger, and audits.
//
// This package only parses flags, calls into the library packages and
// turns their errors into exit codes; it is the only place that exits.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// Flag categories shown in --help.
const (
	catData    = "Data"
	catLedger  = "Ledger"
	catNetwork = "Network"
	catOutput  = "Output"
)

func newApp() *cli.App {
	return &cli.App{
		Name:  "ccnode",
		Usage: "regional node of the cross-region credit consortium",
		Description: "A ccnode keeps one region's enterprise credit records in a local store, answers\n" +
			"consented bank queries across regions, and anchors its receipt log on the shared ledger.",
		Version:              versionString(),
		Flags:                outputFlags(),
		EnableBashCompletion: true,
		// cli would otherwise call os.Exit from inside Run; main does it.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: withOutputFlags([]*cli.Command{
			// One command per file; keep this list in the order --help shows.
			demoCommand(),
			initCommand(),
			genCommand(),
			importCommand(), reportCommand(), statsCommand(), verifyCommand(),
			runCommand(), statusCommand(), backupCommand(), restoreCommand(),
			configCommand(),
			keysCommand(),
			operatorCommand(),
			consortiumCommand(),
			bankCommand(),
			authorityCommand(),
			consentCommand(),
			regionCommand(),
			queryCommand(),
			receiptsCommand(),
			auditCommand(),
			fabricCommand(),
		}),
	}
}

// exitCoder lets a command choose the process exit code without exiting.
type exitCoder interface{ ExitCode() int }

func main() {
	err := newApp().Run(os.Args)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "ccnode:", err)
	var ec exitCoder
	if errors.As(err, &ec) {
		os.Exit(ec.ExitCode())
	}
	os.Exit(1)
}
