package node

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestConfigValidateNamesBadKey(t *testing.T) {
	tests := []struct {
		key    string
		mutate func(*Config)
	}{
		{"region", func(c *Config) { c.Region = "Shenzhen!" }},
		{"data_dir", func(c *Config) { c.DataDir = "" }},
		{"key_file", func(c *Config) { c.KeyFile = "" }},
		{"p2p.listen", func(c *Config) { c.P2P.Listen = nil }},
		{"p2p.network_id", func(c *Config) { c.P2P.NetworkID = "" }},
		{"http.addr", func(c *Config) { c.HTTP.Addr = "nonsense" }},
		{"http.max_body_bytes", func(c *Config) { c.HTTP.MaxBodyBytes = 0 }},
		{"ledger.embedded_dir", func(c *Config) { c.Ledger.FabricGateway = "gw.yaml" }},
		{"ledger.embedded_dir", func(c *Config) { c.Ledger.EmbeddedDir = "" }},
		{"ledger.embedded_dir", func(c *Config) { c.Ledger.EmbeddedDir, c.Ledger.EmbeddedURL = "", "" }},
		{"ledger.embedded_dir", func(c *Config) { c.Ledger.EmbeddedURL = "http://127.0.0.1:9" }},
		{"ledger.serve_addr", func(c *Config) { c.Ledger.ServeAddr = "nonsense" }},
		{"ledger.serve_addr", func(c *Config) {
			c.Ledger.EmbeddedDir, c.Ledger.EmbeddedURL, c.Ledger.ServeAddr = "", "http://127.0.0.1:9", "127.0.0.1:0"
		}},
		{"ledger.bootstrap_file", func(c *Config) {
			c.Ledger.EmbeddedDir, c.Ledger.FabricGateway, c.Ledger.BootstrapFile = "", "gw.yaml", "members.json"
		}},
		{"ledger.grace_period", func(c *Config) { c.Ledger.GracePeriod = 0 }},
		{"anchor.mode", func(c *Config) { c.Anchor.Mode = "sometimes" }},
		{"anchor.interval", func(c *Config) { c.Anchor.Interval = -time.Second }},
		{"anchor.max_leaves", func(c *Config) { c.Anchor.MaxLeaves = 0 }},
		{"anchor.retry_min", func(c *Config) { c.Anchor.RetryMax = time.Millisecond }},
		{"query.window", func(c *Config) { c.Query.Window = 0 }},
		{"query.region_timeout", func(c *Config) { c.Query.RegionTimeout = 0 }},
	}
	base := DefaultConfig("440300", "/var/lib/ccnode")
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			c := DefaultConfig("440300", "/var/lib/ccnode")
			tc.mutate(&c)
			var ce *ConfigError
			if err := c.Validate(); !errors.As(err, &ce) || ce.Key != tc.key {
				t.Fatalf("got %v, want a ConfigError naming %s", err, tc.key)
			}
		})
	}
}

func TestLoadConfigOverDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ccnode.yaml")
	os.WriteFile(path, []byte("region: \"440100\"\ndata_dir: /srv/gz\nanchor:\n  interval: 9s\n"), 0o600)
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Region != "440100" || c.Anchor.Interval != 9*time.Second || c.Anchor.MaxLeaves != DefaultAnchorMaxLeaves || c.KeyFile != "/srv/gz/node.key" {
		t.Fatalf("effective config: %+v", c)
	}
	os.WriteFile(path, []byte("region: \"440100\"\nanchr: {}\n"), 0o600)
	if _, err := LoadConfig(path); err == nil {
		t.Fatal("unknown key accepted")
	}
}

func TestKeyFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k", "node.key")
	k, err := GenerateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateKeyFile(path); err == nil {
		t.Fatal("overwrote an existing key")
	}
	got, err := LoadKeyFile(path)
	if err != nil || !got.Equal(k) {
		t.Fatalf("reloaded key differs: %v", err)
	}
	os.WriteFile(path+".bad", []byte("not pem"), 0o600)
	if _, err := LoadKeyFile(path + ".bad"); !errors.Is(err, ErrBadKeyFile) {
		t.Fatalf("bad key: %v", err)
	}
}

func TestSampleConfigRoundTrips(t *testing.T) {
	want := DefaultConfig("440400", "/srv/ccnode/440400")
	want.Anchor.Interval = 7 * time.Second
	want.P2P.Announce = []string{"/dns4/ccnode.zh.example/tcp/4401", "/ip4/192.0.2.10/tcp/4401"}
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, SampleConfig(want), 0o600)
	got, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := got.YAML()
	b, _ := want.YAML()
	if string(a) != string(b) {
		t.Fatalf("sample does not load back to the config:\n%s\nwant\n%s", a, b)
	}
}

func TestShippedConfigsValidate(t *testing.T) {
	paths, _ := filepath.Glob("../configs/*.yaml")
	if len(paths) < 3 {
		t.Fatalf("want a sample config per demo region in configs/, found %v", paths)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			c, err := LoadConfig(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSurfaceConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name, key string
		edit      func(*HTTPConfig)
	}{
		{"no connections", "http.max_connections", func(h *HTTPConfig) { h.MaxConnections = 0 }},
		{"in-flight below one body", "http.max_inflight_bytes", func(h *HTTPConfig) { h.MaxInflightBytes = h.MaxBodyBytes - 1 }},
		{"certificate without key", "http.tls_cert_file", func(h *HTTPConfig) { h.TLSCertFile = "c.pem" }},
		{"key without certificate", "http.tls_cert_file", func(h *HTTPConfig) { h.TLSKeyFile = "k.pem" }},
		{"client CA without TLS", "http.client_ca_file", func(h *HTTPConfig) { h.ClientCAFile = "ca.pem" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig("440300", t.TempDir())
			tt.edit(&c.HTTP)
			var ce *ConfigError
			if err := c.Validate(); !errors.As(err, &ce) || ce.Key != tt.key {
				t.Fatalf("Validate = %v, want a ConfigError for %s", err, tt.key)
			}
		})
	}
	c := DefaultConfig("440300", t.TempDir())
	c.HTTP.TLSCertFile, c.HTTP.TLSKeyFile, c.HTTP.ClientCAFile = "c.pem", "k.pem", "ca.pem"
	if err := c.Validate(); err != nil {
		t.Fatalf("TLS with client CA: %v", err)
	}
}

func TestListensUnspecified(t *testing.T) {
	for listen, want := range map[string]bool{
		"/ip4/0.0.0.0/tcp/4401": true, "/ip6/::/tcp/4401": true,
		"/ip4/127.0.0.1/tcp/4401": false, "/ip4/10.0.0.5/udp/4401/quic-v1": false,
	} {
		if got := listensUnspecified([]string{listen}); got != want {
			t.Errorf("listensUnspecified(%s) = %v", listen, got)
		}
	}
}
