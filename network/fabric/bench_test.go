package fabric

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// Ledger benchmarks through this package's client. BenchmarkSim* run the
// real contract on the simulated peer (simPeer): client, gRPC, TLS and
// contract costs without Fabric's ordering and validation, i.e. a floor.
// The Fabric figures come from the same bodies on a real network once
// network/fabricnet can start one (see fabric_test.go).

// anchorer keeps one region's receipt log and anchors its checkpoints.
type anchorer struct {
	region credit.RegionID
	key    ed25519.PrivateKey
	ledger network.Ledger
	tree   *testonly.Tree
	n      int
}

// next appends leaves and anchors the new checkpoint with a consistency
// proof from the previous one — what a node's anchoring loop does.
func (a *anchorer) next(ctx context.Context, leaves int) (credit.AnchoredCheckpoint, error) {
	prev := a.tree.Size()
	for i := 0; i < leaves; i++ {
		a.n++
		a.tree.AppendData([]byte(fmt.Sprintf("%s receipt %d", a.region, a.n)))
	}
	cp := credit.Checkpoint{Region: a.region, Size: a.tree.Size(), Root: a.tree.Hash()}
	if err := cp.Sign(a.key); err != nil {
		return credit.AnchoredCheckpoint{}, err
	}
	var proof [][]byte
	if prev > 0 {
		p, err := a.tree.ConsistencyProof(prev, cp.Size)
		if err != nil {
			return credit.AnchoredCheckpoint{}, err
		}
		proof = p
	}
	return a.ledger.AnchorCheckpoint(ctx, cp, proof)
}

// simBenchRegions bootstraps n regions of the Pearl River Delta on a fresh
// simulated channel and returns an anchorer per region.
func simBenchRegions(b *testing.B, n int) []*anchorer {
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
	var members []credit.RegionMember
	var out []*anchorer
	for i := 0; i < n; i++ {
		pub, key, err := ed25519.GenerateKey(nil)
		if err != nil {
			b.Fatal(err)
		}
		r := prd[i]
		members = append(members, credit.RegionMember{ID: r.ID, Name: r.Name, Divisions: r.Divisions, MSPID: msps[i],
			PeerID: "peer-" + string(r.ID), PubKey: pub, Status: credit.StatusActive})
		out = append(out, &anchorer{region: r.ID, key: key, ledger: ls[i], tree: testonly.New(rfc6962.DefaultHasher)})
	}
	if err := ls[0].Bootstrap(context.Background(), members, nil); err != nil {
		b.Fatal(err)
	}
	return out
}

// benchAnchor anchors b.N checkpoints spread over the anchorers, each
// region's in order and the regions concurrently, and reports checkpoints
// per second and submit latency.
func benchAnchor(b *testing.B, as []*anchorer) {
	ctx := context.Background()
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	per := make([]int, len(as))
	for i := 0; i < b.N; i++ {
		per[i%len(as)]++
	}
	for _, a := range as {
		if fl, ok := a.ledger.(*Ledger); ok {
			fl.stats.reendorsed.Store(0)
		}
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	for i, a := range as {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, per[i])
			for j := 0; j < per[i]; j++ {
				t0 := time.Now()
				if _, err := a.next(ctx, 16); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.StopTimer()
	reportLatencies(b, lat)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checkpoints/s")
	var again uint64
	for _, a := range as {
		if fl, ok := a.ledger.(*Ledger); ok {
			again += fl.stats.reendorsed.Load()
		}
	}
	b.ReportMetric(float64(again)/float64(b.N), "reendorse/op")
}

// benchEventDelay anchors one checkpoint at a time and measures how long
// after the anchoring call returned (the commit was confirmed) its event
// reaches a subscriber of another region.
func benchEventDelay(b *testing.B, a *anchorer, watcher network.Ledger) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	latest, err := a.next(ctx, 1)
	if err != nil {
		b.Fatal(err)
	}
	events, err := watcher.Subscribe(ctx, network.Position{})
	if err != nil {
		b.Fatal(err)
	}
	// waitFor reads the stream up to the event of txID.
	waitFor := func(txID string) {
		for ev := range events {
			if ev.Checkpoint != nil && ev.Checkpoint.TxID == txID {
				return
			}
		}
		b.Fatal("event stream closed")
	}
	waitFor(latest.TxID) // past history
	delays := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := a.next(ctx, 1)
		if err != nil {
			b.Fatal(err)
		}
		committed := time.Now()
		waitFor(got.TxID)
		delays = append(delays, time.Since(committed))
	}
	b.StopTimer()
	reportLatencies(b, delays)
}

// benchConsentReads measures ConsentAt reads per second from several
// goroutines, the check every answering node makes per query.
func benchConsentReads(b *testing.B, a *anchorer, reader network.Ledger) {
	ctx := context.Background()
	sum := sha256.Sum256([]byte("bench consent"))
	now := time.Now().UTC()
	id := fmt.Sprintf("bench-consent-%d", now.UnixNano())
	if err := a.ledger.RecordConsent(ctx, credit.ConsentCommitment{ID: id, Commitment: sum[:], Region: a.region,
		ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour)}); err != nil {
		b.Fatal(err)
	}
	at := time.Now().UTC() // after the recording transaction's time
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, st, err := reader.ConsentAt(ctx, id, at); err != nil || st != credit.ConsentActive {
				b.Errorf("ConsentAt = %v, %v", st, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

// benchLedger runs every ledger benchmark on one bootstrapped ledger:
// anchoring by one region, then by all regions at once, the event delay,
// and consent reads. The anchorers keep their logs across the runs.
func benchLedger(b *testing.B, as []*anchorer) {
	b.Run("AnchorSequential", func(b *testing.B) { benchAnchor(b, as[:1]) })
	b.Run(fmt.Sprintf("AnchorConcurrent-%dregions", len(as)), func(b *testing.B) { benchAnchor(b, as) })
	b.Run("EventDelay", func(b *testing.B) { benchEventDelay(b, as[0], as[1].ledger) })
	b.Run("ConsentReads", func(b *testing.B) { benchConsentReads(b, as[0], as[1].ledger) })
}

// BenchmarkSim: the bodies on the simulated peer, nine regions.
func BenchmarkSim(b *testing.B) { benchLedger(b, simBenchRegions(b, 9)) }
