package credit

import (
	"bytes"
	"testing"
)

// TestSignedMessageAndDigest checks the one-encoding path against
// SignedMessage and Digest, for a signed receipt and for receipts whose
// signature is absent or empty.
func TestSignedMessageAndDigest(t *testing.T) {
	signed := exportReceipt(t)
	if err := signed.Sign(testKey(t, 3)); err != nil {
		t.Fatal(err)
	}
	unsigned := signed
	unsigned.Sig = nil
	empty := signed
	empty.Sig = []byte{}
	odd := signed
	odd.Sig = []byte{0xff, 0x00, 0x3e}
	for name, r := range map[string]Receipt{"signed": signed, "no signature": unsigned, "empty signature": empty, "short signature": odd} {
		t.Run(name, func(t *testing.T) {
			msg, d, err := r.SignedMessageAndDigest()
			if err != nil {
				t.Fatal(err)
			}
			wantMsg, err := r.SignedMessage()
			if err != nil {
				t.Fatal(err)
			}
			wantD, err := r.Digest()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(msg, wantMsg) {
				t.Errorf("message differs from SignedMessage:\n%s\n%s", msg, wantMsg)
			}
			if d != wantD {
				t.Errorf("digest %x, Digest says %x", d, wantD)
			}
		})
	}
}
