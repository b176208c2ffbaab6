package node

import (
	"sync"
	"sync/atomic"
	"testing"
)

// Exchanges given one after another run on one asker; exchanges given
// while every asker is busy get a new one, so none waits for another;
// close waits for the busy askers, and what is given after still runs.
func TestAskers(t *testing.T) {
	a := newAskers()
	for range 5 {
		done := make(chan struct{})
		a.Go(func() { close(done) })
		<-done
		// The asker is idle again once it waits for the next job: until
		// then Go may start another, which the count below allows.
		for !idle(a) {
		}
	}
	if a.spawned != 1 {
		t.Fatalf("five exchanges one after another started %d askers, want 1", a.spawned)
	}
	release := make(chan struct{})
	var started sync.WaitGroup
	var done atomic.Int32
	started.Add(3)
	for range 3 {
		a.Go(func() { started.Done(); <-release; done.Add(1) })
	}
	started.Wait() // all three run at once: none waited for a busy asker
	finished := make(chan struct{})
	go func() { a.close(); close(finished) }()
	close(release)
	<-finished
	if n := done.Load(); n != 3 {
		t.Fatalf("close returned with %d of 3 exchanges finished", n)
	}
	ran := make(chan struct{})
	a.Go(func() { close(ran) })
	<-ran
}

// idle reports whether an asker waits for a job: a send succeeds.
func idle(a *askers) bool {
	noop := make(chan struct{})
	select {
	case a.jobs <- func() { close(noop) }:
		<-noop
		return true
	default:
		return false
	}
}
