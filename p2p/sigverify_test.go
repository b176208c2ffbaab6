package p2p

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

// TestVerifyOneMatchesStdlib: verifyOne's verdict is crypto/ed25519's,
// also for the edge cases where ed25519 implementations disagree (small-
// order keys and R, non-canonical encodings, S out of range).
func TestVerifyOneMatchesStdlib(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	msg := []byte("ccnode/query/v1\n{}")
	good := ed25519.Sign(key, msg)
	identity := make([]byte, 32)
	identity[0] = 1
	// y = p + 1, a non-canonical encoding of the point with y = 1.
	nonCanonical := []byte{0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}
	zeroS := append(append([]byte{}, identity...), make([]byte, 32)...)
	highS := append([]byte{}, good...)
	highS[63] |= 0xf0
	cases := map[string]struct{ pub, msg, sig []byte }{
		"good":                       {pub, msg, good},
		"other message":              {pub, []byte("x"), good},
		"identity key, identity R":   {identity, msg, zeroS},
		"non-canonical key":          {nonCanonical, msg, zeroS},
		"non-canonical R":            {identity, msg, append(append([]byte{}, nonCanonical...), make([]byte, 32)...)},
		"S out of range":             {pub, msg, highS},
		"short signature":            {pub, msg, good[:63]},
		"short key":                  {pub[:31], msg, good},
		"all-zero key and signature": {make([]byte, 32), msg, make([]byte, 64)},
	}
	var g sigGate
	for name, c := range cases {
		want := len(c.pub) == ed25519.PublicKeySize && ed25519.Verify(c.pub, c.msg, c.sig)
		for range 2 { // the second time from the expanded-key cache
			if got := g.verifyOne(c.pub, c.msg, c.sig); got != want {
				t.Errorf("%s: verifyOne %v, crypto/ed25519 %v", name, got, want)
			}
		}
	}
}

// BenchmarkVerifyOne compares crypto/ed25519.Verify with verifyOne for a
// signer seen before (a bank or region), side by side in one run.
func BenchmarkVerifyOne(b *testing.B) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 1500)
	sig := ed25519.Sign(key, msg)
	b.Run("crypto-ed25519", func(b *testing.B) {
		for b.Loop() {
			ed25519.Verify(pub, msg, sig)
		}
	})
	b.Run("voi-expanded", func(b *testing.B) {
		var g sigGate
		for b.Loop() {
			g.verifyOne(pub, msg, sig)
		}
	})
}
