package credit

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"reflect"
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

// TestSignLeaf: one encoding gives the signature Sign gives and the bytes
// LeafBytes gives, for a receipt as built and one whose time and
// categories are not yet normalised.
func TestSignLeaf(t *testing.T) {
	key := testKey(t, 4)
	plain := exportReceipt(t)
	odd := plain
	odd.Time = odd.Time.In(time.FixedZone("CST", 8*3600))
	odd.Categories = []Category{Tax, Penalty}
	for name, r := range map[string]Receipt{"normalised": plain, "not normalised": odd} {
		t.Run(name, func(t *testing.T) {
			want := r
			if err := want.Sign(key); err != nil {
				t.Fatal(err)
			}
			wantLeaf, err := want.LeafBytes()
			if err != nil {
				t.Fatal(err)
			}
			got := r
			leaf, err := got.SignLeaf(key)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Sig, want.Sig) || !bytes.Equal(leaf, wantLeaf) {
				t.Fatalf("SignLeaf:\n%x\n%s\nSign and LeafBytes:\n%x\n%s", got.Sig, leaf, want.Sig, wantLeaf)
			}
			if err := got.Verify(key.Public().(ed25519.PublicKey)); err != nil {
				t.Fatal(err)
			}
		})
	}
	if _, err := plain.SignLeaf(key[:10]); err == nil {
		t.Fatal("a short key signed")
	}
}

// TestVerifyNamesQuery: the byte comparison agrees with comparing query
// digests, the signature is checked as VerifyWith checks it, and the leaf
// returned is LeafBytes.
func TestVerifyNamesQuery(t *testing.T) {
	key := testKey(t, 3)
	pub := key.Public().(ed25519.PublicKey)
	r := exportReceipt(t) // signed by testKey(t, 3)
	other := r.Query
	other.Nonce = "nonce-0002"
	longerNonce := r.Query
	longerNonce.Nonce = "nonce-00011"
	shifted := r.Query
	shifted.Time = shifted.Time.In(time.FixedZone("CST", 8*3600)) // the same query, not normalised
	for name, q := range map[string]Query{"its query": r.Query, "another nonce": other, "a longer nonce": longerNonce, "same query in another zone": shifted} {
		t.Run(name, func(t *testing.T) {
			qc, qd, err := q.CanonicalAndDigest()
			if err != nil {
				t.Fatal(err)
			}
			rd, err := r.Query.Digest()
			if err != nil {
				t.Fatal(err)
			}
			names, leaf, err := r.VerifyNamesQuery(pub, qc, verifyMessage)
			if err != nil {
				t.Fatal(err)
			}
			if want, err := r.LeafBytes(); err != nil || !bytes.Equal(leaf, want) {
				t.Fatalf("leaf %s, want LeafBytes %s (%v)", leaf, want, err)
			}
			if names != (rd == qd) {
				t.Fatalf("names %v, digests equal %v", names, rd == qd)
			}
			// A prefix of the query is not the query.
			if names, _, _ := r.VerifyNamesQuery(pub, qc[:len(qc)-1], verifyMessage); names {
				t.Fatal("a prefix of the query named")
			}
		})
	}
	bad := r
	bad.RecordCount++
	if _, _, err := bad.VerifyNamesQuery(pub, nil, verifyMessage); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("changed receipt: %v", err)
	}
	if _, _, err := r.VerifyNamesQuery(testKey(t, 9).Public().(ed25519.PublicKey), nil, verifyMessage); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("another key: %v", err)
	}
}

// TestLeafDigest: a receipt's digest and acks made and checked from its
// LeafBytes are those made from the receipt.
func TestLeafDigest(t *testing.T) {
	r := exportReceipt(t)
	r.Sig = nil
	leaf, err := r.SignLeaf(testKey(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	d, err := r.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if LeafDigest(leaf) != d {
		t.Fatalf("LeafDigest %x, Digest %x", LeafDigest(leaf), d)
	}
	requester := testKey(t, 4)
	want, err := NewAck(&r, "gz", r.Time, requester)
	if err != nil {
		t.Fatal(err)
	}
	got, err := NewAckOfLeaf(&r, leaf, "gz", r.Time, requester)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("NewAckOfLeaf %+v (%v), NewAck %+v", got, err, want)
	}
	pub := requester.Public().(ed25519.PublicKey)
	if err := got.VerifyLeafWith(&r, leaf, pub, verifyMessage); err != nil {
		t.Fatal(err)
	}
	other := bytes.Replace(leaf, []byte(`"record_count":`), []byte(`"record_count":1`), 1)
	if err := got.VerifyLeafWith(&r, other, pub, verifyMessage); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("ack checked against another leaf: %v, want ErrBadSignature", err)
	}
}
