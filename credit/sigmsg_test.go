package credit

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// TestAppendSignedMessageAndDigest checks the one-encoding path against
// SignedMessage and Digest, for a signed receipt and for receipts whose
// signature is absent, empty or short.
func TestAppendSignedMessageAndDigest(t *testing.T) {
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
			msg, d, err := r.AppendSignedMessageAndDigest(nil)
			sameAsTwoEncodings(t, msg, d, err, r.SignedMessage, r.Digest)
		})
	}
}

// TestQueryCanonicalAndDigest: one encoding gives what canonicalJSON and
// Digest give, for a query as signed and one whose time and categories
// are not yet normalised.
func TestQueryCanonicalAndDigest(t *testing.T) {
	signed := exportReceipt(t).Query
	odd := signed
	odd.Time = odd.Time.In(time.FixedZone("CST", 8*3600))
	odd.Categories = append([]Category{}, odd.Categories...)
	slices.Reverse(odd.Categories)
	for name, q := range map[string]Query{"signed": signed, "not normalised": odd} {
		t.Run(name, func(t *testing.T) {
			b, d, err := q.CanonicalAndDigest()
			sameAsTwoEncodings(t, b, d, err, func() ([]byte, error) { return canonicalJSON(q.normalized()) }, q.Digest)
		})
	}
}

// sameAsTwoEncodings fails t unless the bytes and digest that one encoding
// gave (b, d, err) are what the two separate encodings give.
func sameAsTwoEncodings(t *testing.T, b []byte, d [32]byte, err error, bytesOf func() ([]byte, error), digestOf func() ([32]byte, error)) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	want, err := bytesOf()
	if err != nil {
		t.Fatal(err)
	}
	wantD, err := digestOf()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("bytes differ from the separate encoding:\n%s\n%s", b, want)
	}
	if d != wantD {
		t.Errorf("digest %x, the separate digest %x", d, wantD)
	}
}
