package receipts

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
)

// TestGroupSyncCoversEveryCaller: every caller returns only after a sync
// that started after it called has completed, and syncs never overlap.
func TestGroupSyncCoversEveryCaller(t *testing.T) {
	var started, lastDone, inFlight atomic.Int64
	g := &Syncer{fn: func() error {
		if inFlight.Add(1) != 1 {
			t.Error("two syncs at once")
		}
		n := started.Add(1)
		runtime.Gosched()
		inFlight.Add(-1)
		lastDone.Store(n)
		return nil
	}}
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				before := started.Load()
				if err := g.Sync(); err != nil {
					t.Error(err)
					return
				}
				if done := lastDone.Load(); done <= before {
					t.Errorf("returned after sync %d, but sync %d had already started when called", done, before)
					return
				}
			}
		}()
	}
	wg.Wait()
	if c := g.calls.Load(); c > 16*200 || c < 1 {
		t.Fatalf("%d syncs for %d calls", c, 16*200)
	}
}

// TestGroupSyncSharesOneRound: callers that arrive while a sync runs share
// the next one, and each gets its error.
func TestGroupSyncSharesOneRound(t *testing.T) {
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	boom := errors.New("sync failed")
	var calls atomic.Int64
	g := &Syncer{fn: func() error {
		if calls.Add(1) == 1 {
			entered <- struct{}{}
			<-gate
			return nil
		}
		return boom
	}}
	first := make(chan error, 1)
	go func() { first <- g.Sync() }()
	<-entered // the first sync is running and blocked
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() { errs <- g.Sync() }()
	}
	// Wait until all n have queued on the next round (one made it, the
	// others joined it).
	for {
		g.mu.Lock()
		joined := g.next != nil && g.next.joiners == n-1
		g.mu.Unlock()
		if joined {
			break
		}
		runtime.Gosched()
	}
	close(gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errs; !errors.Is(err, boom) {
			t.Fatalf("got %v, want the shared round's error", err)
		}
	}
	if c := calls.Load(); c != 2 {
		t.Fatalf("%d syncs, want 2", c)
	}
}

// TestDurableWritesShareSyncs runs the log's appends and Requested.Put
// concurrently on one on-disk database: everything lands, and the syncs of
// the two share rounds.
func TestDurableWritesShareSyncs(t *testing.T) {
	db := openDB(t, false, t.TempDir())
	defer db.Close()
	syncer := NewSyncer(db)
	l := openLogSyncing(t, db, syncer)
	defer l.Close()
	req := NewRequested(db, syncer)
	const workers, per = 8, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				r := receipt(t, w*per+i)
				if _, err := l.Append(context.Background(), r); err != nil {
					t.Error(err)
					return
				}
				if err := req.Put(Held{Receipt: *r, ReceivedAt: time.Unix(1_790_000_000, 0).UTC()}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := l.Size(); got != workers*per {
		t.Fatalf("log size %d, want %d", got, workers*per)
	}
	for i := range workers * per {
		id := fmt.Sprintf("receipt-%08d", i)
		if _, err := req.Get(id); err != nil {
			t.Fatal(err)
		}
	}
	if c := syncer.calls.Load(); c > 2*workers*per {
		t.Fatalf("%d syncs for %d durable writes", c, 2*workers*per)
	}
}

// BenchmarkDurableWrites is a home node's durable writes per consolidated
// query: its own region's receipt appended to the log, then the three
// received receipts kept with Requested.Put, at 1 and 64 queries in
// flight, with the syncs grouped (as now) and ungrouped (one db.Sync per
// call, as before). syncs/op counts db.Sync calls per query.
func BenchmarkDurableWrites(b *testing.B) {
	for _, par := range []int{1, 64} {
		for _, grouped := range []bool{false, true} {
			b.Run(fmt.Sprintf("inflight=%d/grouped=%v", par, grouped), func(b *testing.B) {
				db := openDB(b, false, b.TempDir())
				defer db.Close()
				ctr := NewSyncer(db)
				ctr.ungrouped = !grouped
				l := openLogSyncing(b, db, ctr)
				defer l.Close()
				req := NewRequested(db, ctr)
				rs := make([]*credit.Receipt, b.N)
				for i := range rs {
					rs[i] = receipt(b, i)
				}
				before := ctr.calls.Load()
				b.ResetTimer()
				var wg sync.WaitGroup
				next := make(chan int)
				for range par {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range next {
							r := rs[i]
							if _, err := l.Append(context.Background(), r); err != nil {
								b.Error(err)
							}
							h := Held{Receipt: *r, ReceivedAt: time.Unix(1_790_000_000, 0).UTC()}
							if err := req.Put(h, h, h); err != nil {
								b.Error(err)
							}
						}
					}()
				}
				for i := range b.N {
					next <- i
				}
				close(next)
				wg.Wait()
				b.ReportMetric(float64(ctr.calls.Load()-before)/float64(b.N), "syncs/op")
			})
		}
	}
}

// TestSyncSoonRidesOnTheNextRound: Soon returns without syncing, the next
// round any caller starts covers its writes (no round of its own follows),
// and Close runs nothing more.
func TestSyncSoonRidesOnTheNextRound(t *testing.T) {
	var calls atomic.Int64
	g := &Syncer{fn: func() error { calls.Add(1); return nil }, soonDelay: time.Hour}
	g.Soon()
	g.Soon()
	if c := calls.Load(); c != 0 {
		t.Fatalf("Soon synced %d times before any round", c)
	}
	if err := g.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if c := calls.Load(); c != 1 {
		t.Fatalf("%d syncs, want the caller's one round", c)
	}
}

// TestSyncSoonSyncsAlone: with no other caller, the writes Soon was
// called for are synced by a round of its own, once, within the delay;
// Close then has nothing owed.
func TestSyncSoonSyncsAlone(t *testing.T) {
	var calls atomic.Int64
	g := &Syncer{fn: func() error { calls.Add(1); return nil }, soonDelay: time.Millisecond}
	g.Soon()
	testkit.Eventually(t, 5*time.Second, func() error {
		if c := calls.Load(); c != 1 {
			return fmt.Errorf("%d syncs", c)
		}
		return nil
	})
	g.mu.Lock()
	owed, timer := g.owed, g.soon
	g.mu.Unlock()
	if owed || timer != nil {
		t.Fatalf("after its round: owed %v, timer %v", owed, timer != nil)
	}
	if err := g.Close(); err != nil || calls.Load() != 1 {
		t.Fatalf("Close: %v, %d syncs", err, calls.Load())
	}
}

// TestSyncerCloseRunsWhatSoonOwes: Close syncs at once what Soon still owes.
func TestSyncerCloseRunsWhatSoonOwes(t *testing.T) {
	var calls atomic.Int64
	g := &Syncer{fn: func() error { calls.Add(1); return nil }, soonDelay: time.Hour}
	g.Soon()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if c := calls.Load(); c != 1 {
		t.Fatalf("%d syncs at Close, want 1", c)
	}
}
