package node

import (
	"sync"
	"time"
)

// askerIdle is how long an idle asker waits for the next exchange.
const askerIdle = 30 * time.Second

// askers run the remote exchanges of bank queries on goroutines kept
// between queries. An exchange grows its goroutine's stack through
// libp2p, yamux and TLS, and a new goroutine for every exchange grew one
// from 2 KiB each time (runtime.copystack: 1.5% of a home node's CPU at
// one query in flight, BENCHMARKS.md).
type askers struct {
	jobs chan func()
	quit chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	spawned int // askers started, for tests
}

func newAskers() *askers {
	return &askers{jobs: make(chan func()), quit: make(chan struct{})}
}

// Go runs f on an idle asker, or on a new one when none is idle.
func (a *askers) Go(f func()) {
	select {
	case a.jobs <- f:
		return
	default:
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		go f()
		return
	}
	a.wg.Add(1)
	a.spawned++
	go a.run(f)
}

func (a *askers) run(f func()) {
	defer a.wg.Done()
	idle := time.NewTimer(askerIdle)
	defer idle.Stop()
	for {
		f()
		idle.Reset(askerIdle)
		select {
		case f = <-a.jobs:
		case <-idle.C:
			return
		case <-a.quit:
			return
		}
	}
}

// close ends the idle askers and waits for the busy ones; Go still runs
// what it is given after, on a goroutine of its own.
func (a *askers) close() {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.quit)
	}
	a.mu.Unlock()
	a.wg.Wait()
}
