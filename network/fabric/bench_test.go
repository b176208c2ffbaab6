package fabric

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network/ledgertest"
)

// Ledger benchmarks through this package's client, with the benchmark
// bodies every backend shares (ledgertest.Bench), so the figures compare
// with network/embedded's line for line. BenchmarkSim runs them on the
// simulated peer — client, gRPC, TLS and the real contract, without
// Fabric's ordering and validation: a floor. BenchmarkFabric runs them on
// a real local Fabric network (fabric_test.go).

// benchLeaves is the receipts per anchored checkpoint, as on embedded.
const benchLeaves = 64

// simHarness is n Pearl River Delta regions on a fresh simulated channel.
func simHarness(b *testing.B, n int) ledgertest.Harness {
	b.Helper()
	prd := credit.PearlRiverDelta()
	if n > len(prd) {
		b.Fatalf("at most %d regions", len(prd))
	}
	var msps []string
	for i := 0; i < n; i++ {
		msps = append(msps, fmt.Sprintf("R%dMSP", i))
	}
	_, ls := startSim(b, slog.New(slog.DiscardHandler), msps...)
	var h ledgertest.Harness
	for i := 0; i < n; i++ {
		m, key := ledgertest.NewRegion(prd[i].ID, prd[i].Name, msps[i], prd[i].Divisions...)
		h.Regions = append(h.Regions, ledgertest.Region{Member: m, Key: key, Ledger: ls[i]})
	}
	return h
}

// BenchmarkSim: the shared bodies on the simulated peer, three regions
// as on the local Fabric network.
func BenchmarkSim(b *testing.B) { ledgertest.Bench(b, simHarness(b, 3), benchLeaves) }
