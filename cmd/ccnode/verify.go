package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/store"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "check every table and value of a node's record store against its checksums",
		Description: `Reads the whole store: every block of every table against the checksum Badger wrote
with it, then every live key and value (values in the value log carry a CRC of their own).
Exits non-zero, naming the tables, when anything does not match.

Offline (the node stopped): give the node's --config (its data_dir) or the store's
--data-dir. Online: --online asks the running node through its admin API (POST /v1/verify;
--admin, --operator-token-file), since the node holds the store's lock. A node also verifies
its store when it starts; a mismatch shows on /readyz and in
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
	dir, err := storeDirOf(c)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
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
	w := c.App.Writer
	if c.Bool("json") {
		return json.NewEncoder(w).Encode(res)
	}
	fmt.Fprintf(w, "%s: ok: %d tables, %d keys, %d value bytes verified\n", dir, res.Tables, res.Keys, res.Bytes)
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
