// Package httplimit bounds what one HTTP listener holds at once: open
// connections (golang.org/x/net/netutil.LimitListener, with idle
// keep-alive connections closed while the listener is full, so that idle
// clients do not keep others out) and the request body bytes being read
// and handled at once (a budget that a request takes before its body is
// read and gives back when its handler returns). A body cannot be
// larger than MaxBodyBytes.
//
// It owns no routes and makes no decision about what a request asks.
package httplimit

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/net/netutil"
)

// Limits of one listener. Zero MaxConns or MaxInflightBytes is no limit.
type Limits struct {
	MaxConns         int
	MaxInflightBytes int64
	MaxBodyBytes     int64
	// Wait is how long a request waits for its share of MaxInflightBytes
	// before it is refused with Busy.
	Wait time.Duration
	// Busy answers a request refused for want of in-flight bytes (default:
	// 503 with Retry-After).
	Busy func(w http.ResponseWriter, r *http.Request)
}

// SmallBodyBytes is the declared body size up to which a request does not
// wait for the in-flight budget: a bank query is a few KiB, and the budget
// is held by large bodies for as long as their senders take to upload
// them, so a query behind them would wait on the slowest attacker. What
// small bodies hold at once stays bounded by MaxConns × SmallBodyBytes.
const SmallBodyBytes = 64 << 10

// MaxHeaderBytes bounds a request's header on a limited listener: the
// in-flight budget counts bodies, and net/http's default (1 MiB a
// connection) would let headers alone hold a gigabyte on 1,000
// connections. Bank and ledger calls carry a few short headers.
const MaxHeaderBytes = 64 << 10

// Apply bounds srv, which will serve ln: it wraps srv.Handler, sets
// srv.ConnState and srv.MaxHeaderBytes, and returns the listener to serve
// on.
func Apply(srv *http.Server, ln net.Listener, l Limits) net.Listener {
	if l.MaxBodyBytes > 0 || l.MaxInflightBytes > 0 {
		srv.Handler = l.handler(srv.Handler)
	}
	srv.MaxHeaderBytes = MaxHeaderBytes
	if l.MaxConns <= 0 {
		return ln
	}
	g := &connGuard{max: l.MaxConns, conns: map[net.Conn]http.ConnState{}}
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		g.track(c, s)
		if prev != nil {
			prev(c, s)
		}
	}
	return netutil.LimitListener(ln, l.MaxConns)
}

// connGuard closes idle keep-alive connections while the listener is
// full: LimitListener holds further connections in the accept queue until
// one closes, and an idle one would otherwise keep its slot for the whole
// idle timeout.
type connGuard struct {
	max   int
	mu    sync.Mutex
	conns map[net.Conn]http.ConnState
}

func (g *connGuard) track(c net.Conn, s http.ConnState) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch s {
	case http.StateNew, http.StateActive:
		g.conns[c] = s
		if s == http.StateNew && len(g.conns) >= g.max {
			for o, os := range g.conns {
				if os == http.StateIdle {
					o.Close()
				}
			}
		}
	case http.StateIdle:
		if len(g.conns) >= g.max {
			c.Close()
		}
		g.conns[c] = s
	case http.StateHijacked, http.StateClosed:
		delete(g.conns, c)
	}
}

func (l Limits) handler(next http.Handler) http.Handler {
	b := &budget{free: l.MaxInflightBytes}
	busy := l.Busy
	if busy == nil {
		busy = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "busy reading other requests; retry", http.StatusServiceUnavailable)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if l.MaxBodyBytes > 0 {
			r.Body = http.MaxBytesReader(w, r.Body, l.MaxBodyBytes)
		}
		if l.MaxInflightBytes <= 0 || r.Body == nil || r.Body == http.NoBody ||
			(r.ContentLength >= 0 && r.ContentLength <= SmallBodyBytes) {
			next.ServeHTTP(w, r)
			return
		}
		// What the body may hold: its declared length, or the most a
		// body may be when it declares none (chunked).
		n := r.ContentLength
		if n < 0 || (l.MaxBodyBytes > 0 && n > l.MaxBodyBytes) {
			n = l.MaxBodyBytes
		}
		if n <= 0 || n > l.MaxInflightBytes {
			n = min(max(n, 1), l.MaxInflightBytes)
		}
		ctx, cancel := context.WithTimeout(r.Context(), l.Wait)
		err := b.acquire(ctx, n)
		cancel()
		if err != nil {
			// Unread, the body is discarded by net/http or the
			// connection closed: either way its bytes are not held here.
			w.Header().Set("Connection", "close")
			busy(w, r)
			return
		}
		defer b.release(n)
		next.ServeHTTP(w, r)
	})
}

// budget is a byte semaphore that serves the smallest waiter first, not
// the first come: a bank query of a few KiB is not held behind a queue of
// megabyte bodies (a flood of them would otherwise starve it). A large
// body waits while smaller ones keep arriving, and is refused once its
// wait is over.
type budget struct {
	mu      sync.Mutex
	free    int64
	waiters []*waiter
}

type waiter struct {
	n     int64
	ready chan struct{} // closed once granted
}

var errBusy = errors.New("httplimit: no room for the request's body")

func (b *budget) acquire(ctx context.Context, n int64) error {
	b.mu.Lock()
	if n <= b.free {
		b.free -= n
		b.mu.Unlock()
		return nil
	}
	w := &waiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	if i := slices.Index(b.waiters, w); i >= 0 {
		b.waiters = slices.Delete(b.waiters, i, i+1)
		b.mu.Unlock()
		return errBusy
	}
	b.mu.Unlock()
	b.release(n) // granted meanwhile: give it back
	return errBusy
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.free += n
	for len(b.waiters) > 0 {
		i := 0
		for j, w := range b.waiters {
			if w.n < b.waiters[i].n {
				i = j
			}
		}
		w := b.waiters[i]
		if w.n > b.free {
			return // the smallest does not fit: none does
		}
		b.free -= w.n
		b.waiters = slices.Delete(b.waiters, i, i+1)
		close(w.ready)
	}
}
