// Package sigbatch verifies many ed25519 signatures together, at a fraction
// of the cost of verifying them one by one, and still says exactly which of
// them fail.
//
// ccnode's auditor checks three signatures per receipt (the bank's on the
// query, the answering region's on the receipt, the requesting region's on
// its acknowledgement) over millions of receipts, and a regional node checks
// the signatures of concurrent requests; both hand their signatures to a
// Batch. Signers are few (a bank or a region signs many documents), so a
// Verifier keeps the decoded public keys for every batch it makes.
//
// The package owns only the arithmetic of verification: it knows nothing of
// what was signed, and it never decides what a failed signature means.
package sigbatch

import (
	"crypto/ed25519"
	"sync"
	"sync/atomic"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// Verifier makes batches and keeps, for all of them, the public keys it
// has decoded and expanded. The zero value is ready to use; a Verifier is
// safe for concurrent use and must not be copied after first use.
//
// A batch is checked by curve25519-voi's batch verifier: with random
// 128-bit weights z_i (from crypto/rand, so unpredictable to whoever made
// the signatures) it tests the single equation
//
//	[8]( Σ z_i·R_i + Σ (z_i·k_i)·A_i − (Σ z_i·s_i)·B ) = 0
//
// by one multi-scalar multiplication. When the equation fails, the batch
// is split until the bad signatures are found, each finally checked on its
// own with crypto/ed25519, so that exactly the bad ones are reported and a
// signature is reported good only when the batch equation or
// crypto/ed25519 accepts it.
//
// The batch equation is the cofactored one (RFC 8032 permits either);
// crypto/ed25519 is cofactorless. The two differ only for signatures
// crafted with small-order components, which only the signer can make:
// such a signature is still the signer's own.
type Verifier struct {
	keys  sync.Map     // string(pub) -> *voi.ExpandedPublicKey, or nil when not a point
	nkeys atomic.Int64 // entries in keys
}

// MaxKeys bounds the keys a Verifier keeps, so that signatures under ever
// new keys cannot grow its memory; keys past it are decoded for each batch.
const MaxKeys = 1 << 14

// Batch collects signatures to verify together. It is not safe for
// concurrent use; make one per goroutine (they may share a Verifier).
type Batch struct {
	v      *Verifier
	checks []check
	bv     *voi.BatchVerifier // reused between Verify calls
}

type check struct {
	pub, msg, sig []byte
}

// NewBatch returns an empty batch with room for n signatures.
func (v *Verifier) NewBatch(n int) *Batch {
	return &Batch{v: v, checks: make([]check, 0, n), bv: voi.NewBatchVerifierWithCapacity(n)}
}

// Add queues a signature sig by pub over msg. The slices are kept, not
// copied, until Verify returns: the caller must not change them meanwhile.
// Keys and signatures of the wrong length are accepted here and reported
// as failed by Verify.
func (b *Batch) Add(pub, msg, sig []byte) {
	b.checks = append(b.checks, check{pub, msg, sig})
}

// Len is the number of signatures queued.
func (b *Batch) Len() int { return len(b.checks) }

// Reset empties the batch for reuse, keeping its memory.
func (b *Batch) Reset() {
	clear(b.checks) // drop the references to the caller's bytes
	b.checks = b.checks[:0]
}

// Verify checks every queued signature and reports, in the order they were
// added, whether each verifies; all is true when every one does. The batch
// keeps its signatures: Reset it before reusing it.
func (b *Batch) Verify() (ok []bool, all bool) {
	ok = make([]bool, len(b.checks))
	b.verifyInto(b.checks, ok)
	all = true
	for _, o := range ok {
		all = all && o
	}
	return ok, all
}

// bisectBelow is the batch size under which a failed batch is verified
// one signature at a time rather than split again.
const bisectBelow = 8

// verifyInto verifies checks into ok. A batch that fails is split in two
// and each half tried again, so a few bad signatures among many cost a few
// small batches, not a one-by-one pass over all.
func (b *Batch) verifyInto(checks []check, ok []bool) {
	if len(checks) == 0 {
		return
	}
	if len(checks) >= 2 && b.batch(checks) {
		for i := range ok {
			ok[i] = true
		}
		return
	}
	if len(checks) < bisectBelow {
		for i, c := range checks {
			ok[i] = len(c.pub) == ed25519.PublicKeySize && ed25519.Verify(c.pub, c.msg, c.sig)
		}
		return
	}
	h := len(checks) / 2
	b.verifyInto(checks[:h], ok[:h])
	b.verifyInto(checks[h:], ok[h:])
}

// batch reports whether the batch equation holds for checks; false when
// any signature or key cannot even be decoded.
func (b *Batch) batch(checks []check) bool {
	b.bv.Reset()
	for _, c := range checks {
		if len(c.pub) != ed25519.PublicKeySize || len(c.sig) != ed25519.SignatureSize {
			return false
		}
		k := b.v.expanded(c.pub)
		if k == nil {
			return false
		}
		b.bv.AddExpanded(k, c.msg, c.sig)
	}
	return b.bv.VerifyBatchOnly(nil) // nil: weights from crypto/rand
}

// expanded returns pub decoded and expanded (with its precomputed
// multiples), or nil when pub is not a point.
func (v *Verifier) expanded(pub []byte) *voi.ExpandedPublicKey {
	if k, ok := v.keys.Load(string(pub)); ok {
		ek, _ := k.(*voi.ExpandedPublicKey)
		return ek
	}
	ek, err := voi.NewExpandedPublicKey(pub)
	if err != nil {
		ek = nil
	}
	if v.nkeys.Load() < MaxKeys {
		if _, loaded := v.keys.LoadOrStore(string(pub), ek); !loaded {
			v.nkeys.Add(1)
		}
	}
	return ek
}
