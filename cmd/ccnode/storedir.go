package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/node"
)

// storeFlags name the record store a command works on: a node's (by its
// config, the folder `ccnode run` opens) or a store folder itself.
func storeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Category: catData, EnvVars: []string{"CCNODE_CONFIG"},
			Usage: "the node's config: its record store, DATA_DIR/db, the folder `ccnode run` reads"},
		&cli.StringFlag{Name: "data-dir", Category: catData, EnvVars: []string{"CCNODE_STORE_DIR"},
			Usage: "a record store's own folder (a node's is DATA_DIR/db; prefer --config for a node)"},
	}
}

// storeDirOf resolves the store folder from --config or --data-dir. A
// --data-dir that is a node's data folder (it holds node.key or
// ccnode.yaml) is refused: records written there would sit beside the
// node's store, and the node would serve none of them.
func storeDirOf(c *cli.Context) (string, error) {
	cfgPath, dir := c.String("config"), c.String("data-dir")
	switch {
	case cfgPath != "" && dir != "":
		return "", errors.New("give --config (a node's store) or --data-dir (a store folder), not both")
	case cfgPath != "":
		cfg, err := node.LoadConfig(cfgPath)
		if err != nil {
			return "", err
		}
		return node.StoreDir(cfg), nil
	case dir == "":
		return "", errors.New("--config (a node's store) or --data-dir (a store folder) is required")
	}
	for _, f := range []string{"node.key", "ccnode.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return "", fmt.Errorf("--data-dir %s is a node's data folder (it holds %s): its record store is %s; give --config %s or --data-dir %s",
				dir, f, filepath.Join(dir, "db"), filepath.Join(dir, "ccnode.yaml"), filepath.Join(dir, "db"))
		}
	}
	return dir, nil
}
