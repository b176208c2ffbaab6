package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/store"
)

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:  "restore",
		Usage: "rebuild a node's folders from a backup file (into empty folders only)",
		Description: `Checks the whole file first (its header, every part's length and SHA-256, and with
--config that it is the config's region), then loads the store part into DATA_DIR/db and,
when the backup holds an embedded ledger and the config runs one (ledger.embedded_dir),
the ledger part into that folder. Each folder must be absent or empty: a restore never
mixes a backup with data already there. --keep-ledger leaves the ledger folder as it is
(restore the store only), as when only the store was lost. --data-dir names the node's
data folder as for run: without --config the ledger part goes to DATA_DIR/ledger.

Not in a backup, put back before 'ccnode run': the node key (key_file), ledger.key_file,
the operators file, TLS keys, the PSK.

On start the node holds its receipt log against the region's latest checkpoint on the
ledger. Receipts issued after the backup are lost; if the ledger anchored any of them, the
restored node is not ready and answers nothing (/readyz says why), since its next receipts
would take leaf indices the ledger already anchored with other content.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "from", Required: true, Category: catData, Usage: "the backup file"},
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Category: catData, EnvVars: []string{"CCNODE_CONFIG"},
				Usage: "the node's config: restore into its DATA_DIR/db (and ledger.embedded_dir)"},
			&cli.StringFlag{Name: "data-dir", Category: catData, EnvVars: []string{"CCNODE_DATA_DIR"},
				Usage: "the node's data folder (over the config's data_dir, as for run): DATA_DIR/db, and DATA_DIR/ledger without --config"},
			&cli.BoolFlag{Name: "keep-ledger", Category: catLedger,
				Usage: "leave ledger.embedded_dir as it is: restore the store only"},
		},
		Action: runRestore,
	}
}

func runRestore(c *cli.Context) error {
	cf, err := nodeConfigOf(c)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	t := node.RestoreTarget{StoreDir: node.StoreDir(cf), LedgerDir: filepath.Join(cf.DataDir, "ledger")}
	var cfg *node.Config
	if c.String("config") != "" {
		if err := cf.Validate(); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		cfg = &cf
		t.Region, t.LedgerDir = cf.Region, cf.Ledger.EmbeddedDir
	}
	if c.Bool("keep-ledger") {
		t.LedgerDir = ""
	}
	log, err := newLogger(c, slog.LevelWarn)
	if err != nil {
		return err
	}
	res, err := node.RestoreBackup(contextOf(c), c.String("from"), t, log)
	if err != nil {
		if empty, _ := store.DirEmpty(t.LedgerDir); t.LedgerDir != "" && !empty && errors.Is(err, store.ErrTargetNotEmpty) {
			return fmt.Errorf("restore: %w; to run on the ledger already in %s and restore the store alone, add --keep-ledger", err, t.LedgerDir)
		}
		return fmt.Errorf("restore: %w", err)
	}
	w := c.App.Writer
	h := res.Header
	fmt.Fprintf(w, "restored region %s from %s (backup of %s): %d records, receipt log of %d receipts, last anchored checkpoint at %d, into %s\n",
		h.Region, c.String("from"), h.CreatedAt.Format("2006-01-02T15:04:05Z"), res.Records, res.LogSize, res.Anchored, t.StoreDir)
	_, hasLedger := h.Part(node.PartLedger)
	switch {
	case res.Ledger:
		fmt.Fprintf(w, "embedded ledger restored into %s: ledger transactions after the backup (of every member) are not in it\n", t.LedgerDir)
	case hasLedger && cfg != nil && cfg.Ledger.EmbeddedDir != "":
		fmt.Fprintf(w, "embedded ledger in the backup not restored (--keep-ledger): the node runs on the ledger in %s\n", cfg.Ledger.EmbeddedDir)
	case hasLedger:
		fmt.Fprintln(w, "embedded ledger in the backup not restored: this store's node reaches its ledger elsewhere")
	}
	if cfg != nil {
		for _, f := range []struct{ key, path string }{{"key_file", cfg.KeyFile}, {"admin.operators_file", cfg.Admin.OperatorsFile}} {
			if _, err := os.Stat(f.path); err != nil {
				fmt.Fprintf(c.App.ErrWriter, "not in a backup: put %s (%s) back before 'ccnode run'\n", f.key, f.path)
			}
		}
	}
	return nil
}
