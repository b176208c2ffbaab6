package p2p_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/pnet"

	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/p2p"
)

// TestHostAnnounce: with Announce set, the host's addresses (what
// identify offers peers and the node publishes) are exactly those, not
// its listeners'; without it they are the listeners'.
func TestHostAnnounce(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	announce := []string{"/ip4/192.0.2.10/tcp/4401", "/dns4/ccnode.gz.example/tcp/4401"}
	for _, ann := range [][]string{nil, announce} {
		h, err := p2p.NewHost(p2p.HostConfig{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Announce: ann,
			Members: p2p.NewMembership(testkit.LoggerAt(t, slog.LevelWarn), nil)})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range h.Addrs() {
			got = append(got, a.String())
		}
		h.Close()
		if ann != nil && !slices.Equal(got, ann) {
			t.Fatalf("announcing %v, the host offers %v", ann, got)
		}
		if ann == nil && (len(got) != 1 || !strings.HasPrefix(got[0], "/ip4/127.0.0.1/tcp/")) {
			t.Fatalf("announcing nothing, the host offers %v; want its listener", got)
		}
	}
}

func TestHostAnnounceRefused(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	psk := make(pnet.PSK, 32)
	for _, c := range []struct {
		announce string
		psk      pnet.PSK
		want     string
	}{
		{"ccnode.gz.example:4401", nil, "p2p config announce: "},
		{"/ip4/192.0.2.10/tcp/0", nil, "port 0 is chosen at start"},
		{"/ip4/192.0.2.10/udp/4401/quic-v1", psk, "QUIC does not support"},
	} {
		cfg := p2p.HostConfig{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Announce: []string{c.announce}, PSK: c.psk,
			Members: p2p.NewMembership(testkit.LoggerAt(t, slog.LevelWarn), nil)}
		err := cfg.Validate()
		var ce *p2p.ConfigError
		if !errors.As(err, &ce) || ce.Field != "announce" || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("announce %s: %v; want a ConfigError on announce saying %q", c.announce, err, c.want)
		}
	}
}
