package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node"
)

func keysCommand() *cli.Command {
	return &cli.Command{
		Name:  "keys",
		Usage: "inspect a node's key",
		Subcommands: []*cli.Command{{
			Name:  "show",
			Usage: "print a node key's peer id, public key in every format, checkpoint verifier key and fingerprint",
			Description: "Reads the key the config's key_file names (or --key-file) and prints what other\n" +
				"parties need: the libp2p peer id (a member record's peer_id), the public key in\n" +
				"base64 (pub_key in a bootstrap file or ledger record) and hex (as init prints it),\n" +
				"the C2SP note verifier key of the region's checkpoints (for 'ccnode receipts\n" +
				"consistency --verifier-key'; needs the region) and a SHA-256 fingerprint to\n" +
				"compare over the phone. Never prints the private key.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Category: catData, EnvVars: []string{"CCNODE_CONFIG"},
					Usage: "node config file whose key_file, region and p2p.network_id to use"},
				&cli.StringFlag{Name: "key-file", Category: catData,
					Usage: "the key file itself, instead of --config"},
				&cli.StringFlag{Name: "region", Category: catData,
					Usage: "with --key-file: the region, for the checkpoint verifier key"},
				&cli.StringFlag{Name: "network-id", Category: catData, Value: node.DefaultNetworkID,
					Usage: "with --key-file: the consortium's p2p.network_id, for the checkpoint verifier key"},
				&cli.BoolFlag{Name: "json", Category: catOutput, Usage: "print as JSON"},
			},
			Action: keysShow,
		}},
	}
}

// keyInfo is what `keys show` prints; the JSON names follow the member
// record's where there is one.
type keyInfo struct {
	PeerID      string `json:"peer_id"`
	PubKey      string `json:"pub_key"`
	PubKeyHex   string `json:"pub_key_hex"`
	VerifierKey string `json:"verifier_key,omitempty"`
	Fingerprint string `json:"fingerprint"`
}

func keysShow(c *cli.Context) error {
	var (
		key             ed25519.PrivateKey
		region          credit.RegionID
		network         = c.String("network-id")
		err             error
		cfgSet, fileSet = c.String("config") != "", c.String("key-file") != ""
	)
	switch {
	case cfgSet && fileSet:
		return errors.New("keys show: give --config or --key-file, not both")
	case cfgSet:
		cfg, err := node.LoadConfig(c.String("config"))
		if err != nil {
			return err
		}
		if err := cfg.Validate(); err != nil {
			return err
		}
		if key, err = node.LoadNodeKey(cfg); err != nil {
			return err
		}
		region, network = cfg.Region, cfg.P2P.NetworkID
	case fileSet:
		if key, err = node.LoadKeyFile(c.String("key-file")); err != nil {
			return err
		}
		if r := c.String("region"); r != "" {
			region = credit.RegionID(r)
			if err := checkRegion("--region", region); err != nil {
				return err
			}
		}
	default:
		return errors.New("keys show: give --config (or CCNODE_CONFIG) or --key-file")
	}
	info, err := describeKey(key.Public().(ed25519.PublicKey), network, region)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "peer id:       %s\n", info.PeerID)
	fmt.Fprintf(w, "public key:    %s (base64: pub_key in a bootstrap file or ledger record)\n", info.PubKey)
	fmt.Fprintf(w, "public key:    %s (hex, as init prints it)\n", info.PubKeyHex)
	if info.VerifierKey != "" {
		fmt.Fprintf(w, "verifier key:  %s (receipts consistency --verifier-key)\n", info.VerifierKey)
	}
	fmt.Fprintf(w, "fingerprint:   %s\n", info.Fingerprint)
	return nil
}

func describeKey(pub ed25519.PublicKey, network string, region credit.RegionID) (keyInfo, error) {
	pid, err := node.PeerID(pub)
	if err != nil {
		return keyInfo{}, err
	}
	// encoding/json writes a []byte as standard base64: the form
	// RegionMember.PubKey takes in a bootstrap file.
	b64, err := json.Marshal([]byte(pub))
	if err != nil {
		return keyInfo{}, err
	}
	sum := sha256.Sum256(pub)
	info := keyInfo{PeerID: pid, PubKey: string(b64[1 : len(b64)-1]), PubKeyHex: fmt.Sprintf("%x", []byte(pub)),
		Fingerprint: "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])}
	if region != "" {
		origin, err := credit.CheckpointOrigin(network, region)
		if err != nil {
			return keyInfo{}, err
		}
		if info.VerifierKey, err = credit.CheckpointVerifierKey(origin, pub); err != nil {
			return keyInfo{}, err
		}
	}
	return info, nil
}
