package fabric

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"
)

// Default per-step timeouts. Endorse covers every endorsing peer running
// the contract; submit is the hand-off to the orderer; commit status waits
// for the block, which on the local network takes the orderer's batch
// timeout plus validation (shared/FABRIC.md: 250 ms batches commit in about
// 260 ms), so 30 s leaves room for a loaded orderer without hanging forever.
const (
	DefaultEvaluateTimeout     = 5 * time.Second
	DefaultEndorseTimeout      = 15 * time.Second
	DefaultSubmitTimeout       = 5 * time.Second
	DefaultCommitStatusTimeout = 30 * time.Second
	// DefaultMaxAttempts bounds how often one ledger write is endorsed
	// again after an MVCC conflict or an unreachable gateway.
	DefaultMaxAttempts = 5
)

// Config is how a node reaches its Fabric gateway peer and who it is on
// the channel. It is read from the YAML file that the node config's
// ledger.fabric_gateway names; relative paths in that file are resolved
// from the file's folder.
//
//	endpoint: 127.0.0.1:7051          # the peer's gateway (gRPC, TLS)
//	endpoints: [127.0.0.1:7151]       # optional further gateway peers, tried in order when one is unavailable
//	tls_ca_cert: tls/ca.pem           # CA that signed the peers' TLS certs
//	tls_client_cert: tls/client.crt   # optional: client TLS cert, for peers that require mutual TLS
//	tls_client_key: tls/client.key    # its key; both or neither
//	server_name_override: ""          # TLS name to expect, if not the endpoint's host
//	msp_id: SZMSP                     # this region's MSP on the channel
//	cert_path: msp/signcerts/cert.pem # the region client's X.509 certificate
//	key_path: msp/keystore/key.pem    # its private key (PEM, PKCS#8 or EC)
//	channel: prdcredit
//	chaincode: ccnode
//	evaluate_timeout: 5s              # optional, defaults above
//	endorse_timeout: 15s
//	submit_timeout: 5s
//	commit_status_timeout: 30s
//	max_attempts: 5
//	endpoint_cooldown: 5s             # how long an unavailable endpoint is passed over
type Config struct {
	Endpoint string `yaml:"endpoint,omitempty"`
	// Endpoints are further gateway peers, after Endpoint, for failover.
	Endpoints          []string `yaml:"endpoints,omitempty"`
	TLSCACertPath      string   `yaml:"tls_ca_cert"`
	TLSClientCertPath  string   `yaml:"tls_client_cert,omitempty"`
	TLSClientKeyPath   string   `yaml:"tls_client_key,omitempty"`
	ServerNameOverride string   `yaml:"server_name_override,omitempty"`
	MSPID              string   `yaml:"msp_id"`
	CertPath           string   `yaml:"cert_path"`
	KeyPath            string   `yaml:"key_path"`
	Channel            string   `yaml:"channel"`
	Chaincode          string   `yaml:"chaincode"`

	EvaluateTimeout     time.Duration `yaml:"evaluate_timeout,omitempty"`
	EndorseTimeout      time.Duration `yaml:"endorse_timeout,omitempty"`
	SubmitTimeout       time.Duration `yaml:"submit_timeout,omitempty"`
	CommitStatusTimeout time.Duration `yaml:"commit_status_timeout,omitempty"`
	MaxAttempts         int           `yaml:"max_attempts,omitempty"`
	EndpointCooldown    time.Duration `yaml:"endpoint_cooldown,omitempty"`
}

// DefaultEndpointCooldown is how long an endpoint that was unavailable is
// passed over before it is tried again: long enough that a dead peer does
// not cost every call a failed connection, short enough that a restarted
// one is used again soon.
const DefaultEndpointCooldown = 5 * time.Second

// AllEndpoints is Endpoint then Endpoints, without empties or repeats: the
// order in which gateway peers are preferred.
func (c Config) AllEndpoints() []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range append([]string{c.Endpoint}, c.Endpoints...) {
		if e == "" || seen[e] {
			continue
		}
		seen[e] = true
		out = append(out, e)
	}
	return out
}

// ErrConfig is wrapped by every configuration error; *ConfigError names
// the field.
var ErrConfig = errors.New("fabric config")

// ConfigError names the bad field of a Config.
type ConfigError struct {
	Field string // YAML key
	Err   error
}

func (e *ConfigError) Error() string   { return fmt.Sprintf("fabric config %s: %v", e.Field, e.Err) }
func (e *ConfigError) Unwrap() []error { return []error{ErrConfig, e.Err} }

// WithDefaults returns c with zero timeouts and attempts set to the defaults.
func (c Config) WithDefaults() Config {
	if c.EvaluateTimeout == 0 {
		c.EvaluateTimeout = DefaultEvaluateTimeout
	}
	if c.EndorseTimeout == 0 {
		c.EndorseTimeout = DefaultEndorseTimeout
	}
	if c.SubmitTimeout == 0 {
		c.SubmitTimeout = DefaultSubmitTimeout
	}
	if c.CommitStatusTimeout == 0 {
		c.CommitStatusTimeout = DefaultCommitStatusTimeout
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.EndpointCooldown == 0 {
		c.EndpointCooldown = DefaultEndpointCooldown
	}
	return c
}

var errRequired = errors.New("required")

// Validate checks c (after WithDefaults) and names the first bad field.
// It does not read the files: Dial reports unreadable ones.
func (c Config) Validate() error {
	if len(c.AllEndpoints()) == 0 {
		return &ConfigError{Field: "endpoint", Err: errRequired}
	}
	if (c.TLSClientCertPath == "") != (c.TLSClientKeyPath == "") {
		return &ConfigError{Field: "tls_client_cert", Err: errors.New("tls_client_cert and tls_client_key go together")}
	}
	required := []struct{ field, v string }{
		{"tls_ca_cert", c.TLSCACertPath},
		{"msp_id", c.MSPID},
		{"cert_path", c.CertPath},
		{"key_path", c.KeyPath},
		{"channel", c.Channel},
		{"chaincode", c.Chaincode},
	}
	for _, r := range required {
		if r.v == "" {
			return &ConfigError{Field: r.field, Err: errRequired}
		}
	}
	timeouts := []struct {
		field string
		v     time.Duration
	}{
		{"evaluate_timeout", c.EvaluateTimeout},
		{"endorse_timeout", c.EndorseTimeout},
		{"submit_timeout", c.SubmitTimeout},
		{"commit_status_timeout", c.CommitStatusTimeout},
		{"endpoint_cooldown", c.EndpointCooldown},
	}
	for _, t := range timeouts {
		if t.v <= 0 {
			return &ConfigError{Field: t.field, Err: fmt.Errorf("must be positive, got %v", t.v)}
		}
	}
	if c.MaxAttempts < 1 {
		return &ConfigError{Field: "max_attempts", Err: fmt.Errorf("must be at least 1, got %d", c.MaxAttempts)}
	}
	return nil
}

// LoadConfig reads a gateway config file, resolves its relative paths
// against the file's folder, applies defaults and validates it.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("fabric config: %w", err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("fabric config %s: %w: %w", path, ErrConfig, err)
	}
	dir := filepath.Dir(path)
	for _, p := range []*string{&c.TLSCACertPath, &c.TLSClientCertPath, &c.TLSClientKeyPath, &c.CertPath, &c.KeyPath} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
