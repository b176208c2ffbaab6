package credit

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
