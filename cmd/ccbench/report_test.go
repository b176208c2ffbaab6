package main

import (
	"testing"
	"time"
)

// TestTailOf: a report over the threshold is a stall when its time per
// record is far above the median report's, and a large enterprise when not.
func TestTailOf(t *testing.T) {
	us := time.Microsecond
	durs := []time.Duration{100 * us, 110 * us, 90 * us, 1500 * us, 2000 * us, 105 * us}
	sizes := []int{100, 110, 90, 1500, 100, 100}
	got := tailOf(durs, sizes)
	want := tail{over: 2, stalled: 1, perRecord: us, records: 1500}
	if got != want {
		t.Fatalf("tailOf = %+v, want %+v", got, want)
	}
	if got := tailOf([]time.Duration{us}, []int{0}); got.over != 0 || got.perRecord != us {
		t.Fatalf("one fast report of no records: %+v", got)
	}
}
