package node

import (
	"runtime"
	"sync"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/credit/sigbatch"
)

// sigGate verifies the ed25519 signatures of concurrent requests: a
// signature that arrives while no other verification runs first lets the
// goroutines that are ready to run go ahead (runtime.Gosched), and is then
// verified together with those of them that reached the gate meanwhile, as
// one sigbatch batch (one multi-scalar multiplication: 2, 4 and 8
// signatures cost about 32, 22 and 17 µs each against 45 alone,
// BenchmarkVerify in credit/sigbatch); with nothing else to run, as at one
// request in flight, Gosched returns at once and the signature is verified
// alone. Those that arrive while a verification runs wait for it and are
// then verified together.
//
// The goroutine whose signature is first in a batch verifies the batch
// and then hands the next batch to the first of those waiting, so no
// caller verifies more than one batch and none waits for work that is
// not its own batch's.
//
// A batch uses the cofactored ed25519 equation, crypto/ed25519 the
// cofactorless one: they differ only for a signature the signer crafted
// with small-order components, which is still the signer's own.
type sigGate struct {
	v sigbatch.Verifier
	// one verifies a signature alone (see verifyOne).
	one     *credit.SignatureVerifier
	oneInit sync.Once

	mu      sync.Mutex
	busy    bool
	waiting []*sigWait
}

type sigWait struct {
	pub, msg, sig []byte
	ok            bool
	// lead: this waiter is to verify the next batch, not to read ok.
	lead bool
	done chan struct{}
}

// verify reports whether sig is pub's signature over msg.
func (g *sigGate) verify(pub, msg, sig []byte) bool {
	w := &sigWait{pub: pub, msg: msg, sig: sig}
	g.mu.Lock()
	if g.busy {
		w.done = make(chan struct{})
		g.waiting = append(g.waiting, w)
		g.mu.Unlock()
		<-w.done
		if !w.lead {
			return w.ok
		}
	} else {
		g.busy = true
		g.mu.Unlock()
		runtime.Gosched()
	}
	g.lead(w)
	return w.ok
}

// lead verifies w with every signature waiting now (taken off the list),
// then hands the gate on.
func (g *sigGate) lead(w *sigWait) {
	g.mu.Lock()
	batch := append([]*sigWait{w}, g.waiting...)
	g.waiting = nil
	g.mu.Unlock()
	if len(batch) == 1 {
		w.ok = g.verifyOne(w.pub, w.msg, w.sig)
	} else {
		b := g.v.NewBatch(len(batch))
		for _, x := range batch {
			b.Add(x.pub, x.msg, x.sig)
		}
		ok, _ := b.Verify()
		for i, x := range batch {
			x.ok = ok[i]
			if x != w {
				close(x.done)
			}
		}
	}
	g.handOff()
}

// handOff ends a verification: the first waiter, if any, leads the next
// batch; otherwise the gate is idle.
func (g *sigGate) handOff() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.waiting) == 0 {
		g.busy = false
		return
	}
	next := g.waiting[0]
	g.waiting = g.waiting[1:]
	next.lead = true
	close(next.done)
}

// sigKeys bounds the expanded public keys kept for verifyOne: the banks
// and regions of a consortium are a few hundred.
const sigKeys = 1024

// verifyOne verifies one signature, with crypto/ed25519's verdict, keeping
// each signer's key expanded across calls (credit.SignatureVerifier).
func (g *sigGate) verifyOne(pub, msg, sig []byte) bool {
	g.oneInit.Do(func() { g.one = credit.NewSignatureVerifier(sigKeys) })
	return g.one.Verify(pub, msg, sig)
}
