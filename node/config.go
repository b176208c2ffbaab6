package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/prdcredit/ccnode/credit"
)

// Defaults. The anchoring defaults come from the ledger figures measured on
// this project's machine (shared/FABRIC.md): a sequential Fabric submit
// costs about 260 ms at a 250 ms batch timeout and a peer commits 180-390
// tx/s, so one checkpoint per node every 5 s (or per 10,000 receipts) keeps
// a 9-11 node consortium at a few transactions per second whatever the
// query rate.
const (
	DefaultAnchorInterval  = 5 * time.Second
	DefaultAnchorMaxLeaves = 10_000
	DefaultGracePeriod     = 30 * time.Second
	DefaultQueryWindow     = credit.QueryWindow
	DefaultRegionTimeout   = 3 * time.Second
	DefaultHTTPAddr        = "127.0.0.1:8440"
	DefaultMaxBodyBytes    = 1 << 20
	DefaultNetworkID       = "prd-credit"
)

// Config is a node's configuration: YAML over these documented defaults,
// flags over YAML.
type Config struct {
	// Region is this node's region id (such as 440300).
	Region credit.RegionID `yaml:"region"`
	// DataDir holds the Badger store and the embedded ledger by default.
	DataDir string `yaml:"data_dir"`
	// KeyFile holds the node's ed25519 key: its libp2p identity and the
	// key that signs receipts, acks, checkpoints and countersignatures.
	KeyFile string       `yaml:"key_file"`
	P2P     P2PConfig    `yaml:"p2p"`
	HTTP    HTTPConfig   `yaml:"http"`
	Admin   AdminConfig  `yaml:"admin"`
	Ledger  LedgerConfig `yaml:"ledger"`
	Anchor  AnchorConfig `yaml:"anchor"`
	Query   QueryConfig  `yaml:"query"`
	Store   StoreConfig  `yaml:"store"`
}

// DefaultMinFreeBytes is store.min_free_bytes's default: room for several
// imports' tables and far above what the receipt log needs to keep
// logging (store.DB.WriteReserve, 132 MiB).
const DefaultMinFreeBytes = 1 << 30

// StoreConfig configures the record store's use of the disk.
type StoreConfig struct {
	// MinFreeBytes is the free-space floor of the data folder's
	// filesystem: an import that would leave less is refused up front,
	// and a node below it refuses imports, keeps answering while the
	// receipt log can still log durably, and says so on /readyz and in
	// ccnode_store_disk_state. 0: DefaultMinFreeBytes.
	MinFreeBytes uint64 `yaml:"min_free_bytes"`
}

// MinFreeBytesOrDefault is MinFreeBytes, or its default when unset.
func (s StoreConfig) MinFreeBytesOrDefault() uint64 {
	if s.MinFreeBytes == 0 {
		return DefaultMinFreeBytes
	}
	return s.MinFreeBytes
}

// P2PConfig configures the libp2p host.
type P2PConfig struct {
	// Listen addresses (multiaddrs); with a PSK only TCP works.
	Listen []string `yaml:"listen"`
	// NetworkID is part of every protocol id, so two consortia never talk.
	NetworkID string `yaml:"network_id"`
	// PSKFile holds the private-network key; empty disables it.
	PSKFile string `yaml:"psk_file"`
	// Announce, when set, are the only addresses published in the
	// region's ledger record and offered to peers (p2p.HostConfig).
	Announce []string `yaml:"announce"`
}

// HTTPConfig configures the bank API.
type HTTPConfig struct {
	Addr         string        `yaml:"addr"`
	MaxBodyBytes int64         `yaml:"max_body_bytes"`
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// Limits and TLS of the bank API (surface.go).
	MaxConnections   int    `yaml:"max_connections"`
	MaxInflightBytes int64  `yaml:"max_inflight_bytes"`
	TLSCertFile      string `yaml:"tls_cert_file"`
	TLSKeyFile       string `yaml:"tls_key_file"`
	ClientCAFile     string `yaml:"client_ca_file"`
}

// LedgerConfig picks the ledger backend: the embedded ledger in
// EmbeddedDir, an embedded ledger another node serves at EmbeddedURL, or a
// Fabric gateway when FabricGateway names its config.
type LedgerConfig struct {
	EmbeddedDir string `yaml:"embedded_dir"`
	// EmbeddedURL reaches the embedded ledger another node on this
	// machine serves (its ledger.serve_addr), so that several regions run
	// as separate processes without Fabric.
	EmbeddedURL   string `yaml:"embedded_url"`
	FabricGateway string `yaml:"fabric_gateway"`
	// ServeAddr, with EmbeddedDir, serves this node's embedded ledger to
	// the other regions' nodes (plain HTTP; every call is signed by the
	// caller's ledger key). Empty serves nothing.
	ServeAddr string `yaml:"serve_addr"`
	// BootstrapFile, with EmbeddedDir, names a JSON file of the first
	// members ({"regions": [...], "banks": [...]}) a new embedded ledger
	// starts with; empty starts it with this region alone.
	BootstrapFile string `yaml:"bootstrap_file"`
	// MSPID is the identity this node acts as on the ledger.
	MSPID string `yaml:"msp_id"`
	// KeyFile, for an embedded ledger, holds the key of that identity
	// when it is not the node's key_file: after a key rotation the region
	// keeps acting as the identity it was registered with, and the node
	// publishes its new key in the region's record. Empty: key_file.
	KeyFile string `yaml:"key_file"`
	// GracePeriod: past this age of the node's ledger view it refuses to
	// answer (fail closed).
	GracePeriod time.Duration `yaml:"grace_period"`
}

// Anchoring modes (anchor.mode).
const (
	// AnchorCheckpoint anchors a signed checkpoint of the receipt log
	// every interval or max_leaves receipts: one ledger transaction per
	// node per interval, whatever the query rate. The default.
	AnchorCheckpoint = "checkpoint"
	// AnchorPerReceipt submits one ledger transaction per receipt (a
	// checkpoint covering exactly that receipt) and answers only once it
	// has committed: the design a consortium would otherwise pick, kept so
	// that benchmarks can run it side by side with AnchorCheckpoint on the
	// same ledger. Checkpoints of a region form one chain, so these
	// transactions go one after another, in log order.
	AnchorPerReceipt = "per_receipt"
	// AnchorOff logs receipts and never anchors them, for benchmarks that
	// measure what anchoring costs. An audit reports every receipt of such
	// a node as unanchored.
	AnchorOff = "off"
)

// AnchorConfig configures checkpoint anchoring.
type AnchorConfig struct {
	// Mode is checkpoint (default), per_receipt or off; see the constants.
	Mode      string        `yaml:"mode"`
	Interval  time.Duration `yaml:"interval"`
	MaxLeaves uint64        `yaml:"max_leaves"`
	RetryMin  time.Duration `yaml:"retry_min"`
	RetryMax  time.Duration `yaml:"retry_max"`
}

// QueryConfig configures the query pipeline.
type QueryConfig struct {
	// Window: a bank's query time must be within this of the node's clock;
	// a query's nonce is remembered until the query's time plus this.
	Window        time.Duration `yaml:"window"`
	RegionTimeout time.Duration `yaml:"region_timeout"`
}

// DefaultConfig returns the defaults for a region; paths are under dataDir.
func DefaultConfig(region credit.RegionID, dataDir string) Config {
	return Config{
		Region:  region,
		DataDir: dataDir,
		KeyFile: dataDir + "/node.key",
		P2P:     P2PConfig{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NetworkID: DefaultNetworkID},
		HTTP: HTTPConfig{
			Addr:         DefaultHTTPAddr,
			MaxBodyBytes: DefaultMaxBodyBytes, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second,
			MaxConnections: DefaultMaxConnections, MaxInflightBytes: DefaultMaxInflightBytes,
		},
		Admin:  AdminConfig{Addr: DefaultAdminAddr, OperatorsFile: dataDir + "/operators"},
		Ledger: LedgerConfig{EmbeddedDir: dataDir + "/ledger", MSPID: "Region" + string(region) + "MSP", GracePeriod: DefaultGracePeriod},
		Anchor: AnchorConfig{Mode: AnchorCheckpoint, Interval: DefaultAnchorInterval, MaxLeaves: DefaultAnchorMaxLeaves, RetryMin: 500 * time.Millisecond, RetryMax: 30 * time.Second},
		Query:  QueryConfig{Window: DefaultQueryWindow, RegionTimeout: DefaultRegionTimeout},
		Store:  StoreConfig{MinFreeBytes: DefaultMinFreeBytes},
	}
}

// ConfigError names the bad key.
type ConfigError struct {
	Key string
	Err error
}

func (e *ConfigError) Error() string { return "config " + e.Key + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

var errRequired = errors.New("required")

// Validate checks every key and names the first bad one.
func (c *Config) Validate() error {
	bad := func(key string, err error) error { return &ConfigError{Key: key, Err: err} }
	if err := credit.ValidateRegionID(c.Region); err != nil {
		return bad("region", err)
	}
	if c.DataDir == "" {
		return bad("data_dir", errRequired)
	}
	if c.KeyFile == "" {
		return bad("key_file", errRequired)
	}
	if len(c.P2P.Listen) == 0 {
		return bad("p2p.listen", errRequired)
	}
	if c.P2P.NetworkID == "" {
		return bad("p2p.network_id", errRequired)
	}
	// The network id names the region's log in its checkpoints' origin.
	if _, err := credit.CheckpointOrigin(c.P2P.NetworkID, c.Region); err != nil {
		return bad("p2p.network_id", err)
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Addr); err != nil {
		return bad("http.addr", err)
	}
	if c.HTTP.MaxBodyBytes <= 0 {
		return bad("http.max_body_bytes", errors.New("must be positive"))
	}
	if c.HTTP.ReadTimeout <= 0 {
		return bad("http.read_timeout", errors.New("must be positive"))
	}
	if c.HTTP.WriteTimeout <= 0 {
		return bad("http.write_timeout", errors.New("must be positive"))
	}
	if err := c.HTTP.validateSurface(); err != nil {
		return err
	}
	if err := c.Admin.validate(); err != nil {
		return err
	}
	set := 0
	for _, v := range []string{c.Ledger.EmbeddedDir, c.Ledger.EmbeddedURL, c.Ledger.FabricGateway} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		return bad("ledger.embedded_dir", errors.New("set exactly one of ledger.embedded_dir, ledger.embedded_url and ledger.fabric_gateway"))
	}
	if c.Ledger.EmbeddedDir == "" && c.Ledger.ServeAddr != "" {
		return bad("ledger.serve_addr", errors.New("only a node with ledger.embedded_dir serves its ledger"))
	}
	if c.Ledger.ServeAddr != "" {
		if _, _, err := net.SplitHostPort(c.Ledger.ServeAddr); err != nil {
			return bad("ledger.serve_addr", err)
		}
	}
	if c.Ledger.EmbeddedDir == "" && c.Ledger.BootstrapFile != "" {
		return bad("ledger.bootstrap_file", errors.New("only a node with ledger.embedded_dir bootstraps a ledger"))
	}
	if c.Ledger.MSPID == "" {
		return bad("ledger.msp_id", errRequired)
	}
	if c.Ledger.GracePeriod <= 0 {
		return bad("ledger.grace_period", errors.New("must be positive"))
	}
	switch c.Anchor.Mode {
	case AnchorCheckpoint, AnchorPerReceipt, AnchorOff:
	default:
		return bad("anchor.mode", fmt.Errorf("%q: want %s, %s or %s", c.Anchor.Mode, AnchorCheckpoint, AnchorPerReceipt, AnchorOff))
	}
	if c.Anchor.Interval <= 0 {
		return bad("anchor.interval", errors.New("must be positive"))
	}
	if c.Anchor.MaxLeaves == 0 {
		return bad("anchor.max_leaves", errors.New("must be positive"))
	}
	if c.Anchor.RetryMin <= 0 || c.Anchor.RetryMax < c.Anchor.RetryMin {
		return bad("anchor.retry_min", errors.New("want 0 < retry_min <= retry_max"))
	}
	if c.Query.Window <= 0 {
		return bad("query.window", errors.New("must be positive"))
	}
	if c.Query.RegionTimeout <= 0 {
		return bad("query.region_timeout", errors.New("must be positive"))
	}
	return nil
}

// ParseConfig decodes YAML over base, refusing unknown keys.
func ParseConfig(base Config, data []byte) (Config, error) {
	cfg := base
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// LoadConfig reads a YAML file over the defaults of the region it names.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	var head struct {
		Region  credit.RegionID `yaml:"region"`
		DataDir string          `yaml:"data_dir"`
	}
	if err := yaml.Unmarshal(data, &head); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	if head.DataDir == "" {
		head.DataDir = "data/" + string(head.Region)
	}
	cfg, err := ParseConfig(DefaultConfig(head.Region, head.DataDir), data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// YAML renders the effective configuration.
func (c Config) YAML() ([]byte, error) { return yaml.Marshal(c) }
