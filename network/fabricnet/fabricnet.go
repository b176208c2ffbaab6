// Package fabricnet starts a real Hyperledger Fabric network on one
// machine without Docker, for tests, benchmarks and trials: one orderer
// (etcdraft) and one peer per region on 127.0.0.1 with free ports, an
// application channel, and the ccnode contract installed, approved and
// committed as chaincode-as-a-service with a majority-of-regions
// endorsement policy. Fabric's own binaries are built from the Go module
// proxy at a pinned version (see EnsureBinaries).
//
// Every process it starts is detached into its own process group, logs to
// a file in the network folder and is recorded by pid, so Down stops
// exactly those processes — also after a failed Up — and nothing else.
package fabricnet

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/prdcredit/ccnode/credit"
)

// Org is one region's Fabric organisation.
type Org struct {
	Region credit.RegionID `yaml:"region" json:"region"`
	Name   string          `yaml:"name" json:"name"`
	MSPID  string          `yaml:"msp_id" json:"msp_id"`
	Domain string          `yaml:"domain" json:"domain"`
	// Divisions are the region's division-code prefixes, for bootstrapping
	// membership.
	Divisions []string `yaml:"divisions" json:"divisions"`
}

// DefaultOrgs are Shenzhen, Guangzhou and Zhuhai.
func DefaultOrgs() []Org {
	return []Org{
		{Region: "440300", Name: "Shenzhen", MSPID: "SZMSP", Domain: "sz.ccnode.local", Divisions: []string{"4403"}},
		{Region: "440100", Name: "Guangzhou", MSPID: "GZMSP", Domain: "gz.ccnode.local", Divisions: []string{"4401"}},
		{Region: "440400", Name: "Zhuhai", MSPID: "ZHMSP", Domain: "zh.ccnode.local", Divisions: []string{"4404"}},
	}
}

// Config describes the network to start.
type Config struct {
	Dir          string // network folder; everything Up writes goes here
	Orgs         []Org  // at least one; default DefaultOrgs
	Channel      string // default "ccnode"
	Chaincode    string // default "ccnode"
	BatchTimeout time.Duration
	BinDir       string // Fabric binaries; default DefaultBinDir()
	// ChaincodeServer is the built chaincode server binary; when empty,
	// Up builds ./chaincode/server of this module into the network folder.
	ChaincodeServer string
	Logger          *slog.Logger
}

func (c Config) withDefaults() Config {
	if len(c.Orgs) == 0 {
		c.Orgs = DefaultOrgs()
	}
	if c.Channel == "" {
		c.Channel = "ccnode"
	}
	if c.Chaincode == "" {
		c.Chaincode = "ccnode"
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = 100 * time.Millisecond
	}
	if c.BinDir == "" {
		c.BinDir = DefaultBinDir()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Gateway is what a client needs to reach one region's peer; it is written
// to <dir>/gateways/<region>.yaml in the format network/fabric loads.
type Gateway struct {
	Endpoint      string `yaml:"endpoint" json:"endpoint"`
	TLSCACertPath string `yaml:"tls_ca_cert" json:"tls_ca_cert"`
	MSPID         string `yaml:"msp_id" json:"msp_id"`
	CertPath      string `yaml:"cert_path" json:"cert_path"`
	KeyPath       string `yaml:"key_path" json:"key_path"`
	Channel       string `yaml:"channel" json:"channel"`
	Chaincode     string `yaml:"chaincode" json:"chaincode"`
}

// Network is a running network.
type Network struct {
	Dir      string             `json:"dir"`
	Orgs     []Org              `json:"orgs"`
	Gateways map[string]Gateway `json:"gateways"` // by region id
	// GatewayFiles are the per-region gateway config files, in Orgs order.
	GatewayFiles []string `json:"gateway_files"`
}

const (
	ordererDomain = "orderer.ccnode.local"
	pidsFile      = "pids"
	stateFile     = "network.json"
)

type orgPlan struct {
	Org
	PeerPort, CCPort, OpsPort, ServerPort int
}

type plan struct {
	cfg                                Config
	dir, crypto                        string
	OrdererDomain                      string
	OrdererPort, AdminPort, OrdererOps int
	Orgs                               []orgPlan
	Crypto, OrdererTLS                 string
	BatchTimeout                       string
}

// freePorts asks the kernel for n distinct free ports. They are released
// before the processes bind them; a clash is unlikely and makes Up fail
// loudly rather than misbehave.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Up starts the network and returns once the contract is committed and
// every chaincode server runs. On failure it stops what it started.
func Up(ctx context.Context, cfg Config) (n *Network, err error) {
	cfg = cfg.withDefaults()
	if cfg.Dir == "" {
		return nil, errors.New("fabricnet: Config.Dir is empty")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if running, _ := liveProcesses(dir); len(running) > 0 {
		return nil, fmt.Errorf("fabricnet: %s already has %d running processes: run `ccnode fabric down` first", dir, len(running))
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if derr := Down(dir); derr != nil {
				cfg.Logger.Warn("fabricnet: cleaning up after a failed up", "err", derr)
			}
		}
	}()
	if !haveBinaries(cfg.BinDir) {
		cfg.Logger.Info("building Fabric binaries (first time only)", "dir", cfg.BinDir)
		if err := EnsureBinaries(ctx, cfg.BinDir, func(s string) { cfg.Logger.Info(s) }); err != nil {
			return nil, err
		}
	}
	ports, err := freePorts(3 + 4*len(cfg.Orgs))
	if err != nil {
		return nil, err
	}
	p := &plan{cfg: cfg, dir: dir, crypto: filepath.Join(dir, "crypto"), OrdererDomain: ordererDomain,
		OrdererPort: ports[0], AdminPort: ports[1], OrdererOps: ports[2],
		BatchTimeout: cfg.BatchTimeout.String()}
	p.Crypto = p.crypto
	p.OrdererTLS = filepath.Join(p.crypto, "ordererOrganizations", ordererDomain, "orderers", "orderer."+ordererDomain, "tls")
	for i, o := range cfg.Orgs {
		b := 3 + 4*i
		p.Orgs = append(p.Orgs, orgPlan{Org: o, PeerPort: ports[b], CCPort: ports[b+1], OpsPort: ports[b+2], ServerPort: ports[b+3]})
	}
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"crypto material", p.generateCrypto},
		{"channel genesis block", p.generateGenesis},
		{"node configuration", p.writeNodeConfig},
		{"orderer", p.startOrderer},
		{"peers", p.startPeers},
		{"chaincode", p.deployChaincode},
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.run(ctx); err != nil {
			return nil, fmt.Errorf("fabricnet: %s: %w", s.name, err)
		}
		cfg.Logger.Info("fabric network step done", "step", s.name, "took", time.Since(start).Round(time.Millisecond))
	}
	return p.writeGateways()
}

func (p *plan) bin(name string) string { return filepath.Join(p.cfg.BinDir, name) }

// run runs a Fabric CLI to completion with env added to a clean base.
func (p *plan) run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, p.bin(name), args...)
	cmd.Env = append(baseEnv(), env...)
	cmd.Dir = p.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(out, 30))
	}
	return out, nil
}

// baseEnv is this process's environment without anything Fabric would
// parse as configuration (CORE_*, ORDERER_*, FABRIC_*).
func baseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CORE_") || strings.HasPrefix(kv, "ORDERER_") || strings.HasPrefix(kv, "FABRIC_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (p *plan) generateCrypto(ctx context.Context) error {
	b, err := render(cryptoConfigTmpl, p)
	if err != nil {
		return err
	}
	path := filepath.Join(p.dir, "crypto-config.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	_, err = p.run(ctx, nil, "cryptogen", "generate", "--config", path, "--output", p.crypto)
	return err
}

func (p *plan) generateGenesis(ctx context.Context) error {
	b, err := render(configtxTmpl, p)
	if err != nil {
		return err
	}
	cfgDir := filepath.Join(p.dir, "configtx")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "configtx.yaml"), b, 0o644); err != nil {
		return err
	}
	_, err = p.run(ctx, []string{"FABRIC_CFG_PATH=" + cfgDir}, "configtxgen",
		"-profile", "ConsortiumChannel", "-channelID", p.cfg.Channel, "-outputBlock", filepath.Join(p.dir, "channel.block"))
	return err
}

// writeNodeConfig copies Fabric's sample core.yaml and orderer.yaml with
// the two edits no environment variable can make: no Docker endpoint (its
// health check would fail) and our chaincode-as-a-service builder.
func (p *plan) writeNodeConfig(ctx context.Context) error {
	sample, err := sampleConfigDir(ctx)
	if err != nil {
		return err
	}
	builder := filepath.Join(p.dir, "builders", "ccaas")
	if err := os.MkdirAll(filepath.Join(builder, "bin"), 0o755); err != nil {
		return err
	}
	for name, body := range map[string]string{"detect": builderDetect, "build": builderBuild, "release": builderRelease} {
		if err := os.WriteFile(filepath.Join(builder, "bin", name), []byte(body), 0o755); err != nil {
			return err
		}
	}
	core, err := os.ReadFile(filepath.Join(sample, "core.yaml"))
	if err != nil {
		return err
	}
	s := string(core)
	s, ok1 := replaceOnce(s, "  endpoint: unix:///var/run/docker.sock", `  endpoint: ""`)
	s, ok2 := replaceOnce(s, "    - name: ccaas_builder\n      path: /opt/hyperledger/ccaas_builder",
		"    - name: ccnode_ccaas\n      path: "+builder)
	if !ok1 || !ok2 {
		return errors.New("Fabric's sample core.yaml changed: vm.endpoint or chaincode.externalBuilders not found")
	}
	cfgDir := filepath.Join(p.dir, "config")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "core.yaml"), []byte(s), 0o644); err != nil {
		return err
	}
	ord, err := os.ReadFile(filepath.Join(sample, "orderer.yaml"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "orderer.yaml"), ord, 0o644); err != nil {
		return err
	}
	// The MSP sample config is referenced relative to FABRIC_CFG_PATH by
	// nothing we use, but the CLI insists that a config folder exists.
	return nil
}

func replaceOnce(s, old, repl string) (string, bool) {
	if !strings.Contains(s, old) {
		return s, false
	}
	return strings.Replace(s, old, repl, 1), true
}

func (p *plan) ordererEnv() []string {
	org := filepath.Join(p.crypto, "ordererOrganizations", ordererDomain)
	node := filepath.Join(org, "orderers", "orderer."+ordererDomain)
	tls := filepath.Join(node, "tls")
	data := filepath.Join(p.dir, "orderer")
	return []string{
		"FABRIC_CFG_PATH=" + filepath.Join(p.dir, "config"),
		"ORDERER_GENERAL_LISTENADDRESS=127.0.0.1",
		"ORDERER_GENERAL_LISTENPORT=" + strconv.Itoa(p.OrdererPort),
		"ORDERER_GENERAL_LOCALMSPID=OrdererMSP",
		"ORDERER_GENERAL_LOCALMSPDIR=" + filepath.Join(node, "msp"),
		"ORDERER_GENERAL_TLS_ENABLED=true",
		"ORDERER_GENERAL_TLS_PRIVATEKEY=" + filepath.Join(tls, "server.key"),
		"ORDERER_GENERAL_TLS_CERTIFICATE=" + filepath.Join(tls, "server.crt"),
		"ORDERER_GENERAL_TLS_ROOTCAS=[" + filepath.Join(tls, "ca.crt") + "]",
		"ORDERER_GENERAL_CLUSTER_CLIENTCERTIFICATE=" + filepath.Join(tls, "server.crt"),
		"ORDERER_GENERAL_CLUSTER_CLIENTPRIVATEKEY=" + filepath.Join(tls, "server.key"),
		"ORDERER_GENERAL_CLUSTER_ROOTCAS=[" + filepath.Join(tls, "ca.crt") + "]",
		"ORDERER_GENERAL_BOOTSTRAPMETHOD=none",
		"ORDERER_CHANNELPARTICIPATION_ENABLED=true",
		"ORDERER_ADMIN_LISTENADDRESS=127.0.0.1:" + strconv.Itoa(p.AdminPort),
		"ORDERER_ADMIN_TLS_ENABLED=true",
		"ORDERER_ADMIN_TLS_CERTIFICATE=" + filepath.Join(tls, "server.crt"),
		"ORDERER_ADMIN_TLS_PRIVATEKEY=" + filepath.Join(tls, "server.key"),
		"ORDERER_ADMIN_TLS_ROOTCAS=[" + filepath.Join(tls, "ca.crt") + "]",
		"ORDERER_ADMIN_TLS_CLIENTAUTHREQUIRED=true",
		"ORDERER_ADMIN_TLS_CLIENTROOTCAS=[" + filepath.Join(tls, "ca.crt") + "]",
		"ORDERER_FILELEDGER_LOCATION=" + filepath.Join(data, "ledger"),
		"ORDERER_CONSENSUS_WALDIR=" + filepath.Join(data, "etcdraft", "wal"),
		"ORDERER_CONSENSUS_SNAPDIR=" + filepath.Join(data, "etcdraft", "snapshot"),
		"ORDERER_OPERATIONS_LISTENADDRESS=127.0.0.1:" + strconv.Itoa(p.OrdererOps),
		"ORDERER_METRICS_PROVIDER=prometheus",
	}
}

func (p *plan) ordererCA() string {
	return filepath.Join(p.crypto, "ordererOrganizations", ordererDomain, "tlsca", "tlsca."+ordererDomain+"-cert.pem")
}

func (p *plan) startOrderer(ctx context.Context) error {
	if err := p.start("orderer", p.bin("orderer"), nil, p.ordererEnv()); err != nil {
		return err
	}
	admin := filepath.Join(p.crypto, "ordererOrganizations", ordererDomain, "users", "Admin@"+ordererDomain, "tls")
	join := func() error {
		out, err := p.run(ctx, nil, "osnadmin", "channel", "join", "--channelID", p.cfg.Channel,
			"--config-block", filepath.Join(p.dir, "channel.block"), "-o", "127.0.0.1:"+strconv.Itoa(p.AdminPort),
			"--ca-file", p.ordererCA(), "--client-cert", filepath.Join(admin, "client.crt"), "--client-key", filepath.Join(admin, "client.key"))
		if err != nil {
			return err
		}
		// osnadmin exits 0 on HTTP errors too.
		if !strings.Contains(string(out), "Status: 201") {
			return fmt.Errorf("osnadmin channel join: %s", tail(out, 10))
		}
		return nil
	}
	if err := poll(ctx, 60*time.Second, "orderer admin endpoint accepts the channel", join); err != nil {
		return err
	}
	leader := fmt.Sprintf(`consensus_etcdraft_is_leader{channel="%s"} 1`, p.cfg.Channel)
	return poll(ctx, 60*time.Second, "raft leader elected", func() error {
		body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", p.OrdererOps))
		if err != nil {
			return err
		}
		if !strings.Contains(body, leader) {
			return errors.New("no leader yet")
		}
		return nil
	})
}

func (o orgPlan) peerDir(crypto string) string {
	return filepath.Join(crypto, "peerOrganizations", o.Domain, "peers", "peer0."+o.Domain)
}

func (p *plan) peerEnv(o orgPlan) []string {
	node := o.peerDir(p.crypto)
	data := filepath.Join(p.dir, "peers", string(o.Region))
	addr := "127.0.0.1:" + strconv.Itoa(o.PeerPort)
	cc := "127.0.0.1:" + strconv.Itoa(o.CCPort)
	return []string{
		"FABRIC_CFG_PATH=" + filepath.Join(p.dir, "config"),
		"CORE_PEER_ID=peer0." + o.Domain,
		"CORE_PEER_ADDRESS=" + addr,
		"CORE_PEER_LISTENADDRESS=" + addr,
		"CORE_PEER_CHAINCODEADDRESS=" + cc,
		"CORE_PEER_CHAINCODELISTENADDRESS=" + cc,
		"CORE_PEER_GOSSIP_BOOTSTRAP=" + addr,
		"CORE_PEER_GOSSIP_EXTERNALENDPOINT=" + addr,
		// The first anchor-peer probe fails when peers join together; the
		// default 25 s retry would stall endorsement that long.
		"CORE_PEER_GOSSIP_RECONNECTINTERVAL=2s",
		"CORE_PEER_LOCALMSPID=" + o.MSPID,
		"CORE_PEER_MSPCONFIGPATH=" + filepath.Join(node, "msp"),
		"CORE_PEER_TLS_ENABLED=true",
		"CORE_PEER_TLS_CERT_FILE=" + filepath.Join(node, "tls", "server.crt"),
		"CORE_PEER_TLS_KEY_FILE=" + filepath.Join(node, "tls", "server.key"),
		"CORE_PEER_TLS_ROOTCERT_FILE=" + filepath.Join(node, "tls", "ca.crt"),
		"CORE_PEER_FILESYSTEMPATH=" + filepath.Join(data, "ledger"),
		"CORE_LEDGER_SNAPSHOTS_ROOTDIR=" + filepath.Join(data, "snapshots"),
		"CORE_OPERATIONS_LISTENADDRESS=127.0.0.1:" + strconv.Itoa(o.OpsPort),
	}
}

// adminEnv is the peer CLI environment of an org's admin, against its peer.
func (p *plan) adminEnv(o orgPlan) []string {
	org := filepath.Join(p.crypto, "peerOrganizations", o.Domain)
	return []string{
		"FABRIC_CFG_PATH=" + filepath.Join(p.dir, "config"),
		"CORE_PEER_LOCALMSPID=" + o.MSPID,
		"CORE_PEER_MSPCONFIGPATH=" + filepath.Join(org, "users", "Admin@"+o.Domain, "msp"),
		"CORE_PEER_ADDRESS=127.0.0.1:" + strconv.Itoa(o.PeerPort),
		"CORE_PEER_TLS_ENABLED=true",
		"CORE_PEER_TLS_ROOTCERT_FILE=" + p.peerCA(o),
	}
}

func (p *plan) peerCA(o orgPlan) string {
	return filepath.Join(p.crypto, "peerOrganizations", o.Domain, "tlsca", "tlsca."+o.Domain+"-cert.pem")
}

func (p *plan) startPeers(ctx context.Context) error {
	for _, o := range p.Orgs {
		if err := p.start("peer-"+string(o.Region), p.bin("peer"), []string{"node", "start"}, p.peerEnv(o)); err != nil {
			return err
		}
	}
	for _, o := range p.Orgs {
		if err := poll(ctx, 60*time.Second, "peer "+o.MSPID+" healthy", func() error {
			_, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/healthz", o.OpsPort))
			return err
		}); err != nil {
			return err
		}
		if _, err := p.run(ctx, p.adminEnv(o), "peer", "channel", "join", "-b", filepath.Join(p.dir, "channel.block")); err != nil {
			return err
		}
	}
	return nil
}

// chaincodePackage builds a ccaas package for one org: its connection.json
// names that org's own chaincode server, so each org has its own package id.
func chaincodePackage(label, address string) ([]byte, error) {
	conn, _ := json.Marshal(map[string]any{"address": address, "dial_timeout": "10s", "tls_required": false})
	code, err := tarGz(map[string][]byte{"connection.json": conn})
	if err != nil {
		return nil, err
	}
	meta, _ := json.Marshal(map[string]string{"type": "ccaas", "label": label})
	return tarGz(map[string][]byte{"metadata.json": meta, "code.tar.gz": code})
}

func tarGz(files map[string][]byte) ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, name := range []string{"metadata.json", "code.tar.gz", "connection.json"} {
		b, ok := files[name]
		if !ok {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(0, 0)}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (p *plan) chaincodeServer(ctx context.Context) (string, error) {
	if p.cfg.ChaincodeServer != "" {
		return p.cfg.ChaincodeServer, nil
	}
	root := repoRoot()
	if root == "" {
		return "", errors.New("cannot find the ccnode module to build ./chaincode/server: set Config.ChaincodeServer")
	}
	out := filepath.Join(p.dir, "bin", "ccserver")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./chaincode/server")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./chaincode/server: %w\n%s", err, b)
	}
	return out, nil
}

func (p *plan) deployChaincode(ctx context.Context) error {
	server, err := p.chaincodeServer(ctx)
	if err != nil {
		return err
	}
	label := p.cfg.Chaincode + "_1"
	orderer := []string{"-o", "127.0.0.1:" + strconv.Itoa(p.OrdererPort), "--tls", "--cafile", p.ordererCA()}
	for _, o := range p.Orgs {
		addr := "127.0.0.1:" + strconv.Itoa(o.ServerPort)
		pkg, err := chaincodePackage(label, addr)
		if err != nil {
			return err
		}
		pkgPath := filepath.Join(p.dir, "chaincode", string(o.Region)+".tar.gz")
		if err := os.MkdirAll(filepath.Dir(pkgPath), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(pkgPath, pkg, 0o644); err != nil {
			return err
		}
		env := p.adminEnv(o)
		if _, err := p.run(ctx, env, "peer", "lifecycle", "chaincode", "install", pkgPath); err != nil {
			return err
		}
		out, err := p.run(ctx, env, "peer", "lifecycle", "chaincode", "calculatepackageid", pkgPath)
		if err != nil {
			return err
		}
		pkgID := strings.TrimSpace(string(out))
		// The server must know its package id, so it starts after install.
		if err := p.start("ccserver-"+string(o.Region), server, nil, []string{
			"CHAINCODE_SERVER_ADDRESS=" + addr, "CHAINCODE_ID=" + pkgID, "CHAINCODE_TLS_DISABLED=true",
		}); err != nil {
			return err
		}
		args := append([]string{"lifecycle", "chaincode", "approveformyorg", "--channelID", p.cfg.Channel,
			"--name", p.cfg.Chaincode, "--version", "1.0", "--package-id", pkgID, "--sequence", "1"}, orderer...)
		if err := poll(ctx, 60*time.Second, o.MSPID+" approves the contract", func() error {
			_, err := p.run(ctx, env, "peer", args...)
			return err
		}); err != nil {
			return err
		}
	}
	args := append([]string{"lifecycle", "chaincode", "commit", "--channelID", p.cfg.Channel,
		"--name", p.cfg.Chaincode, "--version", "1.0", "--sequence", "1"}, orderer...)
	for _, o := range p.Orgs {
		args = append(args, "--peerAddresses", "127.0.0.1:"+strconv.Itoa(o.PeerPort), "--tlsRootCertFiles", p.peerCA(o))
	}
	if err := poll(ctx, 60*time.Second, "contract definition commits", func() error {
		_, err := p.run(ctx, p.adminEnv(p.Orgs[0]), "peer", args...)
		return err
	}); err != nil {
		return err
	}
	for _, o := range p.Orgs {
		if err := poll(ctx, 60*time.Second, o.MSPID+" sees the committed contract", func() error {
			_, err := p.run(ctx, p.adminEnv(o), "peer", "lifecycle", "chaincode", "querycommitted", "--channelID", p.cfg.Channel, "--name", p.cfg.Chaincode)
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

func (p *plan) writeGateways() (*Network, error) {
	n := &Network{Dir: p.dir, Gateways: map[string]Gateway{}}
	gwDir := filepath.Join(p.dir, "gateways")
	if err := os.MkdirAll(gwDir, 0o755); err != nil {
		return nil, err
	}
	for _, o := range p.Orgs {
		user := filepath.Join(p.crypto, "peerOrganizations", o.Domain, "users", "User1@"+o.Domain, "msp")
		g := Gateway{
			Endpoint:      "127.0.0.1:" + strconv.Itoa(o.PeerPort),
			TLSCACertPath: p.peerCA(o),
			MSPID:         o.MSPID,
			CertPath:      filepath.Join(user, "signcerts", "User1@"+o.Domain+"-cert.pem"),
			KeyPath:       filepath.Join(user, "keystore", "priv_sk"),
			Channel:       p.cfg.Channel,
			Chaincode:     p.cfg.Chaincode,
		}
		b, err := yaml.Marshal(g)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(gwDir, string(o.Region)+".yaml")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return nil, err
		}
		n.Orgs = append(n.Orgs, o.Org)
		n.Gateways[string(o.Region)] = g
		n.GatewayFiles = append(n.GatewayFiles, path)
	}
	b, _ := json.MarshalIndent(n, "", "  ")
	if err := os.WriteFile(filepath.Join(p.dir, stateFile), b, 0o644); err != nil {
		return nil, err
	}
	return n, nil
}

// Load reads a running network's description from its folder.
func Load(dir string) (*Network, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("fabricnet: no network in %s: %w", dir, err)
	}
	var n Network
	if err := json.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("fabricnet: %s: %w", stateFile, err)
	}
	return &n, nil
}

// start launches a long-running process detached in its own process
// group, logging to <dir>/logs/<name>.log, and records its pid.
func (p *plan) start(name, bin string, args, env []string) error {
	logDir := filepath.Join(p.dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(logDir, name+".log"))
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(baseEnv(), env...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	// Reap it when it exits, whoever stops it, so a long-lived parent (a
	// test binary) collects no zombies.
	go func() { _ = cmd.Wait() }()
	pf, err := os.OpenFile(filepath.Join(p.dir, pidsFile), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer pf.Close()
	_, err = fmt.Fprintf(pf, "%s %d %s\n", name, cmd.Process.Pid, bin)
	return err
}

// Process is one started process as recorded in the pids file.
type Process struct {
	Name  string
	Pid   int
	Bin   string
	Alive bool
}

func readPids(dir string) ([]Process, error) {
	b, err := os.ReadFile(filepath.Join(dir, pidsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Process
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		pid, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		pr := Process{Name: f[0], Pid: pid, Bin: f[2]}
		pr.Alive = isOurs(pr)
		out = append(out, pr)
	}
	return out, nil
}

// isOurs reports whether pid is alive and still runs the recorded binary,
// so a recycled pid is never signalled.
func isOurs(pr Process) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pr.Pid))
	if err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pr.Pid))
	if err == nil {
		// A zombie has exited already.
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return false
		}
	}
	return strings.TrimSuffix(exe, " (deleted)") == pr.Bin
}

func liveProcesses(dir string) ([]Process, error) {
	ps, err := readPids(dir)
	var live []Process
	for _, p := range ps {
		if p.Alive {
			live = append(live, p)
		}
	}
	return live, err
}

// Status lists the network's recorded processes and whether each runs.
func Status(dir string) ([]Process, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return readPids(abs)
}

// Down stops every process Up recorded in dir, in reverse start order:
// SIGTERM to its process group, then SIGKILL after a grace period. It is
// safe on a network that is partly or wholly stopped.
func Down(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	ps, err := readPids(abs)
	if err != nil {
		return err
	}
	var errs []error
	for i := len(ps) - 1; i >= 0; i-- {
		if ps[i].Alive {
			if err := syscall.Kill(-ps[i].Pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("stop %s (pid %d): %w", ps[i].Name, ps[i].Pid, err))
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pr := range ps {
		for pr.Alive && isOurs(pr) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond) // polling a foreign process's exit: there is nothing to wait on
		}
		if pr.Alive && isOurs(pr) {
			_ = syscall.Kill(-pr.Pid, syscall.SIGKILL)
		}
	}
	if len(errs) == 0 {
		_ = os.Remove(filepath.Join(abs, pidsFile))
	}
	return errors.Join(errs...)
}

func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	return string(b), nil
}

// poll retries f until it succeeds, ctx ends or the limit passes.
func poll(ctx context.Context, limit time.Duration, what string, f func() error) error {
	deadline := time.Now().Add(limit)
	wait := 100 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s: %w", what, limit, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-t.C:
		}
		if wait < time.Second {
			wait *= 2
		}
	}
}
