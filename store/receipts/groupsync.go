package receipts

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/prdcredit/ccnode/internal/badgersync"
)

// Syncer makes every write committed to one database before a call
// durable, as db.Sync does, but shares one db.Sync among the callers that
// arrive while another is running (group commit of the sync). The receipt
// log's writer, Requested.Put and the outbox all sync the same database: a
// node makes one Syncer per database and hands it to each of them
// (BenchmarkDurableWrites).
//
// A caller that finds a sync running does not count on it (its write may
// have landed after that sync started): it joins the next round, which
// starts once the running one ends and covers everything committed before
// it starts.
type Syncer struct {
	fn      func() error
	release func() error // at Close, after the last round (nil: nothing)
	// ungrouped makes every call sync on its own, as before group syncing:
	// only BenchmarkDurableWrites sets it, to compare.
	ungrouped bool
	calls     atomic.Int64 // fn calls, for tests and benchmarks

	mu      sync.Mutex
	running *syncRound // the round whose fn is running, or nil
	next    *syncRound // the round collecting callers, not started yet
	// owed: Soon was called and no round has started since; soon is
	// the timer that then syncs (nil when none is set).
	owed bool
	soon *time.Timer
	// soonDelay bounds how long Soon's writes wait for a round (default
	// DefaultSoonDelay; tests shorten it).
	soonDelay time.Duration
}

// DefaultSoonDelay bounds how long writes a caller of Syncer.Soon
// committed stay unsynced when no other durable write comes.
const DefaultSoonDelay = 20 * time.Millisecond

// NewSyncer syncs db, in the memtables Badger rotated out as well
// (badgersync). A closed db has nothing left to sync: Close wrote
// everything it held.
func NewSyncer(db *badger.DB) *Syncer {
	bs := badgersync.New(db)
	return &Syncer{fn: func() error {
		if db.IsClosed() {
			return nil
		}
		return bs.Sync()
	}, release: bs.Close}
}

type syncRound struct {
	done    chan struct{}
	err     error
	joiners int // callers that joined after the one that made it (tests)
}

// Sync returns once every write committed before the call is durable.
func (g *Syncer) Sync() error {
	if g.ungrouped {
		g.calls.Add(1)
		return g.fn()
	}
	g.mu.Lock()
	if r := g.next; r != nil {
		// A round is waiting to start: it will start after our write.
		r.joiners++
		g.mu.Unlock()
		<-r.done
		return r.err
	}
	r := &syncRound{done: make(chan struct{})}
	g.next = r
	prev := g.running
	g.mu.Unlock()
	if prev != nil {
		<-prev.done
	}
	g.mu.Lock()
	// From here no caller joins r: its sync starts after every joiner's
	// write, and after every write Soon was called for.
	g.next, g.running = nil, r
	g.owed = false
	g.mu.Unlock()
	g.calls.Add(1)
	r.err = g.fn()
	g.mu.Lock()
	if g.running == r {
		g.running = nil
	}
	g.mu.Unlock()
	close(r.done)
	return r.err
}

// Soon makes every write committed before the call durable within the
// Syncer's delay (DefaultSoonDelay), without waiting: the next round any
// caller of Sync starts covers it, and when none starts within the delay,
// a round of its own does. A writer with no caller left to wait (the
// requester's copy of received receipts) uses it, so that under traffic
// its writes ride on the receipt log's syncs instead of adding a sync of
// their own that the next query's writes would queue behind (Badger holds
// its write lock while the WAL syncs). A failed round is not reported.
func (g *Syncer) Soon() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.owed = true
	if g.soon != nil {
		return
	}
	d := g.soonDelay
	if d <= 0 {
		d = DefaultSoonDelay
	}
	g.soon = time.AfterFunc(d, func() {
		g.mu.Lock()
		owed := g.owed
		g.soon = nil
		g.mu.Unlock()
		if owed {
			_ = g.Sync()
		}
	})
}

// Close runs now the round Soon owes, if any, and stops its timer: the
// owner calls it once the database's writers stopped, before closing it.
func (g *Syncer) Close() error {
	g.mu.Lock()
	owed := g.owed
	if g.soon != nil {
		g.soon.Stop()
		g.soon = nil
	}
	g.mu.Unlock()
	var err error
	if owed {
		err = g.Sync()
	}
	if g.release != nil {
		g.release()
	}
	return err
}
