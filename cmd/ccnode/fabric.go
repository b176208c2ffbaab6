package main

import (
	"context"
	"crypto/ed25519"
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

	"github.com/prdcredit/ccnode/chaincode"
	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network/fabric"
	"github.com/prdcredit/ccnode/network/fabricnet"
	"github.com/prdcredit/ccnode/node"
)

// serveChaincodeCommand is the hidden `ccnode fabric` subcommand the
// network's chaincode servers run.
const serveChaincodeCommand = "serve-chaincode"

func fabricDirFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "dir", Value: "fabric-net", EnvVars: []string{"CCNODE_FABRIC_DIR"}, Category: catLedger,
		Usage: "folder of the local Fabric network (crypto, ledgers, logs, pids, connection files)"}
}

func fabricBinFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "bin-dir", EnvVars: []string{"CCNODE_FABRIC_BIN"}, Category: catLedger,
		DefaultText: ".cache/fabric/<pin>/bin of the repository, else the user cache",
		Usage:       "folder of Fabric's binaries (built there from the Go module proxy when missing)"}
}

func fabricCommand() *cli.Command {
	return &cli.Command{
		Name:  "fabric",
		Usage: "start and stop a local Hyperledger Fabric network for trials and tests (no Docker)",
		Description: "Builds Fabric's own binaries from the Go module proxy (once, cached), then runs one orderer\n" +
			"and one peer per region on 127.0.0.1 with the ccnode contract as chaincode-as-a-service.\n" +
			"The processes run detached: `up` returns when the network is ready, `down` stops them.",
		Subcommands: []*cli.Command{
			{
				Name:  "up",
				Usage: "start the network, deploy the contract and bootstrap the membership",
				Flags: []cli.Flag{
					fabricDirFlag(),
					fabricBinFlag(),
					&cli.StringFlag{Name: "regions", Value: "shenzhen,guangzhou,zhuhai", Category: catLedger,
						Usage: "comma-separated regions, one peer organisation each: names or ids of Pearl River Delta cities, or id:name:MSPID"},
					&cli.DurationFlag{Name: "batch-timeout", Value: fabricnet.DefaultBatchTimeout, Category: catLedger,
						Usage: "orderer batch timeout: the floor of every submit's latency"},
					&cli.StringFlag{Name: "chaincode-server", Category: catLedger,
						Usage: "chaincode server binary (default: this ccnode binary serves the contract itself, so no source tree is needed)"},
					&cli.IntFlag{Name: "peers-per-region", Value: 1, EnvVars: []string{"CCNODE_FABRIC_PEERS_PER_REGION"}, Category: catLedger,
						Usage: "peers each region runs (1-4); the connection files list them all, so a node fails over when one goes away"},
					&cli.BoolFlag{Name: "client-tls", EnvVars: []string{"CCNODE_FABRIC_CLIENT_TLS"}, Category: catLedger,
						Usage: "peers require a client TLS certificate (mutual TLS, as in production); the connection files name the client user's"},
					&cli.BoolFlag{Name: "no-bootstrap", Category: catLedger,
						Usage: "leave the membership empty (the ledger conformance suite bootstraps it itself)"},
					&cli.DurationFlag{Name: "timeout", Value: 15 * time.Minute, Usage: "give up after this long (the first run builds Fabric)"},
				},
				Action: fabricUp,
			},
			{
				// The peers of `up` connect to this: chaincode-as-a-service
				// run by the ccnode binary itself, configured by the
				// environment fabricnet gives it (chaincode.ServeFromEnv).
				Name:   serveChaincodeCommand,
				Hidden: true,
				Usage:  "serve the ccnode contract as chaincode-as-a-service (started by `fabric up`)",
				Action: func(*cli.Context) error { return chaincode.ServeFromEnv() },
			},
			{
				Name:  "upgrade",
				Usage: "upgrade the contract: new package and server per region, every region approves the next sequence, a majority endorses the commit",
				Flags: []cli.Flag{
					fabricDirFlag(),
					&cli.StringFlag{Name: "version", Category: catLedger, Usage: "new definition version (default <sequence>.0)"},
					&cli.StringFlag{Name: "label", Category: catLedger, Usage: "new package label (default <chaincode>_<sequence>)"},
					&cli.StringFlag{Name: "chaincode-server", Category: catLedger,
						Usage: "binary serving the new contract (default: this ccnode binary)"},
					&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "give up after this long"},
				},
				Action: fabricUpgrade,
			},
			fabricAddRegionCommand(),
			{
				Name:  "down",
				Usage: "stop exactly the processes `up` started (by pid), also after a failed up",
				Flags: []cli.Flag{fabricDirFlag()},
				Action: func(c *cli.Context) error {
					start := time.Now()
					if err := fabricnet.Down(c.String("dir")); err != nil {
						return err
					}
					fmt.Printf("Fabric network in %s stopped in %s (files kept)\n", c.String("dir"), time.Since(start).Round(10*time.Millisecond))
					return nil
				},
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
				Flags: []cli.Flag{fabricBinFlag()},
				Action: func(c *cli.Context) error {
					dir := c.String("bin-dir")
					if dir == "" {
						dir = fabricnet.DefaultBinDir()
					}
					if !fabricnet.BinDir(dir).Complete() && !quiet(c) {
						fmt.Fprintf(c.App.ErrWriter, "building Fabric %s into %s (minutes the first time)\n", fabricnet.FabricVersion, dir)
					}
					bins, err := fabricnet.EnsureBinaries(c.Context, dir)
					if err != nil {
						return err
					}
					fmt.Println(bins)
					return nil
				},
			},
		},
	}
}

func fabricUp(c *cli.Context) error {
	regions, err := fabricnet.ParseRegions(c.String("regions"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	log, err := newLogger(c, slog.LevelInfo)
	if err != nil {
		return err
	}
	cfg := fabricnet.Config{
		Dir:            c.String("dir"),
		Regions:        regions,
		BatchTimeout:   c.Duration("batch-timeout"),
		BinDir:         c.String("bin-dir"),
		PeersPerRegion: c.Int("peers-per-region"),
		ClientTLS:      c.Bool("client-tls"),
		Logger:         log,
	}
	if cfg.ChaincodeServer, cfg.ChaincodeArgs, err = chaincodeServerFlag(c); err != nil {
		return err
	}
	if !c.Bool("no-bootstrap") {
		cfg.Bootstrap = bootstrapFabric
	}
	start := time.Now()
	n, err := fabricnet.Up(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Printf("Fabric network up in %s: %s (channel %s, chaincode %s)\n",
		time.Since(start).Round(100*time.Millisecond), n.Dir, n.Channel, n.Chaincode)
	fmt.Printf("orderer  %s\n", n.Orderer.Endpoint)
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "REGION\tNAME\tMSP\tPEERS (GATEWAYS)\tCHAINCODE SERVER\tCONNECTION FILE")
	for i, r := range n.Regions {
		g := n.Gateways[r.ID]
		peers := strings.Join(append([]string{g.Endpoint}, g.Endpoints...), ",")
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Name, r.MSPID, peers, n.Peers[r.ID].ChaincodeServer, n.GatewayFiles[i])
	}
	fmt.Fprintf(w, "auditor\t\t%s\t%s\t\t%s\n", n.Auditor.MSPID, n.Auditor.Endpoint, n.AuditorFile)
	w.Flush()
	fmt.Printf("The auditor reads and cannot write: ccnode audit snapshot --fabric-config %s -o snapshot.json\n", n.AuditorFile)
	if !c.Bool("no-bootstrap") {
		fmt.Printf("Region node keys: %s\n", filepath.Join(n.Dir, "nodes", "<region>", "node.key"))
		fmt.Printf("A region's node: ccnode init --region %s --fabric-gateway %s (registers a new node key in the region's record; --node-key %s keeps the one above)\n",
			n.Regions[0].ID, n.GatewayFiles[0], filepath.Join(n.Dir, "nodes", string(n.Regions[0].ID), "node.key"))
	}
	fmt.Printf("Logs: %s   Stop with: ccnode fabric down --dir %s\n", filepath.Join(n.Dir, "logs"), c.String("dir"))
	return nil
}

// bootstrapFabric creates a node key per region and writes the first
// membership through the first region's gateway. It runs once Up has seen
// a submit commit through every region's gateway.
func bootstrapFabric(ctx context.Context, n *fabricnet.Network) error {
	known := map[credit.RegionID]credit.Region{}
	for _, r := range credit.PearlRiverDelta() {
		known[r.ID] = r
	}
	var members []credit.RegionMember
	for _, r := range n.Regions {
		info, ok := known[r.ID]
		if !ok {
			// A region outside the table: its id is its city's division
			// code by convention, whose first four digits are the prefix.
			info = credit.Region{ID: r.ID, Name: r.Name}
			if len(r.ID) == 6 {
				info.Divisions = []string{string(r.ID[:4])}
			}
		}
		keyPath := filepath.Join(n.Dir, "nodes", string(r.ID), "node.key")
		key, err := node.GenerateKeyFile(keyPath)
		if err != nil {
			return err
		}
		pid, err := peerIDOf(key)
		if err != nil {
			return err
		}
		members = append(members, credit.RegionMember{ID: r.ID, Name: info.Name, Divisions: info.Divisions, MSPID: r.MSPID,
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
	dir := c.String("dir")
	ps, err := fabricnet.Status(dir)
	if err != nil {
		return err
	}
	if len(ps) == 0 {
		fmt.Println("no processes recorded in", dir)
		return nil
	}
	if n, err := fabricnet.Load(dir); err == nil {
		fmt.Printf("channel %s, chaincode %s, orderer %s\n", n.Channel, n.Chaincode, n.Orderer.Endpoint)
		fmt.Println("connection files:", strings.Join(n.GatewayFiles, " "))
		fmt.Println("auditor (reads only):", n.AuditorFile)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PROCESS\tPID\tRUNNING\tLOG")
	running := 0
	for _, p := range ps {
		fmt.Fprintf(w, "%s\t%d\t%v\t%s\n", p.Name, p.Pid, p.Alive, p.Log)
		if p.Alive {
			running++
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Printf("%d of %d running\n", running, len(ps))
	return nil
}

func fabricUpgrade(c *cli.Context) error {
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	uc := fabricnet.UpgradeConfig{Version: c.String("version"), Label: c.String("label")}
	var err error
	if uc.Server, uc.Args, err = chaincodeServerFlag(c); err != nil {
		return err
	}
	start := time.Now()
	n, err := fabricnet.Upgrade(ctx, c.String("dir"), uc)
	if err != nil {
		return err
	}
	seq, err := n.Sequence(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("contract %s upgraded to sequence %d in %s\n", n.Chaincode, seq, time.Since(start).Round(10*time.Millisecond))
	for _, r := range n.Regions {
		fmt.Printf("%s\t%s\tserver %s\n", r.ID, n.Peers[r.ID].PackageID, n.Peers[r.ID].ChaincodeServer)
	}
	return nil
}

// chaincodeServerFlag is the chaincode server a network command starts:
// --chaincode-server, else this binary. This binary holds the contract, so
// the network runs the same build as the nodes, and an installed binary
// needs no source tree.
func chaincodeServerFlag(c *cli.Context) (string, []string, error) {
	if s := c.String("chaincode-server"); s != "" {
		return s, nil, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", nil, fmt.Errorf("fabric %s: finding this ccnode binary to serve the contract (or pass --chaincode-server): %w", c.Command.Name, err)
	}
	return self, []string{"fabric", serveChaincodeCommand}, nil
}
