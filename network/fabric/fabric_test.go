package fabric

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/network/ledgertest"
)

// The tests in this file run against a real Fabric network. When
// CCNODE_FABRIC_GATEWAYS names the gateway configs of at least three
// regions (YAML files in this package's Config format, comma-separated —
// the files `ccnode fabric up --no-bootstrap` writes under connection/) they
// use that network, and CCNODE_FABRIC_AUDITOR may name the auditor's
// (connection/auditor.yaml); the conformance suite and the benchmarks
// bootstrap the membership themselves, so it must be fresh. When the
// variable is unset they start a fresh local network with network/fabricnet
// for this test binary (building Fabric's binaries the first time). They
// skip, saying why, when CCNODE_SKIP_FABRIC=1 or under -short.

const (
	envSkip     = "CCNODE_SKIP_FABRIC"
	envGateways = "CCNODE_FABRIC_GATEWAYS"
	envAuditor  = "CCNODE_FABRIC_AUDITOR"
)

var (
	liveOnce    sync.Once
	liveCfgs    []Config
	liveAuditor *Config // nil: the network named has no auditor identity
	liveErr     error   // the network did not start, or its configs are broken
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
		list, auditor := os.Getenv(envGateways), os.Getenv(envAuditor)
		if list == "" {
			// No network named: start a fresh local one for this test
			// binary (TestMain stops it), building Fabric if needed.
			files, aud, err := startLocalNetwork()
			if err != nil {
				liveErr = err
				return
			}
			list, auditor = strings.Join(files, ","), aud
		}
		if auditor != "" {
			c, err := LoadConfig(auditor)
			if err != nil {
				liveErr = err
				return
			}
			liveAuditor = &c
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

// liveRegions pairs the regions of the Pearl River Delta with the gateway
// configs, one region per config, in order.
func liveRegions(tb testing.TB, cfgs []Config) []ledgertest.Region {
	tb.Helper()
	prd := credit.PearlRiverDelta()
	if len(cfgs) < 3 || len(cfgs) > len(prd) {
		tb.Fatalf("need 3 to %d region gateway configs, got %d", len(prd), len(cfgs))
	}
	var out []ledgertest.Region
	for i, l := range dialLive(tb, cfgs) {
		m, key := ledgertest.NewRegion(prd[i].ID, prd[i].Name, cfgs[i].MSPID, prd[i].Divisions...)
		out = append(out, ledgertest.Region{Member: m, Key: key, Ledger: l})
	}
	return out
}

// TestConformanceFabric runs the conformance suite on the real network.
// The suite bootstraps the membership itself, so the network must be
// fresh: channel and contract up, no Bootstrap yet. The auditor identity
// is the suite's outsider: through real peers and the orderer it reads
// what the regions read, and the contract refuses each of its writes.
//
// A fourth organisation, when the network has one, is the candidate
// region of the governance tests: a channel writer the bootstrap leaves
// out, which joins by the regions' votes and is then retired.
func TestConformanceFabric(t *testing.T) {
	cfgs := liveConfigs(t)
	var candidate network.Ledger
	if len(cfgs) >= 4 {
		candidate, cfgs = dialLive(t, cfgs[3:4])[0], cfgs[:3]
	}
	rs := liveRegions(t, cfgs)
	h := ledgertest.Harness{Regions: rs, Candidate: candidate, Slow: true}
	if liveAuditor != nil {
		h.Outsider = dialLive(t, []Config{*liveAuditor})[0]
	} else {
		t.Logf("%s unset: the auditor's reads and refused writes are not checked on this network", envAuditor)
	}
	ledgertest.Run(t, h)
}

// BenchmarkFabric runs the shared ledger benchmarks on a fresh local
// Fabric network (it bootstraps it, so run it alone):
//
//	go test -run '^$' -bench BenchmarkFabric ./network/fabric
func BenchmarkFabric(b *testing.B) {
	cfgs := liveConfigs(b)
	rs := liveRegions(b, cfgs)
	if got, err := rs[0].Ledger.Regions(b.Context()); err != nil {
		b.Fatal(err)
	} else if len(got) > 0 {
		b.Skip("Fabric benchmarks need a fresh network: this one already has members (run with -run '^$')")
	}
	ledgertest.Bench(b, ledgertest.Harness{Regions: rs, Slow: true}, benchLeaves)
}
