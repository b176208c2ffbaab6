package embedded

import (
	"testing"
	"time"

	"github.com/prdcredit/ccnode/network/ledgertest"
)

// BenchmarkEmbedded runs the shared ledger benchmark bodies (the same ones
// network/fabric runs against a Fabric network) on the embedded ledger, on
// disk (synchronous writes, as a node runs it) and in memory:
//
//	go test -run '^$' -bench BenchmarkEmbedded -benchtime 2s -count 5 ./network/embedded/
func BenchmarkEmbedded(b *testing.B) {
	for _, mode := range []string{"disk", "memory"} {
		b.Run(mode, func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{InMemory: mode == "memory"})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			h := harness(b, s)
			if err := ledgertest.Bootstrap(b.Context(), h.Regions); err != nil {
				b.Fatal(err)
			}
			var logs []*ledgertest.Log
			for _, r := range h.Regions {
				logs = append(logs, ledgertest.NewLog(r))
			}
			// 64 receipts per checkpoint: the proof grows with log size,
			// not with the interval, so the figure barely depends on it.
			b.Run("Anchor", func(b *testing.B) { ledgertest.BenchAnchor(b, logs[0], 64) })
			b.Run("AnchorConcurrent", func(b *testing.B) { ledgertest.BenchAnchorConcurrent(b, logs, 64) })
			b.Run("Submit", func(b *testing.B) { ledgertest.BenchSubmit(b, h.Regions[1]) })
			b.Run("EventDelay", func(b *testing.B) { ledgertest.BenchEventDelay(b, h.Regions[2], 10*time.Second) })
			b.Run("ConsentReads", func(b *testing.B) { ledgertest.BenchConsentReads(b, h.Regions[1]) })
		})
	}
}
