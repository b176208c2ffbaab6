package credit

import (
	"bytes"
	"crypto/sha256"
)

// Append forms of the signed messages, for a verifier of many documents
// (the auditor) that keeps the messages of a whole batch of signatures in
// one reused buffer: no copy of the document is normalised and no buffer
// is allocated per message. Each appends to dst exactly the bytes its
// counterpart in sigmsg.go returns (TestAppendSignedMessages) and, on an
// error, returns dst unchanged.

// appendSigned appends tag, a newline and d's canonical encoding.
func appendSigned(dst []byte, tag string, d interface {
	appendCanonical([]byte, encFlags) ([]byte, error)
}, f encFlags) ([]byte, error) {
	n := len(dst)
	dst = append(dst, tag...)
	dst = append(dst, '\n')
	out, err := d.appendCanonical(dst, f)
	if err != nil {
		return dst[:n], err
	}
	return out, nil
}

// AppendSignedMessage appends SignedMessage (what the bank's signature
// covers) to dst.
func (q *Query) AppendSignedMessage(dst []byte) ([]byte, error) {
	return appendSigned(dst, tagQuery, q, encNormalized|encUnsigned)
}

// AppendSignedMessage appends SignedMessage (what the requesting region's
// signature covers) to dst.
func (a *Ack) AppendSignedMessage(dst []byte) ([]byte, error) {
	return appendSigned(dst, tagAck, a, encNormalized|encUnsigned)
}

// AppendSignedMessageAndDigest appends SignedMessage to dst and returns
// the receipt's Digest too, from the one encoding: the signed receipt
// differs from the signed message only in its last field, the signature.
func (r *Receipt) AppendSignedMessageAndDigest(dst []byte) (out []byte, digest [32]byte, err error) {
	n := len(dst)
	out, err = appendSigned(dst, tagReceipt, r, encNormalized|encUnsigned)
	if err != nil {
		return dst[:n], digest, err
	}
	// out ends with `,"sig":null}`; the digest covers the same bytes with
	// the signature in place of null.
	body := out[n+len(tagReceipt)+1 : len(out)-len("null}")]
	h := sha256.New()
	h.Write([]byte(tagReceiptDigest + "\n"))
	h.Write(body)
	var sig [128]byte
	h.Write(appendJSONBytes(sig[:0], r.Sig))
	h.Write([]byte("}"))
	h.Sum(digest[:0])
	return out, digest, nil
}

// LeafMatches reports whether leaf is r's canonical encoding (LeafBytes,
// the bytes the answering region logged), given msg, the signed message
// AppendSignedMessageAndDigest appended for r: the two hold the same bytes
// but for the signature, so nothing is encoded again.
func (r *Receipt) LeafMatches(msg, leaf []byte) bool {
	if len(msg) < len(tagReceipt)+1+len("null}") {
		return false
	}
	body := msg[len(tagReceipt)+1 : len(msg)-len("null}")]
	if !bytes.HasPrefix(leaf, body) {
		return false
	}
	var buf [128]byte
	rest := append(appendJSONBytes(buf[:0], r.Sig), '}')
	return bytes.Equal(leaf[len(body):], rest)
}

// AppendSignedMessageAndCommitment appends SignedMessage to dst and
// returns the Commitment of the consent document the query carries, from
// the one encoding: the signed query holds the document's canonical form.
// hasConsent is false (and commitment zero) when the query carries none.
func (q *Query) AppendSignedMessageAndCommitment(dst []byte) (out []byte, commitment [32]byte, hasConsent bool, err error) {
	n := len(dst)
	dst = append(dst, tagQuery...)
	dst = append(dst, '\n')
	out, cStart, cEnd, err := q.appendCanonicalSpan(dst, encNormalized|encUnsigned)
	if err != nil {
		return dst[:n], commitment, false, err
	}
	if q.Consent == nil {
		return out, commitment, false, nil
	}
	h := sha256.New()
	h.Write([]byte(tagConsentCommitment + "\n"))
	h.Write(out[cStart:cEnd])
	h.Sum(commitment[:0])
	return out, commitment, true, nil
}
