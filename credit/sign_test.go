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
