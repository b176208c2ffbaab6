package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/store"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "check every table and value of a node's record store against its checksums",
		Description: `Reads the whole store: every block of every table against the checksum Badger wrote
with it, then every live key and value (values in the value log carry a CRC of their own).
Exits non-zero, naming the tables, when anything does not match.

The embedded ledger's tables are checked too when the node hosts it (ledger.embedded_dir).

Offline (the node stopped): give the node's --config or its --data-dir (the data folder;
the store is DATA_DIR/db). Online: --online asks the running node through its admin API
(POST /v1/verify; --admin, --operator-token-file), since the node holds the store's lock.
A node also verifies its store in the background once it has started (it serves meanwhile,
and every report is checked where it reads); a mismatch shows on /readyz and in
ccnode_store_checksum_failures_total, and the node then refuses to answer from the store.`,
		Flags: append(append(storeFlags(), adminFlags...),
			&cli.BoolFlag{Name: "online", Category: catNetwork, Usage: "ask the running node (admin API) instead of opening the store"},
			&cli.BoolFlag{Name: "json", Category: catOutput, EnvVars: []string{"CCNODE_JSON"}, Usage: "print JSON"},
		),
		Action: runVerify,
	}
}

func runVerify(c *cli.Context) error {
	if c.Bool("online") {
		return runVerifyOnline(c)
	}
	cfg, err := nodeConfigOf(c)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	dir := node.StoreDir(cfg)
	ctx := contextOf(c)
	db, err := openExistingStore(ctx, dir, store.Options{})
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer db.Close()
	res, err := db.Verify(ctx)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	rep := node.VerifyReport{OK: true, VerifyResult: res}
	ledger := ledgerDirOf(c, cfg)
	if ledger != "" {
		lres, err := store.VerifyBadgerDir(ctx, ledger)
		if err != nil {
			return fmt.Errorf("verify: embedded ledger: %w", err)
		}
		rep.LedgerTables = lres.Tables
	}
	w := c.App.Writer
	if c.Bool("json") {
		return json.NewEncoder(w).Encode(rep)
	}
	fmt.Fprintf(w, "%s: ok: %d tables, %d keys, %d value bytes verified\n", dir, res.Tables, res.Keys, res.Bytes)
	if ledger != "" {
		fmt.Fprintf(w, "%s: ok: %d tables of the embedded ledger verified\n", ledger, rep.LedgerTables)
	}
	return nil
}

func runVerifyOnline(c *cli.Context) error {
	if c.IsSet("config") || c.IsSet("data-dir") {
		return errors.New("verify: --online asks the node at --admin; --config and --data-dir are for a stopped node")
	}
	cl, err := adminClient(c)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	rep, err := cl.VerifyStore(contextOf(c))
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if !rep.OK {
		return fmt.Errorf("verify: node at %s: %s", cl.Admin, rep.Problem)
	}
	if c.Bool("json") {
		return json.NewEncoder(c.App.Writer).Encode(rep)
	}
	fmt.Fprintf(c.App.Writer, "node at %s: ok: %d tables, %d keys, %d value bytes verified\n", cl.Admin, rep.Tables, rep.Keys, rep.Bytes)
	return nil
}
