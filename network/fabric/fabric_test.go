package fabric

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/network"
)

// The tests in this file run against a real Fabric network. They need the
// gateway configs of at least three regions (YAML files in this package's
// Config format) in CCNODE_FABRIC_GATEWAYS, comma-separated — the files
// `ccnode fabric up` writes. They skip, saying why, when the variable is
// unset, when CCNODE_SKIP_FABRIC=1, or under -short.

const (
	envSkip     = "CCNODE_SKIP_FABRIC"
	envGateways = "CCNODE_FABRIC_GATEWAYS"
)

var (
	liveOnce sync.Once
	liveCfgs []Config
	liveSkip string // why the suite cannot run here
	liveErr  error  // the configs named are broken
)

// liveConfigs returns the regions' gateway configs, or skips tb.
func liveConfigs(tb testing.TB) []Config {
	tb.Helper()
	if os.Getenv(envSkip) == "1" {
		tb.Skipf("Fabric suite skipped: %s=1", envSkip)
	}
	if testing.Short() {
		tb.Skip("Fabric suite skipped under -short (it needs a running Fabric network)")
	}
	liveOnce.Do(func() {
		list := os.Getenv(envGateways)
		if list == "" {
			liveSkip = "Fabric suite skipped: no network — set " + envGateways +
				" to the regions' gateway configs (comma-separated) written by `ccnode fabric up`"
			return
		}
		for _, p := range strings.Split(list, ",") {
			c, err := LoadConfig(strings.TrimSpace(p))
			if err != nil {
				liveErr = err
				return
			}
			liveCfgs = append(liveCfgs, c)
		}
	})
	if liveSkip != "" {
		tb.Skip(liveSkip)
	}
	if liveErr != nil {
		tb.Fatalf("Fabric suite cannot start: %v", liveErr)
	}
	return liveCfgs
}

// dialLive dials one Ledger per region config, closed at the end of tb.
func dialLive(tb testing.TB, cfgs []Config) []*Ledger {
	tb.Helper()
	var out []*Ledger
	for _, c := range cfgs {
		l, err := Dial(context.Background(), c, nil)
		if err != nil {
			tb.Fatalf("dial %s at %s: %v", c.MSPID, c.Endpoint, err)
		}
		tb.Cleanup(func() { l.Close() })
		out = append(out, l)
	}
	return out
}

// TestFabricLive checks the client against the running network: reads,
// a typed refusal through real peers, and the event stream from block 0.
func TestFabricLive(t *testing.T) {
	ls := dialLive(t, liveConfigs(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("regions readable by every member", func(t *testing.T) {
		for _, l := range ls {
			if _, err := l.Regions(ctx); err != nil {
				t.Fatalf("%s: Regions: %v", l.Identity(), err)
			}
		}
	})
	t.Run("unknown region is ErrNotFound", func(t *testing.T) {
		_, err := ls[0].Region(ctx, "no-such-region")
		if !errors.Is(err, network.ErrNotFound) {
			t.Fatalf("Region(unknown) = %v, want ErrNotFound", err)
		}
	})
	t.Run("unknown consent is ErrNotFound", func(t *testing.T) {
		_, err := ls[0].Consent(ctx, "no-such-consent")
		if !errors.Is(err, network.ErrNotFound) {
			t.Fatalf("Consent(unknown) = %v, want ErrNotFound", err)
		}
	})
	t.Run("revoking an unknown consent is refused, not unavailable", func(t *testing.T) {
		_, err := ls[0].RevokeConsent(ctx, "no-such-consent")
		var ne *network.Error
		if !errors.As(err, &ne) || errors.Is(err, network.ErrUnavailable) {
			t.Fatalf("RevokeConsent(unknown) = %v, want a contract refusal", err)
		}
	})
}
