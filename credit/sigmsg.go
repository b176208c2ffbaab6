package credit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"strconv"
)

// The exact bytes each signature covers, for verifiers that check many
// signatures at once (the auditor batches them) instead of calling Verify
// one document at a time. ed25519.Verify(pub, msg, sig) on these is what
// the Verify methods do.

// SignedMessage is what the bank's signature on the query covers.
func (q *Query) SignedMessage() ([]byte, error) {
	n := q.normalized()
	n.Sig = nil
	return signingMessage(tagQuery, n)
}

// SignedMessage is what the answering region's signature covers.
func (r *Receipt) SignedMessage() ([]byte, error) {
	n := r.normalized()
	n.Sig = nil
	return signingMessage(tagReceipt, n)
}

// SignedMessage is what the requesting region's acknowledgement signature
// covers. It does not check that the ack names a receipt; Verify does.
func (a *Ack) SignedMessage() ([]byte, error) {
	n := *a
	n.Time, n.Sig = utc(n.Time), nil
	return signingMessage(tagAck, n)
}

// tagQueryDigest is the domain of Query.Digest (TestQueryCanonicalAndDigest
// holds the two together).
const tagQueryDigest = "ccnode/query-digest/v1"

// CanonicalAndDigest returns the signed query's canonical encoding (its
// signature included) and its Digest, from one encoding: a requesting node
// sends the one and checks receipts against the other.
func (q *Query) CanonicalAndDigest() (canonical []byte, digest [32]byte, err error) {
	b := make([]byte, 0, 4096)
	b = append(b, tagQueryDigest+"\n"...)
	b, err = q.appendCanonical(b, encNormalized)
	if err != nil {
		return nil, digest, err
	}
	return b[len(tagQueryDigest)+1:], sha256.Sum256(b), nil
}

// SignLeaf signs the receipt, as Sign does, and returns its LeafBytes,
// both from one encoding: the leaf differs from the signed message only in
// the tag before it and the signature in place of the null that ends it.
// An answering node signs every receipt and sends it in this form.
func (r *Receipt) SignLeaf(regionKey ed25519.PrivateKey) (leaf []byte, err error) {
	if len(regionKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("signing key: want %d bytes, got %d", ed25519.PrivateKeySize, len(regionKey))
	}
	msg, err := appendSigned(make([]byte, 0, 2048), tagReceipt, r, encNormalized|encUnsigned)
	if err != nil {
		return nil, err
	}
	sig := signMessage(regionKey, msg)
	r.Sig = sig
	return leafOf(msg, sig), nil
}

// leafOf is the LeafBytes of the receipt whose signed message (encoded
// unsigned: its signature null) is msg, with its signature sig.
func leafOf(msg, sig []byte) []byte {
	body := msg[len(tagReceipt)+1 : len(msg)-len("null}")]
	leaf := make([]byte, 0, len(body)+96)
	leaf = append(leaf, body...)
	leaf = appendJSONBytes(leaf, sig)
	return append(leaf, '}')
}

// VerifyNamesQuery is VerifyWith, and also reports whether the receipt
// names the query whose canonical encoding is query (as
// Query.CanonicalAndDigest returns it), from the one encoding of the
// receipt: the signed message holds the query in that same encoding, so
// comparing the bytes says what comparing the query digests would, without
// encoding and hashing the query again. It returns the receipt's LeafBytes
// too, made from the same encoding.
func (r *Receipt) VerifyNamesQuery(regionPub, query []byte, check SigCheck) (names bool, leaf []byte, err error) {
	msg, err := appendSigned(make([]byte, 0, 2048), tagReceipt, r, encNormalized|encUnsigned)
	if err == nil {
		err = checkSigned(check, regionPub, msg, r.Sig)
	}
	if err != nil {
		return false, nil, fmt.Errorf("receipt %s of region %s: %w", r.ID, r.Answerer, err)
	}
	leaf = leafOf(msg, r.Sig)
	// The query is the receipt's third field, after its version and id.
	var head [128]byte
	h := append(head[:0], tagReceipt+"\n"+`{"v":`...)
	h = strconv.AppendInt(h, int64(r.Version), 10)
	h = append(h, `,"id":`...)
	h = appendJSONString(h, r.ID)
	h = append(h, `,"query":`...)
	if !bytes.HasPrefix(msg, h) {
		return false, leaf, nil
	}
	// A JSON object ends where its closing brace is, so an encoded query
	// that starts with all of query, a whole object, is query: it must be
	// followed by the receipt's next field.
	rest := msg[len(h):]
	return bytes.HasPrefix(rest, query) && bytes.HasPrefix(rest[len(query):], []byte(`,"requester":`)), leaf, nil
}
