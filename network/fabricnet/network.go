// Package fabricnet starts a real Hyperledger Fabric network on one machine
// without Docker, for tests, benchmarks and trials: one orderer (etcdraft,
// one consenter) and one peer per region on 127.0.0.1 with free ports, the
// application channel "ccnode" created from a genesis block, and the ccnode
// contract installed, approved and committed as chaincode-as-a-service with
// a majority-of-regions endorsement policy. An auditor organisation with no
// peer (AuditorMSP) is on the channel too: its client reads everything and
// can write nothing. Fabric's own binaries are built
// from the Go module proxy at a pinned version (EnsureBinaries,
// build-binaries.sh).
//
// Every process it starts runs in a session of its own, logs to a file in
// the network folder and is recorded by pid, so Down stops exactly those
// processes — also after a failed Up — and nothing else.
//
// It owns the network's processes and files only; what goes on the ledger
// (membership, consents) is the caller's business, through Config.Bootstrap
// or a client of its own (network/fabric).
package fabricnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// Network is a started network, as Up returns it and Load reads it back
// from <dir>/network.json.
type Network struct {
	Dir       string   `json:"dir"`
	Channel   string   `json:"channel"`
	Chaincode string   `json:"chaincode"`
	Regions   []Region `json:"regions"`
	// Gateways are what a client of each region needs, by region id.
	Gateways map[credit.RegionID]Gateway `json:"gateways"`
	// GatewayFiles are <dir>/connection/<region id>.yaml, in Regions order,
	// in the format network/fabric.LoadConfig reads.
	GatewayFiles []string `json:"gateway_files"`
	// Auditor is the auditor's client: a member of AuditorMSP, which may
	// read (evaluate, events) but whose transactions the orderer refuses,
	// reaching the channel through the first region's peer.
	Auditor Gateway `json:"auditor"`
	// AuditorFile is <dir>/connection/auditor.yaml, Auditor's connection file.
	AuditorFile string                   `json:"auditor_file"`
	Orderer     OrdererNode              `json:"orderer"`
	Peers       map[credit.RegionID]Peer `json:"peers"`
	// ClientTLS and ChaincodeTLSDisabled are the Config's, for Upgrade.
	ClientTLS            bool `json:"client_tls,omitempty"`
	ChaincodeTLSDisabled bool `json:"chaincode_tls_disabled,omitempty"`
	// ExtraPeers are each region's peers after peer 0 (PeersPerRegion).
	ExtraPeers map[credit.RegionID][]Peer `json:"extra_peers,omitempty"`
	BinDir     BinDir                     `json:"bin_dir"`
}

// OrdererNode is where the orderer listens.
type OrdererNode struct {
	Endpoint           string `json:"endpoint"`            // 127.0.0.1:port, TLS
	AdminEndpoint      string `json:"admin_endpoint"`      // channel participation API, mutual TLS
	OperationsEndpoint string `json:"operations_endpoint"` // /metrics, /healthz, plain HTTP
	TLSCACert          string `json:"tls_ca_cert"`
}

// Peer is one region's peer and chaincode server.
type Peer struct {
	Endpoint           string `json:"endpoint"`
	OperationsEndpoint string `json:"operations_endpoint"`
	TLSCACert          string `json:"tls_ca_cert"`
	AdminMSPDir        string `json:"admin_msp_dir"` // the region's Admin user, for the peer CLI
	ChaincodeServer    string `json:"chaincode_server"`
	PackageID          string `json:"package_id"` // label:sha256, the server's CHAINCODE_ID
	// Process is its name in the pids file (Status, Kill).
	Process string `json:"process,omitempty"`
}

// AuditorMSP is the MSP id of the auditor's organisation. It has no peer,
// endorses nothing and approves nothing: the policies that need a majority
// name the regions, not every organisation of the channel.
const AuditorMSP = "AuditorMSP"

const (
	ordererMSP    = "OrdererMSP"
	ordererDomain = "orderer.ccnode.local"
	auditorName   = "auditor" // names its domain and connection file
	profile       = "ConsortiumChannel"
	ccVersion     = "1.0"
	ccSequence    = "1"
)

// Errors of Up that a caller may want to tell apart.
var (
	// ErrRunning: the folder's processes from an earlier Up still run.
	ErrRunning = errors.New("fabricnet: a network is already running in this folder")
	// ErrNotNetworkDir: the folder holds files Up did not write; Up empties
	// the network folder and will not do that to anything else.
	ErrNotNetworkDir = errors.New("fabricnet: folder is not empty and was not made by fabricnet")
	// ErrNoRegion: the network has no region of that id.
	ErrNoRegion = errors.New("fabricnet: no such region")
)

// regionPlan is a region with the ports Up chose for it. Its own ports
// are peer 0's; Extra are its further peers (PeersPerRegion).
type regionPlan struct {
	Region
	Domain                                  string
	PeerPort, CCPort, OpsPort, CCServerPort int
	Extra                                   []peerPlan
}

// peerPlan is one peer of a region: peer<Index>.<domain>.
type peerPlan struct {
	Index                     int
	PeerPort, CCPort, OpsPort int
}

// peers lists the region's peers, peer 0 first.
func (r regionPlan) peers() []peerPlan {
	return append([]peerPlan{{Index: 0, PeerPort: r.PeerPort, CCPort: r.CCPort, OpsPort: r.OpsPort}}, r.Extra...)
}

// processName is the name a region's peer is recorded under in the pid
// file and its log: peer-<region> for peer 0 (as before), else
// peer-<region>-<index>.
func (r regionPlan) processName(pp peerPlan) string { return PeerProcess(r.Name, pp.Index) }

// PeerProcess is the process name of a region's peer index, as Status
// reports it (peer-shenzhen, peer-shenzhen-1, ...).
func PeerProcess(region string, index int) string {
	if index == 0 {
		return "peer-" + region
	}
	return fmt.Sprintf("peer-%s-%d", region, index)
}

// auditorPlan is the auditor's organisation: a CA and one client user.
type auditorPlan struct{ MSPID, Domain string }

// plan is one Up in progress.
type plan struct {
	cfg    Config
	dir    string
	bins   BinDir
	exited exited

	// Template fields.
	OrdererMSP, OrdererDomain          string
	OrdererPort, AdminPort, OrdererOps int
	Regions                            []regionPlan
	Auditor                            auditorPlan
	Crypto, OrdererTLS, BatchTimeout   string

	packageIDs map[credit.RegionID]string
	ports      *ports

	mu       sync.Mutex
	launched []string // names of the processes this plan started
}

// Up starts a network in cfg.Dir and returns once the contract is committed
// on every peer, a transaction submitted through every region's gateway
// has committed and the auditor has evaluated (unless SkipReadyCheck) and
// cfg.Bootstrap has run. It
// builds Fabric's binaries first if they are missing. On failure it stops
// everything it started and keeps the folder, logs included.
//
// With binaries built it took 23-42 s for three regions on a 2-core machine
// busy with other builds and tests (FABRIC.md saw about 6 s when idle).
func Up(ctx context.Context, cfg Config) (*Network, error) {
	for attempt := 1; ; attempt++ {
		n, err := up(ctx, cfg)
		// Another program took a port between its choice and its use:
		// rare, and fresh ports fix it.
		if errors.Is(err, ErrPortTaken) && attempt < 3 && ctx.Err() == nil {
			cfg.WithDefaults().Logger.Warn("fabricnet: a port was taken; starting again with fresh ports", "err", err)
			continue
		}
		return n, err
	}
}

func up(ctx context.Context, cfg Config) (n *Network, err error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ChaincodeServer == "" {
		// Fail before starting anything when there is nothing to build.
		if _, err := chaincodeModule(cfg); err != nil {
			return nil, fmt.Errorf("fabricnet: %w", err)
		}
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("fabricnet: %w", err)
	}
	if err := prepareDir(dir); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	ccBuilt := make(chan buildResult, 1)
	ccStarted := false
	defer func() {
		cancel()
		if ccStarted {
			<-ccBuilt // the go build must not outlive Up
		}
		if err != nil {
			if derr := Down(dir); derr != nil {
				cfg.Logger.Warn("fabricnet: stopping what a failed up started", "dir", dir, "err", derr)
			}
			err = fmt.Errorf("%w (logs in %s)", err, filepath.Join(dir, logsDir))
		}
	}()
	bins := BinDir(cfg.BinDir)
	if !bins.Complete() {
		cfg.Logger.Info("building Fabric's binaries from the Go module proxy (first time only; minutes)", "dir", cfg.BinDir)
		if bins, err = EnsureBinaries(ctx, cfg.BinDir); err != nil {
			return nil, err
		}
	}
	// The chaincode server compiles while the network starts.
	ccStarted = true
	go func() {
		path, err := chaincodeServer(ctx, cfg, dir)
		ccBuilt <- buildResult{path, err}
	}()

	p := &plan{cfg: cfg, dir: dir, bins: bins, OrdererMSP: ordererMSP, OrdererDomain: ordererDomain,
		Auditor: auditorPlan{MSPID: AuditorMSP, Domain: auditorName + ".ccnode.local"},
		Crypto:  filepath.Join(dir, "crypto"), BatchTimeout: cfg.BatchTimeout.String()}
	p.OrdererTLS = filepath.Join(p.Crypto, "ordererOrganizations", ordererDomain, "orderers", "orderer."+ordererDomain, "tls")
	extra := cfg.PeersPerRegion - 1
	held, ports, err := reservePorts(3 + (4+3*extra)*len(cfg.Regions))
	if err != nil {
		return nil, err
	}
	defer held.releaseAll()
	p.ports = held
	p.OrdererPort, p.AdminPort, p.OrdererOps = ports[0], ports[1], ports[2]
	for i, r := range cfg.Regions {
		b := 3 + (4+3*extra)*i
		rp := regionPlan{Region: r, Domain: r.domain(),
			PeerPort: ports[b], CCPort: ports[b+1], OpsPort: ports[b+2], CCServerPort: ports[b+3]}
		for k := 1; k <= extra; k++ {
			e := b + 4 + 3*(k-1)
			rp.Extra = append(rp.Extra, peerPlan{Index: k, PeerPort: ports[e], CCPort: ports[e+1], OpsPort: ports[e+2]})
		}
		p.Regions = append(p.Regions, rp)
	}

	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"crypto material", p.generateCrypto},
		{"channel genesis block", p.generateGenesis},
		{"node configuration", p.writeConfig},
		{"orderer", p.startOrderer},
		{"peers", p.startPeers},
		{"chaincode", func(ctx context.Context) error {
			var r buildResult
			select {
			case r = <-ccBuilt:
				ccStarted = false
			case <-ctx.Done():
				return ctx.Err()
			}
			if r.err != nil {
				return r.err
			}
			return p.deployChaincode(ctx, r.path)
		}},
		{"connection files", func(context.Context) error {
			n, err = p.writeConnections()
			return err
		}},
		{"readiness", func(ctx context.Context) error {
			if cfg.SkipReadyCheck {
				return nil
			}
			return n.waitReady(ctx, 2*time.Minute)
		}},
		{"bootstrap", func(ctx context.Context) error {
			if cfg.Bootstrap == nil {
				return nil
			}
			return cfg.Bootstrap(ctx, n)
		}},
	}
	start := time.Now()
	for _, s := range steps {
		t := time.Now()
		if err := s.run(ctx); err != nil {
			return nil, fmt.Errorf("fabricnet: %s: %w", s.name, err)
		}
		cfg.Logger.Info("fabric network step done", "step", s.name, "took", time.Since(t).Round(time.Millisecond))
	}
	cfg.Logger.Info("fabric network up", "dir", dir, "regions", len(p.Regions), "took", time.Since(start).Round(time.Millisecond))
	return n, nil
}

type buildResult struct {
	path string
	err  error
}

// prepareDir empties a network folder of an earlier, stopped network, or
// makes a new one. It refuses a folder with running processes or with
// files Up did not write.
func prepareDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("fabricnet: %w", err)
	case len(entries) == 0:
	default:
		if _, err := os.Stat(filepath.Join(dir, markerFile)); err != nil {
			return fmt.Errorf("%w: %s", ErrNotNetworkDir, dir)
		}
		ps, err := readPids(dir)
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.Alive {
				return fmt.Errorf("%w: %s (%s, pid %d): stop it with Down / `ccnode fabric down`", ErrRunning, dir, p.Name, p.Pid)
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("fabricnet: emptying %s: %w", dir, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("fabricnet: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, markerFile), []byte("made by ccnode's fabricnet.Up; Up empties this folder\n"), 0o644)
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// RegionsRule is the signature policy "a majority of the regions' <role>s",
// such as OutOf(2, 'SZMSP.peer', 'GZMSP.peer', 'ZHMSP.peer'): the auditor
// is left out, so adding it changes no threshold.
func (p *plan) RegionsRule(role string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "OutOf(%d", len(p.Regions)/2+1)
	for _, r := range p.Regions {
		fmt.Fprintf(&b, ", '%s.%s'", r.MSPID, role)
	}
	b.WriteString(")")
	return b.String()
}

// run runs one of Fabric's command-line tools to completion.
func (p *plan) run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	return runTool(ctx, p.dir, p.bins.Path(name), env, args...)
}

func runTool(ctx context.Context, dir, bin string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(childEnv(), env...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, tail(out, 20))
	}
	return out, nil
}

// launch starts a network process on the given ports of the plan, which
// are let go of just before it starts.
func (p *plan) launch(name, bin string, args, env []string, ports ...int) (int, error) {
	p.ports.release(ports...)
	pid, err := launch(p.dir, name, bin, args, env, p.cfg.StopWithParent, &p.exited)
	if err == nil {
		p.mu.Lock()
		p.launched = append(p.launched, name)
		p.mu.Unlock()
	}
	return pid, err
}

// waitListening waits until pid listens on all its ports, which is also
// the proof that no other program answers there in its place.
func (p *plan) waitListening(ctx context.Context, name string, pid int, ports ...int) error {
	return p.poll(ctx, time.Minute, name+" listens", func() error {
		ok, err := listening(pid, ports)
		if errors.Is(err, ErrPortTaken) {
			return permanent{err}
		}
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("not yet")
		}
		return nil
	})
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
	_, err = p.run(ctx, nil, "cryptogen", "generate", "--config", path, "--output", p.Crypto)
	return err
}

func (p *plan) generateGenesis(ctx context.Context) error {
	b, err := render(configtxTmpl, p)
	if err != nil {
		return err
	}
	// configtxgen reads configtx.yaml from FABRIC_CFG_PATH, so it gets a
	// folder of its own.
	cfgDir := filepath.Join(p.dir, "configtx")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "configtx.yaml"), b, 0o644); err != nil {
		return err
	}
	_, err = p.run(ctx, []string{"FABRIC_CFG_PATH=" + cfgDir}, "configtxgen",
		"-profile", profile, "-channelID", p.cfg.Channel, "-outputBlock", p.channelBlock())
	return err
}

func (p *plan) channelBlock() string { return filepath.Join(p.dir, "channel.block") }
func (p *plan) configDir() string    { return filepath.Join(p.dir, "config") }

func (p *plan) writeConfig(ctx context.Context) error {
	builder := filepath.Join(p.dir, "builders", "ccaas")
	if err := os.MkdirAll(filepath.Join(builder, "bin"), 0o755); err != nil {
		return err
	}
	for name, body := range map[string]string{"detect": builderDetect, "build": builderBuild, "release": builderRelease} {
		if err := os.WriteFile(filepath.Join(builder, "bin", name), []byte(body), 0o755); err != nil {
			return err
		}
	}
	return writeNodeConfig(ctx, p.bins, p.dir, builder)
}

func (p *plan) ordererCA() string {
	return filepath.Join(p.Crypto, "ordererOrganizations", ordererDomain, "tlsca", "tlsca."+ordererDomain+"-cert.pem")
}

func (p *plan) ordererEnv() []string {
	node := filepath.Join(p.Crypto, "ordererOrganizations", ordererDomain, "orderers", "orderer."+ordererDomain)
	tls := p.OrdererTLS
	data := filepath.Join(p.dir, "orderer")
	return []string{
		"FABRIC_CFG_PATH=" + p.configDir(),
		"FABRIC_LOGGING_SPEC=info",
		"ORDERER_GENERAL_LISTENADDRESS=127.0.0.1",
		"ORDERER_GENERAL_LISTENPORT=" + strconv.Itoa(p.OrdererPort),
		"ORDERER_GENERAL_LOCALMSPID=" + ordererMSP,
		"ORDERER_GENERAL_LOCALMSPDIR=" + filepath.Join(node, "msp"),
		"ORDERER_GENERAL_TLS_ENABLED=true",
		"ORDERER_GENERAL_TLS_PRIVATEKEY=" + filepath.Join(tls, "server.key"),
		"ORDERER_GENERAL_TLS_CERTIFICATE=" + filepath.Join(tls, "server.crt"),
		"ORDERER_GENERAL_TLS_ROOTCAS=[" + filepath.Join(tls, "ca.crt") + "]",
		"ORDERER_GENERAL_CLUSTER_CLIENTCERTIFICATE=" + filepath.Join(tls, "server.crt"),
		"ORDERER_GENERAL_CLUSTER_CLIENTPRIVATEKEY=" + filepath.Join(tls, "server.key"),
		"ORDERER_GENERAL_CLUSTER_ROOTCAS=[" + filepath.Join(tls, "ca.crt") + "]",
		// No system channel: channels are joined through the admin API.
		"ORDERER_GENERAL_BOOTSTRAPMETHOD=none",
		"ORDERER_CHANNELPARTICIPATION_ENABLED=true",
		"ORDERER_ADMIN_LISTENADDRESS=" + addr(p.AdminPort),
		"ORDERER_ADMIN_TLS_ENABLED=true",
		"ORDERER_ADMIN_TLS_CERTIFICATE=" + filepath.Join(tls, "server.crt"),
		"ORDERER_ADMIN_TLS_PRIVATEKEY=" + filepath.Join(tls, "server.key"),
		"ORDERER_ADMIN_TLS_ROOTCAS=[" + filepath.Join(tls, "ca.crt") + "]",
		"ORDERER_ADMIN_TLS_CLIENTAUTHREQUIRED=true",
		"ORDERER_ADMIN_TLS_CLIENTROOTCAS=[" + filepath.Join(tls, "ca.crt") + "]",
		"ORDERER_FILELEDGER_LOCATION=" + filepath.Join(data, "ledger"),
		"ORDERER_CONSENSUS_WALDIR=" + filepath.Join(data, "etcdraft", "wal"),
		"ORDERER_CONSENSUS_SNAPDIR=" + filepath.Join(data, "etcdraft", "snapshot"),
		"ORDERER_OPERATIONS_LISTENADDRESS=" + addr(p.OrdererOps),
		"ORDERER_METRICS_PROVIDER=prometheus",
	}
}

func (p *plan) startOrderer(ctx context.Context) error {
	pid, err := p.launch("orderer", p.bins.Path("orderer"), nil, p.ordererEnv(), p.OrdererPort, p.AdminPort, p.OrdererOps)
	if err != nil {
		return err
	}
	if err := p.waitListening(ctx, "orderer", pid, p.OrdererPort, p.AdminPort, p.OrdererOps); err != nil {
		return err
	}
	admin := filepath.Join(p.Crypto, "ordererOrganizations", ordererDomain, "users", "Admin@"+ordererDomain, "tls")
	if err := p.poll(ctx, time.Minute, "orderer joins the channel", func() error {
		out, err := p.run(ctx, nil, "osnadmin", "channel", "join", "--channelID", p.cfg.Channel,
			"--config-block", p.channelBlock(), "-o", addr(p.AdminPort), "--ca-file", p.ordererCA(),
			"--client-cert", filepath.Join(admin, "client.crt"), "--client-key", filepath.Join(admin, "client.key"))
		if err != nil {
			return err
		}
		// osnadmin exits 0 on HTTP errors too; only 201 Created is a join.
		if !strings.Contains(string(out), "Status: 201") {
			return fmt.Errorf("osnadmin channel join: %s", tail(out, 10))
		}
		return nil
	}); err != nil {
		return err
	}
	// For about a second after the join there is no Raft leader and
	// broadcasts fail; the orderer's own metric says when there is one.
	leader := fmt.Sprintf(`consensus_etcdraft_is_leader{channel="%s"} 1`, p.cfg.Channel)
	return p.poll(ctx, time.Minute, "raft leader elected", func() error {
		body, err := httpGet(ctx, "http://"+addr(p.OrdererOps)+"/metrics")
		if err != nil {
			return err
		}
		if !strings.Contains(body, leader) {
			return errors.New("no leader yet")
		}
		return nil
	})
}

func (r regionPlan) peerNode(crypto string) string { return r.peerNodeN(crypto, 0) }

func (r regionPlan) peerNodeN(crypto string, index int) string {
	return filepath.Join(crypto, "peerOrganizations", r.Domain, "peers", fmt.Sprintf("peer%d.%s", index, r.Domain))
}

func (p *plan) peerCA(r regionPlan) string {
	return filepath.Join(p.Crypto, "peerOrganizations", r.Domain, "tlsca", "tlsca."+r.Domain+"-cert.pem")
}

func (p *plan) adminMSP(r regionPlan) string {
	return filepath.Join(p.Crypto, "peerOrganizations", r.Domain, "users", "Admin@"+r.Domain, "msp")
}

func (p *plan) peerEnv(r regionPlan, pp peerPlan) []string {
	node := r.peerNodeN(p.Crypto, pp.Index)
	data := filepath.Join(p.dir, "peers", r.Name)
	if pp.Index > 0 {
		data = fmt.Sprintf("%s-%d", data, pp.Index)
	}
	self := addr(pp.PeerPort)
	env := []string{
		"FABRIC_CFG_PATH=" + p.configDir(),
		"FABRIC_LOGGING_SPEC=info",
		fmt.Sprintf("CORE_PEER_ID=peer%d.%s", pp.Index, r.Domain),
		"CORE_PEER_ADDRESS=" + self,
		"CORE_PEER_LISTENADDRESS=" + self,
		"CORE_PEER_CHAINCODEADDRESS=" + addr(pp.CCPort),
		"CORE_PEER_CHAINCODELISTENADDRESS=" + addr(pp.CCPort),
		// Every peer of a region meets the others through peer 0.
		"CORE_PEER_GOSSIP_BOOTSTRAP=" + addr(r.PeerPort),
		"CORE_PEER_GOSSIP_EXTERNALENDPOINT=" + self,
		// Peers joining within a few hundred ms miss each other's first
		// anchor-peer probe; the default 25 s retry would leave the gateway
		// unable to find a majority of endorsers that long.
		"CORE_PEER_GOSSIP_RECONNECTINTERVAL=2s",
		"CORE_PEER_LOCALMSPID=" + r.MSPID,
		"CORE_PEER_MSPCONFIGPATH=" + filepath.Join(node, "msp"),
		"CORE_PEER_TLS_ENABLED=true",
		"CORE_PEER_TLS_CERT_FILE=" + filepath.Join(node, "tls", "server.crt"),
		"CORE_PEER_TLS_KEY_FILE=" + filepath.Join(node, "tls", "server.key"),
		"CORE_PEER_TLS_ROOTCERT_FILE=" + filepath.Join(node, "tls", "ca.crt"),
		"CORE_PEER_FILESYSTEMPATH=" + filepath.Join(data, "ledger"),
		"CORE_LEDGER_SNAPSHOTS_ROOTDIR=" + filepath.Join(data, "snapshots"),
		// Its own operations port: the default equals the orderer's admin port.
		"CORE_OPERATIONS_LISTENADDRESS=" + addr(pp.OpsPort),
		"CORE_METRICS_PROVIDER=prometheus",
	}
	if p.cfg.ClientTLS {
		// Clients must show a certificate of a channel member's TLS CA.
		// The peer adds the channel's CAs once joined; the static list
		// lets the admins' CLI in before that.
		env = append(env, "CORE_PEER_TLS_CLIENTAUTHREQUIRED=true",
			"CORE_PEER_TLS_CLIENTROOTCAS_FILES="+strings.Join(p.memberTLSCAs(), " "))
	}
	return env
}

// memberTLSCAs are the TLS CA files of every organisation whose clients
// may call a peer: the regions and the auditor.
func (p *plan) memberTLSCAs() []string {
	var out []string
	for _, r := range p.Regions {
		out = append(out, p.peerCA(r))
	}
	return append(out, filepath.Join(p.Crypto, "peerOrganizations", p.Auditor.Domain, "tlsca", "tlsca."+p.Auditor.Domain+"-cert.pem"))
}

// adminEnv is the peer CLI's environment as the region's Admin, against
// the region's peer.
func adminEnv(configDir, mspID, adminMSP, peer, peerCA string) []string {
	return []string{
		"FABRIC_CFG_PATH=" + configDir,
		"CORE_PEER_LOCALMSPID=" + mspID,
		"CORE_PEER_MSPCONFIGPATH=" + adminMSP,
		"CORE_PEER_ADDRESS=" + peer,
		"CORE_PEER_TLS_ENABLED=true",
		"CORE_PEER_TLS_ROOTCERT_FILE=" + peerCA,
	}
}

func (p *plan) adminEnv(r regionPlan) []string { return p.adminEnvAt(r, addr(r.PeerPort)) }

// adminEnvAt is adminEnv against one of the region's peers; with
// ClientTLS the CLI shows the Admin's TLS client certificate.
func (p *plan) adminEnvAt(r regionPlan, peer string) []string {
	env := adminEnv(p.configDir(), r.MSPID, p.adminMSP(r), peer, p.peerCA(r))
	if p.cfg.ClientTLS {
		tlsDir := filepath.Join(p.Crypto, "peerOrganizations", r.Domain, "users", "Admin@"+r.Domain, "tls")
		env = append(env, "CORE_PEER_TLS_CLIENTAUTHREQUIRED=true",
			"CORE_PEER_TLS_CLIENTCERT_FILE="+filepath.Join(tlsDir, "client.crt"),
			"CORE_PEER_TLS_CLIENTKEY_FILE="+filepath.Join(tlsDir, "client.key"))
	}
	return env
}

// regionPeer is one peer of one region, for starting them all at once.
type regionPeer struct {
	r   regionPlan
	pp  peerPlan
	pid int
}

func (p *plan) allPeers() []*regionPeer {
	var out []*regionPeer
	for _, r := range p.Regions {
		for _, pp := range r.peers() {
			out = append(out, &regionPeer{r: r, pp: pp})
		}
	}
	return out
}

func (p *plan) startPeers(ctx context.Context) error { return p.startPeersOf(ctx, p.allPeers()) }

// startPeersOf starts peers and joins each to the channel from its
// genesis block; a peer of a region added later catches up from there
// with the orderer, which admits it under the current configuration.
func (p *plan) startPeersOf(ctx context.Context, peers []*regionPeer) error {
	for _, rp := range peers {
		pid, err := p.launch(rp.r.processName(rp.pp), p.bins.Path("peer"), []string{"node", "start"}, p.peerEnv(rp.r, rp.pp), rp.pp.PeerPort, rp.pp.CCPort, rp.pp.OpsPort)
		if err != nil {
			return err
		}
		rp.pid = pid
	}
	return parallel(peers, func(rp *regionPeer) error {
		r, pp := rp.r, rp.pp
		what := r.processName(pp)
		if err := p.waitListening(ctx, what, rp.pid, pp.PeerPort, pp.CCPort, pp.OpsPort); err != nil {
			return err
		}
		if err := p.poll(ctx, time.Minute, what+" healthy", func() error {
			_, err := httpGet(ctx, "http://"+addr(pp.OpsPort)+"/healthz")
			return err
		}); err != nil {
			return err
		}
		_, err := p.run(ctx, p.adminEnvAt(r, addr(pp.PeerPort)), "peer", "channel", "join", "-b", p.channelBlock())
		return err
	})
}

// poll retries f until it succeeds, ctx ends, limit passes or a process
// this Up started exits (then waiting longer cannot help).
func (p *plan) poll(ctx context.Context, limit time.Duration, what string, f func() error) error {
	return poll(ctx, limit, what, func() error {
		if err := p.exited.check(p.dir); err != nil {
			return permanent{err}
		}
		return f()
	})
}

// permanent marks an error poll must not retry.
type permanent struct{ error }

func (e permanent) Unwrap() error { return e.error }

// poll retries f with growing pauses (100 ms to 1 s) until it succeeds,
// returns a permanent error, ctx ends or limit passes (0: no limit).
func poll(ctx context.Context, limit time.Duration, what string, f func() error) error {
	var deadline time.Time
	if limit > 0 {
		deadline = time.Now().Add(limit)
	}
	wait := 100 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		var perm permanent
		if errors.As(err, &perm) {
			return fmt.Errorf("%s: %w", what, perm.error)
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s: %w", what, limit, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (last error: %w)", what, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

func httpGet(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: HTTP %d: %s", url, resp.StatusCode, tail(b, 3))
	}
	return string(b), nil
}

// Load reads the description of the network in dir that Up wrote.
func Load(dir string) (*Network, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("fabricnet: no network in %s: %w", dir, err)
	}
	var n Network
	if err := json.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("fabricnet: %s: %w", filepath.Join(dir, stateFile), err)
	}
	return &n, nil
}

// Down stops this network's processes; see the package function Down.
func (n *Network) Down() error { return Down(n.Dir) }

// PeerCLI runs `peer args...` as region's Admin against region's peer, for
// what the gateway cannot do (channel info, lifecycle queries).
func (n *Network) PeerCLI(ctx context.Context, region credit.RegionID, args ...string) ([]byte, error) {
	var r *Region
	for i := range n.Regions {
		if n.Regions[i].ID == region {
			r = &n.Regions[i]
		}
	}
	pe, ok := n.Peers[region]
	if r == nil || !ok {
		return nil, fmt.Errorf("%w: %s in %s", ErrNoRegion, region, n.Dir)
	}
	env := adminEnv(filepath.Join(n.Dir, "config"), r.MSPID, pe.AdminMSPDir, pe.Endpoint, pe.TLSCACert)
	if n.ClientTLS {
		tlsDir := filepath.Join(filepath.Dir(pe.AdminMSPDir), "tls")
		env = append(env, "CORE_PEER_TLS_CLIENTAUTHREQUIRED=true",
			"CORE_PEER_TLS_CLIENTCERT_FILE="+filepath.Join(tlsDir, "client.crt"),
			"CORE_PEER_TLS_CLIENTKEY_FILE="+filepath.Join(tlsDir, "client.key"))
	}
	return runTool(ctx, n.Dir, n.BinDir.Path("peer"), env, args...)
}

// parallel runs f for every region at once and joins the errors.
func parallel[T any](items []T, f func(T) error) error {
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Go(func() { errs[i] = f(it) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
