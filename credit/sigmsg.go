package credit

import "crypto/sha256"

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
