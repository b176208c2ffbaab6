package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network/fabric"
	"github.com/prdcredit/ccnode/network/fabricnet"
	"github.com/prdcredit/ccnode/node"
)

func fabricDirFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "dir", Value: "fabric-net", EnvVars: []string{"CCNODE_FABRIC_DIR"}, Category: catLedger,
		Usage: "folder of the local Fabric network (crypto, ledgers, logs, gateway configs)"}
}

func fabricCommand() *cli.Command {
	return &cli.Command{
		Name:  "fabric",
		Usage: "start and stop a local Hyperledger Fabric network for trials and tests (no Docker)",
		Description: "Builds Fabric's own binaries from the Go module proxy (once, cached), then runs one orderer\n" +
			"and one peer per region on 127.0.0.1 with the ccnode contract as chaincode-as-a-service.",
		Subcommands: []*cli.Command{
			{
				Name:  "up",
				Usage: "start the network, deploy the contract and bootstrap the membership",
				Flags: []cli.Flag{
					fabricDirFlag(),
					&cli.DurationFlag{Name: "batch-timeout", Value: 100 * time.Millisecond, Category: catLedger,
						Usage: "orderer batch timeout: the floor of every submit's latency"},
					&cli.BoolFlag{Name: "no-bootstrap", Category: catLedger,
						Usage: "leave the membership empty (the ledger conformance suite bootstraps it itself)"},
					&cli.DurationFlag{Name: "timeout", Value: 15 * time.Minute, Usage: "give up after this long (the first run builds Fabric)"},
				},
				Action: fabricUp,
			},
			{
				Name:   "down",
				Usage:  "stop exactly the processes `up` started (by pid), also after a failed up",
				Flags:  []cli.Flag{fabricDirFlag()},
				Action: func(c *cli.Context) error { return fabricnet.Down(c.String("dir")) },
			},
			{
				Name:   "status",
				Usage:  "list the network's processes and whether each runs",
				Flags:  []cli.Flag{fabricDirFlag()},
				Action: fabricStatus,
			},
			{
				Name:  "binaries",
				Usage: "build Fabric's binaries into the cache unless they are there; print the folder",
				Action: func(c *cli.Context) error {
					dir := fabricnet.DefaultBinDir()
					err := fabricnet.EnsureBinaries(c.Context, dir, func(s string) { fmt.Fprintln(os.Stderr, s) })
					if err == nil {
						fmt.Println(dir)
					}
					return err
				},
			},
		},
	}
}

func fabricUp(c *cli.Context) error {
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	start := time.Now()
	n, err := fabricnet.Up(ctx, fabricnet.Config{Dir: c.String("dir"), BatchTimeout: c.Duration("batch-timeout"), Logger: log})
	if err != nil {
		return err
	}
	if !c.Bool("no-bootstrap") {
		if err := bootstrapFabric(ctx, n); err != nil {
			_ = fabricnet.Down(n.Dir)
			return err
		}
	}
	fmt.Printf("Fabric network up in %s: %s\n", time.Since(start).Round(100*time.Millisecond), n.Dir)
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "REGION\tMSP\tGATEWAY\tCONFIG")
	for i, o := range n.Orgs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", o.Region, o.MSPID, n.Gateways[string(o.Region)].Endpoint, n.GatewayFiles[i])
	}
	w.Flush()
	if !c.Bool("no-bootstrap") {
		fmt.Printf("Region node keys: %s\n", filepath.Join(n.Dir, "nodes", "<region>", "node.key"))
	}
	fmt.Printf("Logs: %s   Stop with: ccnode fabric down --dir %s\n", filepath.Join(n.Dir, "logs"), n.Dir)
	return nil
}

// bootstrapFabric creates a node key per region and writes the first
// membership through the first region's gateway; the submit committing is
// also the proof that the network is ready.
func bootstrapFabric(ctx context.Context, n *fabricnet.Network) error {
	var members []credit.RegionMember
	for _, o := range n.Orgs {
		keyPath := filepath.Join(n.Dir, "nodes", string(o.Region), "node.key")
		key, err := node.GenerateKeyFile(keyPath)
		if err != nil {
			return err
		}
		pid, err := peerIDOf(key)
		if err != nil {
			return err
		}
		members = append(members, credit.RegionMember{ID: o.Region, Name: o.Name, Divisions: o.Divisions, MSPID: o.MSPID,
			PeerID: pid, PubKey: key.Public().(ed25519.PublicKey), Status: credit.StatusActive})
	}
	cfg, err := fabric.LoadConfig(n.GatewayFiles[0])
	if err != nil {
		return err
	}
	l, err := fabric.Dial(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := l.Bootstrap(ctx, members, nil); err != nil {
		return fmt.Errorf("bootstrap membership: %w", err)
	}
	return nil
}

func peerIDOf(key ed25519.PrivateKey) (string, error) {
	pk, err := crypto.UnmarshalEd25519PublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		return "", err
	}
	id, err := peer.IDFromPublicKey(pk)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

func fabricStatus(c *cli.Context) error {
	ps, err := fabricnet.Status(c.String("dir"))
	if err != nil {
		return err
	}
	if len(ps) == 0 {
		fmt.Println("no processes recorded in", c.String("dir"))
		return nil
	}
	if n, err := fabricnet.Load(c.String("dir")); err == nil {
		b, _ := json.Marshal(n.GatewayFiles)
		fmt.Println("gateway configs:", strings.Trim(string(b), "[]"))
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PROCESS\tPID\tRUNNING")
	for _, p := range ps {
		fmt.Fprintf(w, "%s\t%d\t%v\n", p.Name, p.Pid, p.Alive)
	}
	return w.Flush()
}
