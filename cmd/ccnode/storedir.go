package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/node"
)

// storeFlags name the node whose record store a command works on, as
// `ccnode run` does: its --config, and --data-dir, the node's data folder
// (the config's data_dir, which --data-dir overrides). The store is
// DATA_DIR/db either way.
func storeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Category: catData, EnvVars: []string{"CCNODE_CONFIG"},
			Usage: "the node's config: its record store is DATA_DIR/db, the folder `ccnode run` reads"},
		&cli.StringFlag{Name: "data-dir", Category: catData, EnvVars: []string{"CCNODE_DATA_DIR"},
			Usage: "the node's data folder (overrides the config's data_dir, as for run); its record store is DATA_DIR/db"},
	}
}

// storeDirOf resolves the record store folder from --config and
// --data-dir exactly as `ccnode run` does: DATA_DIR/db, with --data-dir
// over the config's data_dir. A --data-dir that is itself a record store
// (Badger's files, no db folder) is the flag's old meaning, refused with
// the folder to give instead: records imported into DIR/db of a store
// folder would be served by no node.
func storeDirOf(c *cli.Context) (string, error) {
	cfg, err := nodeConfigOf(c)
	if err != nil {
		return "", err
	}
	return node.StoreDir(cfg), nil
}

// nodeConfigOf is the node's config from --config, with --data-dir over
// its data_dir; with --data-dir alone, a config holding only that folder.
func nodeConfigOf(c *cli.Context) (node.Config, error) {
	cfgPath, dataDir := c.String("config"), c.String("data-dir")
	if cfgPath == "" && dataDir == "" {
		return node.Config{}, errors.New("--config (the node's config) or --data-dir (the node's data folder) is required")
	}
	var cfg node.Config
	if cfgPath != "" {
		var err error
		if cfg, err = node.LoadConfig(cfgPath); err != nil {
			return cfg, err
		}
	}
	if dataDir != "" {
		if err := refuseStoreFolder(dataDir); err != nil {
			return cfg, err
		}
		cfg.DataDir = dataDir
	}
	return cfg, nil
}

// ledgerDirOf is the embedded ledger's folder when the node hosts it: the
// config's ledger.embedded_dir, or with --data-dir alone DATA_DIR/ledger
// when it holds a ledger (where init puts it); "" otherwise.
func ledgerDirOf(c *cli.Context, cfg node.Config) string {
	if c.String("config") != "" {
		return cfg.Ledger.EmbeddedDir
	}
	dir := filepath.Join(cfg.DataDir, "ledger")
	if _, err := os.Stat(filepath.Join(dir, badger.ManifestFilename)); err != nil {
		return ""
	}
	return dir
}

// refuseStoreFolder fails when dir holds a record store's own files
// (Badger's MANIFEST) rather than a node's data folder.
func refuseStoreFolder(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, badger.ManifestFilename)); err != nil {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "db")); err == nil {
		return nil // a data folder that also holds stray files; its store is db
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if filepath.Base(filepath.Clean(dir)) == "db" {
		return fmt.Errorf("--data-dir %s is a record store's own folder; --data-dir names the node's data folder, whose store is DATA_DIR/db: give --data-dir %s (or the node's --config)", dir, parent)
	}
	return fmt.Errorf("--data-dir %s is a record store's own folder; --data-dir names the node's data folder, whose store is DATA_DIR/db: move the store to a folder named db inside a data folder (mv %s DATA_DIR/db) and give --data-dir DATA_DIR (or the node's --config)", dir, dir)
}
