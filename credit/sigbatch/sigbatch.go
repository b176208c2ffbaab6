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
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
)

// Verifier makes batches and keeps, for all of them, the public keys it
// has decoded. The zero value is ready to use; a Verifier is safe for
// concurrent use and must not be copied after first use.
//
// A batch is checked, with random 128-bit weights z_i from a generator
// seeded by crypto/rand (so unpredictable to whoever made the
// signatures), by the single equation
//
//	[8]( Σ z_i·R_i + Σ_A (Σ_{i signed by A} z_i·k_i)·A − (Σ z_i·s_i)·B ) = 0
//
// computed by one multi-scalar multiplication (curve25519-voi's, Pippenger's
// method on large batches, AVX2 where the processor has it). The terms of
// one public key are summed first, so the multiplication has about one
// point per signature rather than two: signers are few. When the equation
// fails, the batch is split until the bad signatures are found, each
// finally checked on its own with crypto/ed25519, so that exactly the bad
// ones are reported.
//
// The batch equation is the cofactored one (RFC 8032 permits either);
// crypto/ed25519 is cofactorless. The two differ only for signatures
// crafted with small-order components, which only the signer can make:
// such a signature is still the signer's own. Keys and R values that are
// not canonical encodings, or keys of small order, are never accepted by
// the batch: their signatures go to crypto/ed25519.
type Verifier struct {
	keys  sync.Map     // string(pub) -> *curve.EdwardsPoint, or nil when not batchable
	nkeys atomic.Int64 // entries in keys
}

// MaxKeys bounds the keys a Verifier keeps, so that signatures under ever
// new keys cannot grow its memory; keys past it are decoded for each batch.
const MaxKeys = 1 << 14

// Batch collects signatures to verify together. It is not safe for
// concurrent use; make one per goroutine (they may share a Verifier).
type Batch struct {
	v      *Verifier
	checks []check                             // distinct signatures
	of     []int                               // for each Add, its index in checks
	seen   map[[ed25519.SignatureSize]byte]int // sig -> index in checks (a map keyed by an array copies no bytes to the heap)

	// Work space of the batch equation, kept between Verify calls.
	rs      []curve.EdwardsPoint
	zs      []scalar.Scalar
	points  []*curve.EdwardsPoint
	scalars []*scalar.Scalar
	keys    map[*curve.EdwardsPoint]*scalar.Scalar
}

type check struct {
	pub, msg, sig []byte
}

// NewBatch returns an empty batch with room for n signatures.
func (v *Verifier) NewBatch(n int) *Batch {
	return &Batch{v: v, checks: make([]check, 0, n), of: make([]int, 0, n), seen: make(map[[ed25519.SignatureSize]byte]int, n)}
}

// Add queues a signature sig by pub over msg. The slices are kept, not
// copied, until Verify returns: the caller must not change them meanwhile.
// Keys and signatures of the wrong length are accepted here and reported
// as failed by Verify.
//
// The same signature by the same key over the same message, added again
// (one bank query carried by the receipts of several regions, one receipt
// held by its answerer and its requester), is verified once.
func (b *Batch) Add(pub, msg, sig []byte) {
	if b.seen == nil {
		b.seen = map[[ed25519.SignatureSize]byte]int{}
	}
	// A signature of the wrong length fails anyway: it is not looked for
	// among the others.
	if len(sig) == ed25519.SignatureSize {
		key := [ed25519.SignatureSize]byte(sig)
		if i, ok := b.seen[key]; ok {
			if c := &b.checks[i]; bytes.Equal(c.pub, pub) && bytes.Equal(c.msg, msg) {
				b.of = append(b.of, i)
				return
			}
		} else {
			b.seen[key] = len(b.checks)
		}
	}
	b.of = append(b.of, len(b.checks))
	b.checks = append(b.checks, check{pub, msg, sig})
}

// Len is the number of signatures queued.
func (b *Batch) Len() int { return len(b.of) }

// Reset empties the batch for reuse, keeping its memory.
func (b *Batch) Reset() {
	clear(b.checks) // drop the references to the caller's bytes
	b.checks, b.of = b.checks[:0], b.of[:0]
	clear(b.seen)
}

// Verify checks every queued signature and reports, in the order they were
// added, whether each verifies; all is true when every one does. The batch
// keeps its signatures: Reset it before reusing it.
func (b *Batch) Verify() (ok []bool, all bool) {
	distinct := make([]bool, len(b.checks))
	b.verifyInto(b.checks, distinct)
	ok = make([]bool, len(b.of))
	all = true
	for i, j := range b.of {
		ok[i] = distinct[j]
		all = all && ok[i]
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
// any signature or key cannot be decoded or is not batchable.
func (b *Batch) batch(checks []check) bool {
	n := len(checks)
	if cap(b.rs) < n {
		b.rs = make([]curve.EdwardsPoint, n)
		b.zs = make([]scalar.Scalar, n)
	}
	rs, zs := b.rs[:n], b.zs[:n]
	points, scalars := b.points[:0], b.scalars[:0]
	if b.keys == nil {
		b.keys = map[*curve.EdwardsPoint]*scalar.Scalar{}
	}
	clear(b.keys)
	w := newWeights()
	var (
		zb         [32]byte
		digest     [64]byte
		rc         curve.CompressedEdwardsY
		s, k, t    scalar.Scalar
		bsum       scalar.Scalar
		h          = sha512.New()
		keyScalars = make([]scalar.Scalar, 0, 8)
	)
	for i, c := range checks {
		if len(c.pub) != ed25519.PublicKeySize || len(c.sig) != ed25519.SignatureSize {
			return false
		}
		a := b.v.point(c.pub)
		if a == nil {
			return false
		}
		if _, err := s.SetCanonicalBytes(c.sig[32:]); err != nil {
			return false
		}
		if _, err := rc.SetBytes(c.sig[:32]); err != nil || !rc.IsCanonicalVartime() {
			return false
		}
		if _, err := rs[i].SetCompressedY(&rc); err != nil {
			return false
		}
		h.Reset()
		h.Write(c.sig[:32])
		h.Write(c.pub)
		h.Write(c.msg)
		if _, err := k.SetBytesModOrderWide(h.Sum(digest[:0])); err != nil {
			return false
		}
		w.Read(zb[:16])
		if _, err := zs[i].SetCanonicalBytes(zb[:]); err != nil {
			return false
		}
		bsum.Add(&bsum, t.Mul(&zs[i], &s))
		ka := b.keys[a]
		if ka == nil {
			if len(keyScalars) == cap(keyScalars) {
				// Growing would move the scalars the map points to.
				keyScalars = make([]scalar.Scalar, 0, 2*cap(keyScalars))
			}
			keyScalars = append(keyScalars, scalar.Scalar{})
			ka = &keyScalars[len(keyScalars)-1]
			b.keys[a] = ka
		}
		ka.Add(ka, t.Mul(&zs[i], &k))
		points = append(points, &rs[i])
		scalars = append(scalars, &zs[i])
	}
	for a, ka := range b.keys {
		points = append(points, a)
		scalars = append(scalars, ka)
	}
	bsum.Neg(&bsum)
	points = append(points, curve.ED25519_BASEPOINT_POINT)
	scalars = append(scalars, &bsum)
	var p curve.EdwardsPoint
	p.MultiscalarMulVartime(scalars, points)
	b.points, b.scalars = points[:0], scalars[:0]
	clear(b.keys)
	// [8]p is the identity exactly when p is of small order.
	return p.IsSmallOrder()
}

// point returns pub decoded, or nil when pub is not a canonical encoding
// of a point outside the small subgroup (crypto/ed25519 then decides).
func (v *Verifier) point(pub []byte) *curve.EdwardsPoint {
	if k, ok := v.keys.Load(string(pub)); ok {
		a, _ := k.(*curve.EdwardsPoint)
		return a
	}
	var (
		c curve.CompressedEdwardsY
		a = new(curve.EdwardsPoint)
	)
	if _, err := c.SetBytes(pub); err != nil || !c.IsCanonicalVartime() {
		a = nil
	} else if _, err := a.SetCompressedY(&c); err != nil || a.IsSmallOrder() {
		a = nil
	}
	if v.nkeys.Load() < MaxKeys {
		if _, loaded := v.keys.LoadOrStore(string(pub), a); !loaded {
			v.nkeys.Add(1)
		}
	}
	return a
}

// newWeights returns a generator of the random weights, seeded from
// crypto/rand: the weights must be unpredictable to whoever made the
// signatures.
func newWeights() *mrand.ChaCha8 {
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		panic("sigbatch: crypto/rand failed: " + err.Error()) // crypto/rand does not fail on supported platforms
	}
	return mrand.NewChaCha8(seed)
}
