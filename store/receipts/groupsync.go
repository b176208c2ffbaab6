package receipts

import (
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
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
	fn func() error
	// ungrouped makes every call sync on its own, as before group syncing:
	// only BenchmarkDurableWrites sets it, to compare.
	ungrouped bool
	calls     atomic.Int64 // fn calls, for tests and benchmarks

	mu      sync.Mutex
	running *syncRound // the round whose fn is running, or nil
	next    *syncRound // the round collecting callers, not started yet
}

// NewSyncer syncs db.
func NewSyncer(db *badger.DB) *Syncer { return &Syncer{fn: db.Sync} }

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
	// write.
	g.next, g.running = nil, r
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
