package main

import (
	"math"
	"os"
	"testing"
)

func TestHistQuantile(t *testing.T) {
	// 100 samples: 50 in (0, 1], 49 in (1, 2], 1 in (2, 4].
	b := map[float64]float64{1: 50, 2: 99, 4: 100}
	for _, tc := range []struct{ q, want float64 }{{0.5, 1}, {0.25, 0.5}, {0.99, 2}, {0.995, 3}, {1, 4}} {
		if got := histQuantile(b, 100, tc.q); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("q%.3f = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := histQuantile(map[float64]float64{}, 0, 0.99); !math.IsNaN(got) {
		t.Errorf("empty histogram: %v, want NaN", got)
	}
}

func TestQuantileNearestRank(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	if got := quantile(xs, 0.5); got != 3 {
		t.Errorf("median %v", got)
	}
	if got := quantile(xs, 0.99); got != 5 {
		t.Errorf("p99 %v", got)
	}
	if xs[0] != 5 {
		t.Error("quantile sorted its input in place")
	}
	if !math.IsNaN(quantile(nil, 0.5)) {
		t.Error("empty: want NaN")
	}
}

func TestProcCPUReadsThisProcess(t *testing.T) {
	if _, err := procCPU(1 << 30); err == nil {
		t.Error("a pid that does not exist gave no error")
	}
	cpu, err := procCPU(os.Getpid())
	if err != nil || cpu < 0 {
		t.Fatalf("own CPU: %v, %v", cpu, err)
	}
}

func TestBenchProcsSharesCPUs(t *testing.T) {
	for _, tc := range []struct{ flag, cpus, want int }{
		{-1, 2, 1}, {-1, 4, 1}, {-1, 8, 2}, {-1, 16, 4}, // four processes share the CPUs
		{0, 8, 0}, // Go's default
		{3, 2, 3}, // as asked
	} {
		if got := benchProcs(tc.flag, tc.cpus); got != tc.want {
			t.Errorf("benchProcs(%d, %d CPUs) = %d, want %d", tc.flag, tc.cpus, got, tc.want)
		}
	}
}
