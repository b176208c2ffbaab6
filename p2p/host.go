package p2p

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/pnet"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// Security protocols a host can prefer.
const (
	SecurityNoise = "noise"
	SecurityTLS   = "tls"
)

// Resource defaults: a regional node talks to ~10 peers; these bound the
// memory and descriptors libp2p may use whatever the peers do.
const (
	DefaultMaxMemory = 512 << 20
	DefaultMaxFDs    = 1024
)

// HostConfig configures a consortium host.
type HostConfig struct {
	// Key is the node's identity and receipt-signing key.
	Key ed25519.PrivateKey
	// Listen lists multiaddrs (/ip4/127.0.0.1/tcp/0, .../udp/0/quic-v1).
	Listen []string
	// Announce, when set, are the only addresses the host gives peers
	// (identify) and the node publishes: a listener on 0.0.0.0 would
	// otherwise offer every local interface's address, most of which
	// other regions cannot reach. Concrete ports only.
	Announce []string
	// PSK, when set, makes a private network: only TCP can carry it.
	PSK pnet.PSK
	// Security is the preferred handshake of TCP connections, SecurityTLS
	// (default) or SecurityNoise; the other is offered second. TLS 1.3
	// is the default because it seals with AES-GCM, which this hardware
	// runs in AES-NI at about 2.5 times Noise's ChaCha20-Poly1305 (a 43 KB
	// answer: 8 against 21 µs to seal, BenchmarkFloor), and the transport
	// alone costs about a fifth less CPU per exchange with it (p2pbench
	// -bare; p2p/cmd/p2pbench/RESULTS.md).
	Security string
	// Members is the connection gater and address book. Required: a host
	// without it would admit anyone.
	Members *Membership
	// MaxMemory and MaxFDs scale the resource manager's limits.
	MaxMemory int64
	MaxFDs    int
	Logger    *slog.Logger
}

// ConfigError names the bad HostConfig field.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return "p2p config " + e.Field + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// ErrQUICWithPSK: QUIC cannot carry a private-network key (go-libp2p
// refuses it), so a PSK host listens on TCP only.
var ErrQUICWithPSK = errors.New("QUIC does not support a private-network key; listen on TCP only")

// Validate checks the config and names the bad field.
func (c *HostConfig) Validate() error {
	if len(c.Key) != ed25519.PrivateKeySize {
		return &ConfigError{"key", ErrBadKey}
	}
	if c.Members == nil {
		return &ConfigError{"members", errors.New("required: the host would admit anyone")}
	}
	if c.PSK != nil && len(c.PSK) != 32 {
		return &ConfigError{"psk", fmt.Errorf("want 32 bytes, got %d", len(c.PSK))}
	}
	switch c.Security {
	case "", SecurityNoise, SecurityTLS:
	default:
		return &ConfigError{"security", fmt.Errorf("%q: want %s or %s", c.Security, SecurityNoise, SecurityTLS)}
	}
	for _, s := range c.Listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return &ConfigError{"listen", err}
		}
		if c.PSK != nil && isQUIC(a) {
			return &ConfigError{"listen", fmt.Errorf("%s: %w", s, ErrQUICWithPSK)}
		}
	}
	for _, s := range c.Announce {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return &ConfigError{"announce", err}
		}
		if c.PSK != nil && isQUIC(a) {
			return &ConfigError{"announce", fmt.Errorf("%s: %w", s, ErrQUICWithPSK)}
		}
		for _, p := range []int{ma.P_TCP, ma.P_UDP} {
			if port, err := a.ValueForProtocol(p); err == nil && port == "0" {
				return &ConfigError{"announce", fmt.Errorf("%s: port 0 is chosen at start; announce the port peers dial", s)}
			}
		}
	}
	return nil
}

// announced parses Announce; Validate has checked it.
func (c *HostConfig) announced() []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(c.Announce))
	for _, s := range c.Announce {
		out = append(out, ma.StringCast(s))
	}
	return out
}

func isQUIC(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_QUIC_V1)
	return err == nil
}

// NewHost builds the node's libp2p host: its identity from Key, TCP (and
// QUIC without a PSK), TLS and Noise, yamux, the membership gater, and a
// fixed-limit resource manager. The caller closes it.
func NewHost(cfg HostConfig) (host.Host, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sk, err := libp2pKey(cfg.Key)
	if err != nil {
		return nil, err
	}
	mem, fds := cfg.MaxMemory, cfg.MaxFDs
	if mem == 0 {
		mem = DefaultMaxMemory
	}
	if fds == 0 {
		fds = DefaultMaxFDs
	}
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	// go-libp2p's default admits only 64 inbound streams (plus 4 per GiB
	// of memory) per protocol from one peer, and resets the next with
	// 0x1002 (resource limit exceeded). One home region routinely has more
	// of its banks' queries in flight to one answering region than that
	// (and a stream is still counted for a moment after its answer
	// arrived), so the report protocol failed at 64 in flight. The peer's
	// own stream limits stay, and the server's MaxConcurrent refuses the
	// excess with a typed "unavailable" the home node can report.
	limits.ProtocolPeerBaseLimit.StreamsInbound = limits.PeerBaseLimit.StreamsInbound
	limits.ProtocolPeerBaseLimit.StreamsOutbound = limits.PeerBaseLimit.StreamsOutbound
	limits.ProtocolPeerBaseLimit.Streams = limits.PeerBaseLimit.Streams
	limits.ProtocolPeerLimitIncrease.StreamsInbound = limits.PeerLimitIncrease.StreamsInbound
	limits.ProtocolPeerLimitIncrease.StreamsOutbound = limits.PeerLimitIncrease.StreamsOutbound
	limits.ProtocolPeerLimitIncrease.Streams = limits.PeerLimitIncrease.Streams
	// Metrics off, as for the host (libp2p.DisableMetrics below): the
	// resource manager's would go to Prometheus's global registry, which
	// the node never serves (it keeps its own), and collecting them took
	// about 4% of an answering node's CPU (a trace event with a formatted
	// time on every stream opened, closed and memory reserved).
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.Scale(mem, fds)), rcmgr.WithMetricsDisabled())
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(sk),
		libp2p.ConnectionGater(cfg.Members),
		libp2p.ResourceManager(rm),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.UserAgent("ccnode"),
		libp2p.Transport(tcp.NewTCPTransport),
	}
	if cfg.PSK != nil {
		opts = append(opts, libp2p.PrivateNetwork(cfg.PSK))
	} else {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	if cfg.Security == SecurityNoise {
		opts = append(opts, libp2p.Security(noise.ID, noise.New), libp2p.Security(libp2ptls.ID, libp2ptls.New))
	} else {
		opts = append(opts, libp2p.Security(libp2ptls.ID, libp2ptls.New), libp2p.Security(noise.ID, noise.New))
	}
	if ann := cfg.announced(); len(ann) > 0 {
		opts = append(opts, libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return slices.Clone(ann) }))
	}
	if len(cfg.Listen) == 0 {
		opts = append(opts, libp2p.NoListenAddrs)
	} else {
		opts = append(opts, libp2p.ListenAddrStrings(cfg.Listen...))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("libp2p host: %w", err)
	}
	cfg.Members.attach(h)
	return h, nil
}
