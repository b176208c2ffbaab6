package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/node"
)

func backupCommand() *cli.Command {
	return &cli.Command{
		Name:  "backup",
		Usage: "write a backup of a node (running or stopped) to one file",
		Description: `Writes one file (` + node.BackupFormat + `): a header (region, time, parts with their
lengths and SHA-256) and, as Badger backup streams, the region's store (records, receipt
log with its tree and acknowledgements, received receipts, anchoring outbox, unexpired
nonces) and, when the node runs its embedded ledger (ledger.embedded_dir), that ledger.
The node key, ledger.key_file, the operators file, TLS keys, the PSK and the config are
NOT in it: keep them as you keep secrets.

A running node (its store locked) is backed up through its admin API (GET /v1/backup), as
it holds the store: --admin, else the config's admin.addr or the address the node wrote in
DATA_DIR/admin.addr, with an operator token (--operator-token-file, $` + operatorTokenEnv + `, or
operator.token beside the config). A stopped node is backed up from its folders.
The file is written as FILE.partial, read back and checked, then renamed to FILE.`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Category: catData, EnvVars: []string{"CCNODE_CONFIG"},
				Usage: "the node's config (its data_dir, embedded ledger and admin.addr)"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Required: true, Category: catOutput, Usage: "the backup file to write (must not exist)"},
		}, adminFlags...),
		Action: runBackup,
	}
}

func runBackup(c *cli.Context) error {
	ctx := contextOf(c)
	out := c.String("out")
	var cfg *node.Config
	var cl *node.Client
	if p := c.String("config"); p != "" {
		cf, err := node.LoadConfig(p)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		if err := cf.Validate(); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		cfg = &cf
		if cl, err = runningNodeAdmin(c, p, cf); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	} else if c.IsSet("admin") {
		var err error
		if cl, err = adminClient(c); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	} else {
		return errors.New("backup: give --config (a stopped node, or a running one found through its admin API) or --admin (a running node)")
	}
	var h node.BackupHeader
	var err error
	if cl != nil {
		h, err = node.WriteBackupFile(out, func(w io.Writer) (node.BackupHeader, error) { return cl.Backup(ctx, w) })
		if err != nil {
			return fmt.Errorf("backup of the running node at %s: %w", cl.Admin, err)
		}
		if cfg != nil && h.Region != cfg.Region {
			return fmt.Errorf("backup: the node at %s is region %s, the config %s is region %s (the file %s holds region %s)",
				cl.Admin, h.Region, c.String("config"), cfg.Region, out, h.Region)
		}
	} else {
		log, lerr := newLogger(c, slog.LevelWarn)
		if lerr != nil {
			return lerr
		}
		h, err = node.WriteBackupFile(out, func(w io.Writer) (node.BackupHeader, error) { return node.BackupStopped(ctx, *cfg, w, log) })
		if err != nil {
			return fmt.Errorf("backup of the stopped node (%s): %w", c.String("config"), err)
		}
	}
	parts := make([]string, 0, len(h.Parts))
	var total uint64
	for _, p := range h.Parts {
		parts = append(parts, fmt.Sprintf("%s %d bytes", p.Name, p.Bytes))
		total += p.Bytes
	}
	fmt.Fprintf(c.App.Writer, "backup of region %s written to %s (%d bytes: %s); not in it: %s\n",
		h.Region, out, total+node.BackupHeaderSize, strings.Join(parts, ", "), strings.Join(h.NotIncluded, ", "))
	return nil
}
