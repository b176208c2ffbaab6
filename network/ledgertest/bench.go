package ledgertest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// Benchmark bodies shared by every backend, so the embedded and the Fabric
// figures come from the same code. Each takes regions of a ledger that
// Bootstrap has set up; state that must outlive one call (a region's
// receipt log) is held in a Log created once, outside b.Run, because the
// testing package calls a benchmark body several times with growing b.N.

// Bootstrap writes every region as a member, acting as the first region.
func Bootstrap(ctx context.Context, regions []Region) error {
	var members []credit.RegionMember
	for _, r := range regions {
		members = append(members, r.Member)
	}
	return regions[0].Ledger.Bootstrap(ctx, members, nil)
}

// Log is one region's receipt log as its node keeps it: an RFC 6962 tree
// whose checkpoints it signs and anchors, each with a consistency proof
// from the previous one.
type Log struct {
	Region Region
	tree   *testonly.Tree
	n      int
}

// NewLog starts an empty log for r; r must not have anchored before.
func NewLog(r Region) *Log { return &Log{Region: r, tree: testonly.New(rfc6962.DefaultHasher)} }

// Anchor appends leaves receipts and anchors the new checkpoint.
func (l *Log) Anchor(ctx context.Context, leaves int) (credit.AnchoredCheckpoint, error) {
	prev := l.tree.Size()
	for range leaves {
		l.n++
		l.tree.AppendData(fmt.Appendf(nil, "%s receipt %d", l.Region.Member.ID, l.n))
	}
	cp := credit.Checkpoint{Region: l.Region.Member.ID, Size: l.tree.Size(), Root: l.tree.Hash()}
	if err := cp.Sign(Network, l.Region.Key); err != nil {
		return credit.AnchoredCheckpoint{}, err
	}
	var proof [][]byte
	if prev > 0 {
		p, err := l.tree.ConsistencyProof(prev, cp.Size)
		if err != nil {
			return credit.AnchoredCheckpoint{}, err
		}
		proof = p
	}
	return l.Region.Ledger.AnchorCheckpoint(ctx, cp, proof)
}

// BenchAnchor anchors one checkpoint per iteration (leaves new receipts
// each, with a real consistency proof) and reports anchors/s.
func BenchAnchor(b *testing.B, l *Log, leaves int) {
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := l.Anchor(ctx, leaves); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "anchors/s")
}

// BenchAnchorConcurrent anchors from every log at once, one goroutine per
// region (the consortium's nodes anchoring independently), b.N anchors in
// all, and reports anchors/s across the regions.
func BenchAnchorConcurrent(b *testing.B, logs []*Log, leaves int) {
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(logs))
	for i, l := range logs {
		n := b.N / len(logs)
		if i < b.N%len(logs) {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if _, err := l.Anchor(ctx, leaves); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "anchors/s")
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

func newConsent(r Region, id string) credit.ConsentCommitment {
	now := time.Now().UTC()
	return credit.ConsentCommitment{ID: id, Commitment: make([]byte, 32), Region: r.Member.ID,
		ValidFrom: now.Add(-time.Minute), ValidUntil: now.Add(24 * time.Hour)}
}

// percentile returns the q-quantile (0..1) of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

func reportLatency(b *testing.B, ds []time.Duration, unit string) {
	slices.Sort(ds)
	b.ReportMetric(float64(percentile(ds, 0.50).Microseconds())/1000, unit+"-p50-ms")
	b.ReportMetric(float64(percentile(ds, 0.99).Microseconds())/1000, unit+"-p99-ms")
}

// BenchSubmit submits one consent recording per iteration, sequentially,
// and reports the submit latency (until the backend confirms the commit)
// at p50 and p99.
func BenchSubmit(b *testing.B, r Region) {
	ctx := context.Background()
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = uniq("bench-submit")
	}
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for _, id := range ids {
		t := time.Now()
		if err := r.Ledger.RecordConsent(ctx, newConsent(r, id)); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t))
	}
	b.StopTimer()
	reportLatency(b, ds, "submit")
}

// BenchEventDelay measures how long after a submit returns (the commit is
// confirmed) its event reaches a subscriber: p50 and p99. An event that
// arrives before the submit returns counts as zero delay. The subscriber
// replays the stream from the start once, before the timer runs.
func BenchEventDelay(b *testing.B, r Region, wait time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := r.Ledger.Subscribe(ctx, network.Position{})
	if err != nil {
		b.Fatal(err)
	}
	type arrival struct {
		id string
		at time.Time
	}
	arrivals := make(chan arrival, 1024)
	go func() {
		defer close(arrivals)
		for ev := range ch {
			if ev.Kind == network.EventConsentRecorded && ev.Consent != nil {
				arrivals <- arrival{ev.Consent.ID, time.Now()}
			}
		}
	}()
	awaitID := func(id string) time.Time {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		for {
			select {
			case a, ok := <-arrivals:
				if !ok {
					b.Fatal("event stream closed")
				}
				if a.id == id {
					return a.at
				}
			case <-timer.C:
				b.Fatalf("no event for %s within %s", id, wait)
			}
		}
	}
	// Drain the replay: everything up to a marker of our own.
	marker := uniq("bench-event-marker")
	if err := r.Ledger.RecordConsent(ctx, newConsent(r, marker)); err != nil {
		b.Fatal(err)
	}
	awaitID(marker)

	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		id := uniq("bench-event")
		if err := r.Ledger.RecordConsent(ctx, newConsent(r, id)); err != nil {
			b.Fatal(err)
		}
		committed := time.Now()
		d := awaitID(id).Sub(committed)
		ds = append(ds, max(d, 0))
	}
	b.StopTimer()
	reportLatency(b, ds, "event")
}

// BenchConsentReads reads the status of a consent at a time (the check
// every answering node makes), from parallel goroutines, and reports
// reads/s.
func BenchConsentReads(b *testing.B, r Region) {
	ctx := context.Background()
	c := newConsent(r, uniq("bench-read"))
	if err := r.Ledger.RecordConsent(ctx, c); err != nil {
		b.Fatal(err)
	}
	at := time.Now().Add(time.Second)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, st, err := r.Ledger.ConsentAt(ctx, c.ID, at); err != nil || st != credit.ConsentActive {
				b.Errorf("ConsentAt: %s, %v", st, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reads/s")
}

// Bench bootstraps h's ledger and runs every benchmark body on it as
// sub-benchmarks — Anchor, AnchorConcurrent, Submit, EventDelay,
// ConsentReads — so each backend's benchmark is one line and the figures
// have the same names:
//
//	func BenchmarkX(b *testing.B) { ledgertest.Bench(b, harnessOfX(b)) }
//
// leaves is the number of receipts per anchored checkpoint.
func Bench(b *testing.B, h Harness, leaves int) {
	if len(h.Regions) < 3 {
		b.Fatalf("ledgertest.Bench needs at least 3 regions, got %d", len(h.Regions))
	}
	if h.EventWait == 0 {
		h.EventWait = 10 * time.Second
		if h.Slow {
			h.EventWait = 60 * time.Second
		}
	}
	if err := Bootstrap(b.Context(), h.Regions); err != nil {
		b.Fatal(err)
	}
	var logs []*Log
	for _, r := range h.Regions {
		logs = append(logs, NewLog(r))
	}
	b.Run("Anchor", func(b *testing.B) { BenchAnchor(b, logs[0], leaves) })
	b.Run("AnchorConcurrent", func(b *testing.B) { BenchAnchorConcurrent(b, logs, leaves) })
	b.Run("Submit", func(b *testing.B) { BenchSubmit(b, h.Regions[1]) })
	b.Run("EventDelay", func(b *testing.B) { BenchEventDelay(b, h.Regions[2], h.EventWait) })
	b.Run("ConsentReads", func(b *testing.B) { BenchConsentReads(b, h.Regions[1]) })
}
