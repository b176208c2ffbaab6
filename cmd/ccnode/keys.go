package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node"
)

func keysCommand() *cli.Command {
	return &cli.Command{
		Name:  "keys",
		Usage: "inspect or rotate a node's key",
		Subcommands: []*cli.Command{{
			Name:  "show",
			Usage: "print a node key's peer id, public key in every format, checkpoint verifier key and fingerprint",
			Description: "Reads the key the config's key_file names (or --key-file) and prints what other\n" +
				"parties need: the libp2p peer id (a member record's peer_id), the public key in\n" +
				"base64 (pub_key in a bootstrap file or ledger record), as init prints it, and hex,\n" +
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
		}, {
			Name:  "rotate",
			Usage: "make a new node key, signed over by the old one; the node publishes it when it restarts",
			Description: "Run it on the node's machine, then restart the node ('ccnode run' or systemctl restart).\n" +
				"Writes a new key to key_file and, next to it, key_file.change.json: the change of the\n" +
				"region's key (region, new key, time) signed by the old key. The old key moves to\n" +
				"key_file.retired-<unix time>; with an embedded ledger and no ledger.key_file it is also kept\n" +
				"as <key_file's folder>/ledger.key, the region's ledger identity. On restart the node records\n" +
				"the new key and peer id in the region's ledger record (the contract checks the old key's\n" +
				"signature) before it signs anything; the other regions' nodes follow the ledger event and\n" +
				"admit the new peer id. Receipts and checkpoints signed by the old key before the change stay\n" +
				"valid for the audit; the old key is refused after it. A libp2p host's identity is fixed for\n" +
				"its life, so the node changes key by restarting.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Required: true, Category: catData, EnvVars: []string{"CCNODE_CONFIG"},
					Usage: "node config file whose key_file to rotate"},
				&cli.BoolFlag{Name: "json", Category: catOutput, Usage: "print as JSON"},
			},
			Action: keysRotate,
		}},
	}
}

// rotateInfo is what `keys rotate` prints.
type rotateInfo struct {
	Region        credit.RegionID `json:"region"`
	OldPeerID     string          `json:"old_peer_id"`
	NewPeerID     string          `json:"new_peer_id"`
	NewPubKey     string          `json:"new_pub_key"`
	KeyFile       string          `json:"key_file"`
	ChangeFile    string          `json:"change_file"`
	RetiredKey    string          `json:"retired_key_file"`
	LedgerKeyFile string          `json:"ledger_key_file,omitempty"`
}

func keysRotate(c *cli.Context) error {
	cfg, err := node.LoadConfig(c.String("config"))
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	rot, err := node.RotateKey(cfg, time.Now())
	if err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	info := rotateInfo{Region: cfg.Region, OldPeerID: rot.OldPeer, NewPeerID: rot.NewPeer,
		NewPubKey: base64.StdEncoding.EncodeToString(rot.NewKey), KeyFile: cfg.KeyFile,
		ChangeFile: rot.ChangeFile, RetiredKey: rot.Retired, LedgerKeyFile: rot.LedgerKeyFile}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "new node key in %s\n  peer id:     %s (was %s)\n  public key:  %s\n  key change:  %s (signed by the old key)\n  old key:     %s (destroy it once the node runs on the new key)\n",
		info.KeyFile, info.NewPeerID, info.OldPeerID, info.NewPubKey, info.ChangeFile, info.RetiredKey)
	if info.LedgerKeyFile != "" {
		fmt.Fprintf(w, "  ledger identity: %s (the old key: the region's identity on the embedded ledger; keep it)\n", info.LedgerKeyFile)
	}
	fmt.Fprintln(w, "Restart the node: it records the new key on the ledger before it signs anything with it.")
	return nil
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
	fmt.Fprintf(w, "public key:    %s (hex)\n", info.PubKeyHex)
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
