package main

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/internal/atomicfile"
	"github.com/prdcredit/ccnode/node"
)

// memberFile is the region's public member descriptor, in its data folder.
const memberFile = "member.json"

// writeMemberDescriptor writes DATA_DIR/member.json, the region's public
// description for 'ccnode consortium bootstrap', and returns its path.
// It holds nothing secret and follows the key, so it is rewritten freely.
func writeMemberDescriptor(cfg node.Config, pub ed25519.PublicKey) (string, error) {
	d, err := node.NewMemberDescriptor(cfg, pub)
	if err != nil {
		return "", fmt.Errorf("member descriptor: %w", err)
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(cfg.DataDir, memberFile)
	if err := atomicfile.ReplaceBytes(path, append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("member descriptor: %w", err)
	}
	return path, nil
}

// runInitFromConfig sets up the node an existing config describes (such
// as configs/440300.yaml): the files it names that do not exist yet — the
// node key, the operators file with a first operator, a self-signed TLS
// pair when http.tls_cert_file and tls_key_file are named — and the member
// descriptor. It writes no config: the file is the operator's.
func runInitFromConfig(c *cli.Context) error {
	cfgPath := c.String("config")
	for _, f := range []string{"dir", "http-addr", "admin-addr", "fabric-gateway"} {
		if c.IsSet(f) {
			return fmt.Errorf("init --config: --%s: the config file sets this; edit %s instead", f, cfgPath)
		}
	}
	cfg, err := node.LoadConfig(cfgPath)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s: %w", cfgPath, err)
	}
	if err := checkRegion("config "+cfgPath+" region", cfg.Region); err != nil {
		return err
	}
	if r := c.String("region"); r != "" && r != string(cfg.Region) {
		return fmt.Errorf("init --config: --region %s, but %s is for region %s", r, cfgPath, cfg.Region)
	}
	makeTLS := cfg.HTTP.TLSCertFile != "" && !exists(cfg.HTTP.TLSCertFile) && !exists(cfg.HTTP.TLSKeyFile)
	if c.Bool("tls") && cfg.HTTP.TLSCertFile == "" {
		return fmt.Errorf("init --config --tls: %s names no http.tls_cert_file and tls_key_file to write the pair to", cfgPath)
	}
	for _, p := range []string{cfg.Admin.OperatorsFile, cfg.KeyFile} {
		if exists(p) {
			return fmt.Errorf("%s exists (region %s is initialised already); not overwriting it", p, cfg.Region)
		}
	}
	key, err := node.GenerateKeyFile(cfg.KeyFile)
	if err != nil {
		return err
	}
	if makeTLS {
		host, _, _ := net.SplitHostPort(cfg.HTTP.Addr)
		if err := node.WriteDevTLS(cfg.HTTP.TLSCertFile, cfg.HTTP.TLSKeyFile, "ccnode "+string(cfg.Region), []string{host}, time.Now()); err != nil {
			return fmt.Errorf("init: tls: %w", err)
		}
	}
	tok, err := node.AddOperator(cfg.Admin.OperatorsFile, "admin")
	if err != nil {
		return err
	}
	tokPath := filepath.Join(filepath.Dir(cfg.Admin.OperatorsFile), "operator.token")
	if err := atomicfile.WriteNew(tokPath, []byte(tok+"\n"), 0o600); err != nil {
		return err
	}
	pub := key.Public().(ed25519.PublicKey)
	memberPath, err := writeMemberDescriptor(cfg, pub)
	if err != nil {
		return err
	}
	pid, err := node.PeerID(pub)
	if err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "region %s initialised from %s\n  key:       %s (peer id %s; every form of the key: ccnode keys show --config %s)\n  operators: %s (operator admin, token in %s)\n",
		cfg.Region, cfgPath, cfg.KeyFile, pid, cfgPath, cfg.Admin.OperatorsFile, tokPath)
	if makeTLS {
		fmt.Fprintf(w, "  tls:       %s (self-signed; banks pass it as --ca-file)\n", cfg.HTTP.TLSCertFile)
	}
	fmt.Fprintf(w, "  member:    %s (public; compose the consortium with: ccnode consortium bootstrap --out FILE MEMBER.json...)\n", memberPath)
	fmt.Fprintf(w, "Start it with: ccnode run --config %s\n", cfgPath)
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
