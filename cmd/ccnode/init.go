package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/atomicfile"
	"github.com/prdcredit/ccnode/node"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "create a region's key, first operator and commented config",
		Description: "Writes DIR/node.key (ed25519, the node's identity and signing key),\n" +
			"DIR/operators with a first operator, admin, whose token goes to\n" +
			"DIR/operator.token (mode 0600; the node keeps only its hash), and\n" +
			"DIR/ccnode.yaml with every key commented. Refuses to overwrite an\n" +
			"existing key. Add and revoke operators with 'ccnode operator'. With --tls, also a\n" +
			"self-signed certificate for the bank API (DIR/tls.crt, DIR/tls.key). Also writes\n" +
			"DIR/member.json, the region's public member descriptor for 'ccnode consortium\n" +
			"bootstrap'. With --config FILE instead of --region, sets up the node an existing\n" +
			"config describes (such as configs/440300.yaml): the key, operators, TLS pair and\n" +
			"member descriptor (DATA_DIR/member.json) it names, and no new config.\n" +
			"With --fabric-gateway the config acts on Fabric as the connection file's MSP, and\n" +
			"the new key (or --node-key) is registered in the region's ledger record first; a\n" +
			"region with no record yet (its organisation added by 'ccnode fabric add-region')\n" +
			"gets a candidate's node, which proposes member.json ('ccnode region propose').",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Category: catData,
				Usage: "set up the node this existing config file describes, instead of writing a new config"},
			&cli.StringFlag{Name: "region", Category: catData, EnvVars: []string{"CCNODE_REGION"},
				Usage: "region id: the six-digit division code of a Pearl River Delta city (such as 440300) or of a district inside one"},
			&cli.StringFlag{Name: "dir", Category: catData, EnvVars: []string{"CCNODE_DATA_DIR"},
				Usage: "data folder (default data/REGION)"},
			&cli.StringFlag{Name: "http-addr", Category: catNetwork, Value: node.DefaultHTTPAddr, EnvVars: []string{"CCNODE_HTTP_ADDR"},
				Usage: "bank API address written to the config"},
			&cli.StringFlag{Name: "admin-addr", Category: catNetwork, Value: node.DefaultAdminAddr, EnvVars: []string{"CCNODE_ADMIN_ADDR"},
				Usage: "admin API address written to the config (keep it on loopback)"},
			&cli.StringFlag{Name: "fabric-gateway", Category: catLedger, EnvVars: []string{"CCNODE_FABRIC_GATEWAY"},
				Usage: "use this Fabric gateway connection file instead of the embedded ledger; init takes its MSP id and registers the node key in the region's record (see --node-key), or makes a candidate's node when the region has none"},
			&cli.BoolFlag{Name: "tls", Category: catNetwork,
				Usage: "also make a self-signed TLS certificate and key for the bank API (DIR/tls.crt, DIR/tls.key; for trials: banks trust it with --ca-file DIR/tls.crt)"},
		}, initFabricFlags()...),
		Action: runInit,
	}
}

func runInit(c *cli.Context) error {
	if c.String("config") != "" {
		if c.IsSet("node-key") {
			return fmt.Errorf("init --config: --node-key: name the key in the config's key_file instead")
		}
		return runInitFromConfig(c)
	}
	if c.String("region") == "" {
		return fmt.Errorf("init: give --region (or --config FILE, to set up the node a config describes)")
	}
	region := credit.RegionID(c.String("region"))
	if err := checkRegion("--region", region); err != nil {
		return err
	}
	dir := c.String("dir")
	if dir == "" {
		dir = filepath.Join("data", string(region))
	}
	if err := checkInitFlags(c, dir); err != nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	cfg := node.DefaultConfig(region, abs)
	cfg.HTTP.Addr = c.String("http-addr")
	cfg.Admin.Addr = c.String("admin-addr")
	var fab *fabricInit
	if c.String("fabric-gateway") != "" {
		if fab, err = newFabricInit(c, &cfg); err != nil {
			return err
		}
	}
	if c.Bool("tls") {
		cfg.HTTP.TLSCertFile, cfg.HTTP.TLSKeyFile = filepath.Join(abs, "tls.crt"), filepath.Join(abs, "tls.key")
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if _, err := os.Stat(cfg.Admin.OperatorsFile); err == nil {
		return fmt.Errorf("%s exists; not overwriting it", cfg.Admin.OperatorsFile)
	}
	var key ed25519.PrivateKey
	if fab != nil {
		key, err = fab.key(c.Context, cfg)
	} else {
		key, err = node.GenerateKeyFile(cfg.KeyFile)
	}
	if err != nil {
		return err
	}
	if c.Bool("tls") {
		host, _, _ := net.SplitHostPort(cfg.HTTP.Addr)
		if err := node.WriteDevTLS(cfg.HTTP.TLSCertFile, cfg.HTTP.TLSKeyFile, "ccnode "+string(region), []string{host}, time.Now()); err != nil {
			return fmt.Errorf("init --tls: %w", err)
		}
	}
	tokPath := filepath.Join(abs, "operator.token")
	tok, err := node.AddOperator(cfg.Admin.OperatorsFile, "admin")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteNew(tokPath, []byte(tok+"\n"), 0o600); err != nil {
		return err
	}
	cfgPath := filepath.Join(abs, "ccnode.yaml")
	if err := atomicfile.WriteNew(cfgPath, node.SampleConfig(cfg), 0o600); err != nil {
		return err
	}
	pub := key.Public().(ed25519.PublicKey)
	pid, err := node.PeerID(pub)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "region %s initialised in %s\n  key:       %s (public key %s, base64 as in member.json and ledger records)\n  peer id:   %s (every form of the key: ccnode keys show --config %s)\n  operators: %s (operator admin, token in %s)\n  config:    %s\n",
		region, abs, cfg.KeyFile, base64.StdEncoding.EncodeToString(pub), pid, cfgPath, cfg.Admin.OperatorsFile, tokPath, cfgPath)
	if fab != nil {
		fmt.Fprintln(c.App.Writer, fab.note)
	}
	if c.Bool("tls") {
		fmt.Fprintf(c.App.Writer, "  tls:       %s (self-signed; banks pass it as --ca-file)\n", cfg.HTTP.TLSCertFile)
	}
	memberPath, err := writeMemberDescriptor(cfg, pub)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "  member:    %s (public; compose the consortium with: ccnode consortium bootstrap --out FILE MEMBER.json...)\n", memberPath)
	fmt.Fprintf(c.App.Writer, "Start it with: ccnode run --config %s\n", cfgPath)
	return nil
}

// checkInitFlags checks the flags init was given before it writes
// anything, each error naming its flag: the config's own validation would
// name a config key the operator never typed.
func checkInitFlags(c *cli.Context, dir string) error {
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("--dir %s: not a folder", dir)
	}
	for _, f := range []string{"http-addr", "admin-addr"} {
		if err := checkListenAddr(c.String(f)); err != nil {
			return fmt.Errorf("--%s: %w", f, err)
		}
	}
	if c.IsSet("node-key") && c.String("fabric-gateway") == "" {
		return fmt.Errorf("--node-key: only with --fabric-gateway, whose ledger record must name the key")
	}
	if gw := c.String("fabric-gateway"); gw != "" {
		fi, err := os.Stat(gw)
		if err != nil {
			return fmt.Errorf("--fabric-gateway: %w", err)
		}
		if fi.IsDir() {
			return fmt.Errorf("--fabric-gateway %s: a folder, want the gateway config file", gw)
		}
	}
	return nil
}

// checkListenAddr accepts host:port with a port of 0-65535 and a host
// that is empty, an IP address or a DNS name.
func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("address %s: port %s is not a number from 0 to 65535", addr, credit.Quote(port))
	}
	if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		return fmt.Errorf("address %s: host %s is neither an IP address nor a host name", addr, credit.Quote(host))
	}
	return nil
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
