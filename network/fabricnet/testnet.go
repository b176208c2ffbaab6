package fabricnet

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/internal/testkit"
)

// SkipEnv is the environment variable that, set to 1, makes StartForTest
// (and this package's tests) skip instead of starting a network.
const SkipEnv = "CCNODE_SKIP_FABRIC"

// SkipUnlessFabric skips t when Fabric tests are switched off: under
// -short, or with CCNODE_SKIP_FABRIC=1. Otherwise the test runs and builds
// Fabric's binaries if they are missing (CI does this).
func SkipUnlessFabric(t testing.TB) {
	t.Helper()
	if os.Getenv(SkipEnv) == "1" {
		t.Skipf("%s=1: not starting a local Fabric network", SkipEnv)
	}
	if testing.Short() {
		t.Skip("-short: not starting a local Fabric network (it takes 10-20 s, and minutes the first time to build Fabric)")
	}
}

// RequireBinaries skips t unless Fabric's binaries are complete in
// DefaultBinDir() (CCNODE_FABRIC_BIN), and fails it instead under CI=true,
// where a missing binary is a broken build, not a machine without Fabric.
func RequireBinaries(t testing.TB) BinDir {
	t.Helper()
	d := BinDir(DefaultBinDir())
	if d.Complete() {
		return d
	}
	msg := fmt.Sprintf("Fabric's binaries (%s) are not all in %s: build them with network/fabricnet/build-binaries.sh or name a folder in CCNODE_FABRIC_BIN",
		strings.Join(Binaries, ", "), d)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// The network StartForTest shares within one test binary.
var shared struct {
	mu    sync.Mutex
	net   *Network
	users int
}

// StartForTest returns a running network for t, starting it if none runs
// in this test binary, and stops it when the last test using it has
// finished (t.Cleanup). Tests running at the same time share one network;
// to share it among subtests, call it in the parent and pass the Network
// down. cfg is used by the call that starts the network (Dir defaults to a
// temporary folder, Logger to t.Log); later calls while it runs get that
// same network whatever their cfg. It skips t under -short or with
// CCNODE_SKIP_FABRIC=1 and fails t when the network does not come up.
// Processes die with the test binary even if it crashes.
func StartForTest(t testing.TB, cfg Config) *Network {
	t.Helper()
	SkipUnlessFabric(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.net == nil {
		if cfg.Dir == "" {
			dir, err := os.MkdirTemp("", "ccnode-fabricnet-")
			if err != nil {
				t.Fatal(err)
			}
			cfg.Dir = dir
		}
		if cfg.Logger == nil {
			// Up only logs while it runs, so the logger does not
			// outlive the test that started the network.
			cfg.Logger = testkit.Logger(t)
		}
		cfg.StopWithParent = true
		// Generous: the first run builds Fabric (minutes on 2 cores).
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		start := time.Now()
		n, err := Up(ctx, cfg)
		if err != nil {
			t.Fatalf("starting a local Fabric network: %v", err)
		}
		t.Logf("local Fabric network up in %s: %s", time.Since(start).Round(time.Millisecond), n.Dir)
		shared.net = n
	}
	shared.users++
	n := shared.net
	t.Cleanup(func() {
		shared.mu.Lock()
		defer shared.mu.Unlock()
		shared.users--
		if shared.users > 0 || shared.net != n {
			return
		}
		shared.net = nil
		if err := Down(n.Dir); err != nil {
			t.Errorf("stopping the local Fabric network in %s: %v", n.Dir, err)
			return
		}
		if !t.Failed() {
			os.RemoveAll(n.Dir)
		} else {
			t.Logf("keeping the failed test's Fabric network folder (logs): %s", n.Dir)
		}
	})
	return n
}
