package fabric

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// These benchmarks measure this client's own cost — proposal building,
// ECDSA signing, TLS gRPC to a gateway, result decoding — against the fake
// gateway in this process, so it can be compared with the time Fabric
// itself takes (BenchmarkFabric*, shared/FABRIC.md: ~262 ms per submit at
// a 250 ms batch timeout). The fake shares the 2 cores with the client.

func benchFake(b *testing.B) *Ledger {
	b.Helper()
	g := newFakeGateway()
	res := []byte(`{"region":"SZ","size":5,"root":"AAE=","sig":"AAE=","anchored_at":"2026-11-26T08:00:00Z","tx_id":"t"}`)
	g.contract = func(fn string, _ []string) ([]byte, error) {
		if fn == "GetConsentAt" {
			return []byte(`{"commitment":{"id":"c1"},"status":"active"}`), nil
		}
		return res, nil
	}
	return startFakeTB(b, g)
}

func reportLatencies(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	b.ReportMetric(us(lat[len(lat)/2]), "p50-µs")
	b.ReportMetric(us(lat[len(lat)*99/100]), "p99-µs")
}

func BenchmarkFakeGatewaySubmit(b *testing.B) {
	l := benchFake(b)
	ctx := context.Background()
	cp := credit.Checkpoint{Region: "SZ", Size: 5, Root: make([]byte, 32), Note: strings.Repeat("n", 150)}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := l.AnchorCheckpoint(ctx, cp, [][]byte{make([]byte, 32)}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatencies(b, lat)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
}

func BenchmarkFakeGatewaySubmitParallel(b *testing.B) {
	l := benchFake(b)
	ctx := context.Background()
	cp := credit.Checkpoint{Region: "SZ", Size: 5, Root: make([]byte, 32), Note: strings.Repeat("n", 150)}
	b.SetParallelism(16)
	var mu sync.Mutex
	var lat []time.Duration
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			t0 := time.Now()
			if _, err := l.AnchorCheckpoint(ctx, cp, nil); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	reportLatencies(b, lat)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
}

func BenchmarkFakeGatewayConsentAt(b *testing.B) {
	l := benchFake(b)
	ctx := context.Background()
	at := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := l.ConsentAt(ctx, "c1", at); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}
