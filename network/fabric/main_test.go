package fabric

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/network/fabricnet"
)

// envBatchTimeout sets the local network's orderer batch timeout (a Go
// duration; fabricnet's default otherwise).
const envBatchTimeout = "CCNODE_FABRIC_BATCH_TIMEOUT"

// localNetDir is the folder of the network this test binary started, if any.
var localNetDir string

// startLocalNetwork brings up a fresh Fabric network (no membership) and
// returns its regions' gateway config files and the auditor's.
func startLocalNetwork() ([]string, string, error) {
	dir, err := os.MkdirTemp("", "ccnode-fabric-test-")
	if err != nil {
		return nil, "", err
	}
	localNetDir = dir
	// Generous: the first run on a machine builds Fabric (minutes).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// StopWithParent: a test binary that crashes or times out leaves no
	// Fabric process behind.
	// Four organisations: the conformance suite bootstraps three and has
	// the fourth join and leave by their votes.
	cfg := fabricnet.Config{Dir: dir, Logger: log, StopWithParent: true, Regions: fabricnet.KnownRegions()[:4]}
	// The orderer's batch timeout sets most of a submit's latency; the
	// benchmarks can be run at another one.
	if v := os.Getenv(envBatchTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", envBatchTimeout, err)
		}
		cfg.BatchTimeout = d
	}
	n, err := fabricnet.Up(ctx, cfg)
	if err != nil {
		return nil, "", fmt.Errorf("starting a local Fabric network (logs in %s): %w", dir, err)
	}
	return n.GatewayFiles, n.AuditorFile, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if localNetDir != "" {
		switch err := fabricnet.Down(localNetDir); {
		case err != nil:
			fmt.Fprintln(os.Stderr, "stopping the local Fabric network:", err)
			code = 1
		case code != 0:
			// Keep the processes' logs of a failed run.
			fmt.Fprintln(os.Stderr, "Fabric network logs kept in", localNetDir)
		default:
			os.RemoveAll(localNetDir)
		}
	}
	os.Exit(code)
}
