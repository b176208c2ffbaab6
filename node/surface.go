package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"

	"github.com/prdcredit/ccnode/internal/httplimit"
	"github.com/prdcredit/ccnode/node/bankclient"
)

// The bank API's exposed surface: how many connections and how many
// request bytes it holds at once, and TLS.
const (
	// DefaultMaxConnections: past it, new connections wait in the
	// kernel's accept queue and idle keep-alive ones are closed.
	DefaultMaxConnections = 256
	// DefaultMaxInflightBytes bounds the bodies over
	// httplimit.SmallBodyBytes being read and handled at once (a bank
	// query is a few KiB and never waits on it). No honest bank call is
	// that large, so one such body at a time: each decoding takes a core
	// from the queries and costs several times its size in memory.
	DefaultMaxInflightBytes = DefaultMaxBodyBytes
)

func (h HTTPConfig) validateSurface() error {
	bad := func(key string, err error) error { return &ConfigError{Key: key, Err: err} }
	if h.MaxConnections <= 0 {
		return bad("http.max_connections", errors.New("must be positive"))
	}
	if h.MaxInflightBytes < h.MaxBodyBytes {
		return bad("http.max_inflight_bytes", fmt.Errorf("%d is less than http.max_body_bytes (%d): a largest request could never be read", h.MaxInflightBytes, h.MaxBodyBytes))
	}
	if (h.TLSCertFile == "") != (h.TLSKeyFile == "") {
		return bad("http.tls_cert_file", errors.New("set both http.tls_cert_file and http.tls_key_file, or neither"))
	}
	if h.ClientCAFile != "" && h.TLSCertFile == "" {
		return bad("http.client_ca_file", errors.New("client certificates need TLS: set http.tls_cert_file and http.tls_key_file"))
	}
	return nil
}

// limits are the bank API's (and the served ledger's) listener limits;
// busy answers a request that found no room.
func (h HTTPConfig) limits(busy func(http.ResponseWriter, *http.Request)) httplimit.Limits {
	return httplimit.Limits{
		MaxConns: h.MaxConnections, MaxInflightBytes: h.MaxInflightBytes, MaxBodyBytes: h.MaxBodyBytes,
		Wait: h.ReadTimeout / 2, Busy: busy, // half: the rest is for reading the body
	}
}

// ServerTLS is the bank API's TLS configuration: nil when it serves
// plain HTTP. With http.client_ca_file every client must present a
// certificate issued by one of its CAs (tls.RequireAndVerifyClientCert):
// the certificate admits a connection, the query's signature still
// names the bank.
func (h HTTPConfig) ServerTLS() (*tls.Config, error) {
	if h.TLSCertFile == "" {
		return nil, nil
	}
	if err := CheckSecretFile(h.TLSKeyFile); err != nil {
		return nil, &ConfigError{Key: "http.tls_key_file", Err: err}
	}
	cert, err := tls.LoadX509KeyPair(h.TLSCertFile, h.TLSKeyFile)
	if err != nil {
		return nil, &ConfigError{Key: "http.tls_cert_file", Err: err}
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if h.ClientCAFile != "" {
		pool, err := LoadCertPool(h.ClientCAFile)
		if err != nil {
			return nil, &ConfigError{Key: "http.client_ca_file", Err: err}
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// LoadCertPool reads PEM certificates into a pool.
func LoadCertPool(path string) (*x509.CertPool, error) { return bankclient.LoadCertPool(path) }

// ClientTLS is a client's TLS configuration for a node's bank API: caFile
// (PEM) replaces the system roots when set; certFile and keyFile, both or
// neither, are the client certificate a node with http.client_ca_file
// asks for. It is bankclient.TLSConfig, the banks' own.
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	return bankclient.TLSConfig(caFile, certFile, keyFile)
}
