package sigbatch_test

import (
	"crypto/rand"
	"crypto/sha512"
	mrand "math/rand/v2"
	"sync"

	"filippo.io/edwards25519"
)

// handBatch is a batch verifier written on filippo.io/edwards25519, kept
// to compare against (BenchmarkVerify) and as an independent second
// opinion on the batch equation (TestReferenceAgrees). Unlike
// curve25519-voi it sums the terms of each public key before the
// multi-scalar multiplication, but its multiplication is Straus's method
// at every size where voi switches to Pippenger's for large batches.
type handBatch struct {
	keys sync.Map // string(pub) -> *edwards25519.Point, or nil
}

func (hb *handBatch) point(pub []byte) *edwards25519.Point {
	if v, ok := hb.keys.Load(string(pub)); ok {
		p, _ := v.(*edwards25519.Point)
		return p
	}
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		p = nil
	}
	hb.keys.Store(string(pub), p)
	return p
}

// verify reports whether the cofactored batch equation holds for sigs.
func (hb *handBatch) verify(sigs []sig) bool {
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		panic(err)
	}
	w := mrand.NewChaCha8(seed)
	var zb [32]byte
	bsum := edwards25519.NewScalar()
	scalars := make([]*edwards25519.Scalar, 0, len(sigs)+8)
	points := make([]*edwards25519.Point, 0, len(sigs)+8)
	type keyTerm struct {
		a   *edwards25519.Point
		sum *edwards25519.Scalar
	}
	keys := map[string]*keyTerm{}
	h := sha512.New()
	var digest [64]byte
	for _, c := range sigs {
		if len(c.pub) != 32 || len(c.sig) != 64 {
			return false
		}
		a := hb.point(c.pub)
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
