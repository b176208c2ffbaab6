package embedded

import (
	"testing"

	"github.com/prdcredit/ccnode/network/ledgertest"
)

// BenchmarkEmbedded runs the shared ledger benchmark bodies (the same ones
// network/fabric runs against a Fabric network) on the embedded ledger, on
// disk (synchronous writes, as a node runs it) and in memory:
//
//	go test -run '^$' -bench BenchmarkEmbedded -benchtime 1s -count 5 ./network/embedded/
func BenchmarkEmbedded(b *testing.B) {
	for _, mode := range []string{"disk", "memory"} {
		b.Run(mode, func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{InMemory: mode == "memory"})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			// 64 receipts per checkpoint: the proof grows with the log's
			// size, not with the interval, so the figure barely depends on it.
			ledgertest.Bench(b, harness(b, s), 64)
		})
	}
}
