package credit

import (
	"bytes"
	"crypto/ed25519"
	"testing"
)

// TestSignMessage checks that signMessage writes exactly crypto/ed25519's
// signature: receipts signed either way must verify and hash alike.
func TestSignMessage(t *testing.T) {
	for i := byte(0); i < 16; i++ {
		key := testKey(t, i)
		for _, n := range []int{0, 1, 63, 64, 1500, 4000} {
			msg := bytes.Repeat([]byte{i, byte(n)}, n)[:n]
			if got, want := signMessage(key, msg), ed25519.Sign(key, msg); !bytes.Equal(got, want) {
				t.Fatalf("key %d, %d-byte message: signature %x, crypto/ed25519 %x", i, n, got, want)
			}
		}
	}
}

// BenchmarkSign compares crypto/ed25519 with signMessage on a receipt-sized
// message, side by side in one run.
func BenchmarkSign(b *testing.B) {
	key := testKey(b, 7)
	msg := bytes.Repeat([]byte("ccnode/receipt/v1\n"), 120)
	b.Run("crypto-ed25519", func(b *testing.B) {
		for b.Loop() {
			ed25519.Sign(key, msg)
		}
	})
	b.Run("curve25519-voi", func(b *testing.B) {
		for b.Loop() {
			signMessage(key, msg)
		}
	})
}

// TestVerifyMessage: verifyMessage's and SignatureVerifier's verdicts are
// crypto/ed25519's, also in
// the cases where ed25519 implementations disagree (small-order keys and
// R, non-canonical encodings, S out of range).
func TestVerifyMessage(t *testing.T) {
	key := testKey(t, 9)
	pub := key.Public().(ed25519.PublicKey)
	msg := []byte("ccnode/query/v1\n{}")
	good := ed25519.Sign(key, msg)
	identity := make([]byte, 32)
	identity[0] = 1
	// y = p + 1, a non-canonical encoding of the point with y = 1.
	nonCanonical := append([]byte{0xee}, bytes.Repeat([]byte{0xff}, 30)...)
	nonCanonical = append(nonCanonical, 0x7f)
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
	v := NewSignatureVerifier(4)
	for name, c := range cases {
		want := len(c.pub) == ed25519.PublicKeySize && ed25519.Verify(c.pub, c.msg, c.sig)
		if got := verifyMessage(c.pub, c.msg, c.sig); got != want {
			t.Errorf("%s: verifyMessage %v, crypto/ed25519 %v", name, got, want)
		}
		for range 2 { // the second time from the expanded-key cache
			if got := v.Verify(c.pub, c.msg, c.sig); got != want {
				t.Errorf("%s: SignatureVerifier %v, crypto/ed25519 %v", name, got, want)
			}
		}
	}
}

// BenchmarkVerify compares crypto/ed25519.Verify with verifyMessage and
// SignatureVerifier (a signer seen before) on a receipt-sized message,
// side by side in one run.
func BenchmarkVerify(b *testing.B) {
	key := testKey(b, 7)
	pub := key.Public().(ed25519.PublicKey)
	msg := bytes.Repeat([]byte("ccnode/receipt/v1\n"), 120)
	sig := ed25519.Sign(key, msg)
	b.Run("crypto-ed25519", func(b *testing.B) {
		for b.Loop() {
			ed25519.Verify(pub, msg, sig)
		}
	})
	b.Run("curve25519-voi", func(b *testing.B) {
		for b.Loop() {
			verifyMessage(pub, msg, sig)
		}
	})
	b.Run("SignatureVerifier", func(b *testing.B) {
		v := NewSignatureVerifier(4)
		for b.Loop() {
			v.Verify(pub, msg, sig)
		}
	})
}
