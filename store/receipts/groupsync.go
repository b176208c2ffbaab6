package receipts

import (
	"runtime"
	"sync"
	"sync/atomic"
	"weak"

	"github.com/dgraph-io/badger/v4"
)

// syncDB makes every write committed to db before the call durable, as
// db.Sync does, but shares one db.Sync among the callers that arrive while
// another is running (group commit of the sync). The receipt log's writer,
// Requested.Put and the outbox all sync the same database: at 64 queries
// in flight a home node called db.Sync once per query for Requested.Put
// alone, each an msync of the memtable's WAL and one of the value log
// (about 1-2 ms of waiting each on this project's machines).
//
// A caller that finds a sync running does not count on it (its write may
// have landed after that sync started): it joins the next round, which
// starts once the running one ends and covers everything committed before
// it starts.
func syncDB(db *badger.DB) error {
	if ungroupedSync {
		syncerOf(db).calls.Add(1)
		return db.Sync()
	}
	return syncerOf(db).sync()
}

// ungroupedSync makes syncDB call db.Sync directly, as before group
// syncing: only BenchmarkDurableWrites sets it, to compare.
var ungroupedSync = false

type groupSyncer struct {
	fn    func() error
	calls atomic.Int64 // fn calls, for tests and benchmarks

	mu      sync.Mutex
	running *syncRound // the round whose fn is running, or nil
	next    *syncRound // the round collecting callers, not started yet
}

type syncRound struct {
	done    chan struct{}
	err     error
	joiners int // callers that joined after the one that made it (tests)
}

func (g *groupSyncer) sync() error {
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

// syncers holds one groupSyncer per open database, keyed weakly so that a
// closed and dropped database (tests open many) takes its entry with it.
var syncers sync.Map // weak.Pointer[badger.DB] -> *groupSyncer

func syncerOf(db *badger.DB) *groupSyncer {
	k := weak.Make(db)
	if g, ok := syncers.Load(k); ok {
		return g.(*groupSyncer)
	}
	// The syncer must not keep db alive: it reaches it through the weak
	// pointer, which is valid while any caller (holding db) can call.
	g, loaded := syncers.LoadOrStore(k, &groupSyncer{fn: func() error {
		if db := k.Value(); db != nil {
			return db.Sync()
		}
		return nil
	}})
	if !loaded {
		runtime.AddCleanup(db, func(k weak.Pointer[badger.DB]) { syncers.Delete(k) }, k)
	}
	return g.(*groupSyncer)
}
