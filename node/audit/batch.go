package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	mrand "math/rand/v2"
	"sync"

	"filippo.io/edwards25519"
)

// sigCheck is one ed25519 signature to verify.
type sigCheck struct {
	pub, msg, sig []byte
}

// batchVerifier checks many ed25519 signatures at once: with random
// 128-bit weights z_i it tests the single equation
//
//	[8]( Σ z_i·R_i + Σ (z_i·k_i)·A_i − (Σ z_i·s_i)·B ) = 0
//
// by one multi-scalar multiplication, which shares the doublings of all
// the signatures and the work on each public key (a bank or a region signs
// many receipts). It costs about a quarter of one-by-one verification. When
// the equation fails, the batch is split until the bad signatures are
// found, each finally checked on its own with crypto/ed25519, so that the
// findings name exactly the bad ones.
//
// The batch equation is the cofactored one (as in ZIP 215); crypto/ed25519
// is cofactorless. The two differ only for signatures crafted with
// small-order components, which only the signer can make: such a
// signature is still the signer's, so the audit's conclusion holds.
type batchVerifier struct {
	keys sync.Map // string(pub) -> *edwards25519.Point, or nil when invalid
}

// rng returns a per-call generator of the random weights, seeded from
// crypto/rand: the weights must be unpredictable to whoever made the
// signatures.
func newWeights() *mrand.ChaCha8 {
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // crypto/rand does not fail on supported platforms
	}
	return mrand.NewChaCha8(seed)
}

func (bv *batchVerifier) point(pub []byte) *edwards25519.Point {
	if v, ok := bv.keys.Load(string(pub)); ok {
		p, _ := v.(*edwards25519.Point)
		return p
	}
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		bv.keys.Store(string(pub), (*edwards25519.Point)(nil))
		return nil
	}
	bv.keys.Store(string(pub), p)
	return p
}

// verify reports, per check, whether its signature verifies.
func (bv *batchVerifier) verify(checks []sigCheck) []bool {
	ok := make([]bool, len(checks))
	bv.verifyInto(checks, ok)
	return ok
}

// bisectBelow is the batch size under which a failed batch is verified
// one signature at a time rather than split again.
const bisectBelow = 8

// verifyInto verifies checks into ok. A batch that fails is split in two
// and each half tried again, so a few bad signatures among many cost a few
// small batches, not a one-by-one pass over all.
func (bv *batchVerifier) verifyInto(checks []sigCheck, ok []bool) {
	if len(checks) == 0 {
		return
	}
	if len(checks) >= 2 && bv.batch(checks) {
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
	bv.verifyInto(checks[:h], ok[:h])
	bv.verifyInto(checks[h:], ok[h:])
}

func (bv *batchVerifier) batch(checks []sigCheck) bool {
	w := newWeights()
	var zb [32]byte
	bsum := edwards25519.NewScalar()
	scalars := make([]*edwards25519.Scalar, 0, len(checks)+8)
	points := make([]*edwards25519.Point, 0, len(checks)+8)
	type keyTerm struct {
		a   *edwards25519.Point
		sum *edwards25519.Scalar
	}
	keys := map[string]*keyTerm{}
	h := sha512.New()
	var digest [64]byte
	for _, c := range checks {
		if len(c.pub) != ed25519.PublicKeySize || len(c.sig) != ed25519.SignatureSize {
			return false
		}
		a := bv.point(c.pub)
		if a == nil {
			return false
		}
		s, err := edwards25519.NewScalar().SetCanonicalBytes(c.sig[32:])
		if err != nil {
			return false
		}
		r, err := new(edwards25519.Point).SetBytes(c.sig[:32])
		if err != nil {
			return false
		}
		h.Reset()
		h.Write(c.sig[:32])
		h.Write(c.pub)
		h.Write(c.msg)
		k, err := edwards25519.NewScalar().SetUniformBytes(h.Sum(digest[:0]))
		if err != nil {
			return false
		}
		w.Read(zb[:16])
		z, err := edwards25519.NewScalar().SetCanonicalBytes(zb[:])
		if err != nil {
			return false
		}
		bsum.MultiplyAdd(z, s, bsum)
		kt := keys[string(c.pub)]
		if kt == nil {
			kt = &keyTerm{a: a, sum: edwards25519.NewScalar()}
			keys[string(c.pub)] = kt
		}
		kt.sum.MultiplyAdd(z, k, kt.sum)
		scalars = append(scalars, z)
		points = append(points, r)
	}
	for _, kt := range keys {
		scalars = append(scalars, kt.sum)
		points = append(points, kt.a)
	}
	scalars = append(scalars, edwards25519.NewScalar().Negate(bsum))
	points = append(points, edwards25519.NewGeneratorPoint())
	p := new(edwards25519.Point).VarTimeMultiScalarMult(scalars, points)
	p.MultByCofactor(p)
	return p.Equal(edwards25519.NewIdentityPoint()) == 1
}
