package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
)

// TestSigGate: concurrent signatures, some forged, some under a wrong or
// malformed key, each get exactly crypto/ed25519's verdict, whether they
// were verified alone or in a batch.
func TestSigGate(t *testing.T) {
	pubA, keyA, _ := ed25519.GenerateKey(rand.Reader)
	pubB, keyB, _ := ed25519.GenerateKey(rand.Reader)
	type sig struct {
		pub, msg, sig []byte
		want          bool
	}
	var sigs []sig
	for i := 0; i < 400; i++ {
		msg := []byte(fmt.Sprintf("query %d", i))
		s := sig{pub: pubA, msg: msg, sig: ed25519.Sign(keyA, msg), want: true}
		switch i % 7 {
		case 1:
			s.pub, s.sig = pubB, ed25519.Sign(keyB, msg)
		case 2: // signed by B, checked against A
			s.sig, s.want = ed25519.Sign(keyB, msg), false
		case 3: // message changed after signing
			s.msg, s.want = []byte(fmt.Sprintf("query %d!", i)), false
		case 4: // malformed key
			s.pub, s.want = pubA[:31], false
		}
		sigs = append(sigs, s)
	}
	var g sigGate
	for round := 0; round < 3; round++ {
		got := make([]bool, len(sigs))
		var wg sync.WaitGroup
		for i := range sigs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i] = g.verify(sigs[i].pub, sigs[i].msg, sigs[i].sig)
			}()
		}
		wg.Wait()
		for i, s := range sigs {
			if got[i] != s.want {
				t.Fatalf("round %d, signature %d: verified %v, want %v", round, i, got[i], s.want)
			}
		}
	}
	// Idle again: a lone signature is verified on its own.
	if !g.verify(sigs[0].pub, sigs[0].msg, sigs[0].sig) || g.verify(sigs[2].pub, sigs[2].msg, sigs[2].sig) {
		t.Fatal("a lone signature got the wrong verdict")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.busy || len(g.waiting) != 0 {
		t.Fatalf("gate not idle after use: busy %v, %d waiting", g.busy, len(g.waiting))
	}
}
