package audit

import (
	"crypto/ed25519"
	"fmt"
	"testing"
)

func batchChecks(n int) []sigCheck {
	checks := make([]sigCheck, n)
	for i := range checks {
		k := key(fmt.Sprintf("signer-%d", i%5))
		msg := []byte(fmt.Sprintf("message %d", i))
		checks[i] = sigCheck{pub: k.Public().(ed25519.PublicKey), msg: msg, sig: ed25519.Sign(k, msg)}
	}
	return checks
}

func TestBatchVerifier(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		tamper func([]sigCheck)
		bad    []int
	}{
		{"all good", 64, func([]sigCheck) {}, nil},
		{"one", 1, func([]sigCheck) {}, nil},
		{"one bad", 1, func(c []sigCheck) { c[0].msg = []byte("other") }, []int{0}},
		{"altered message", 64, func(c []sigCheck) { c[7].msg = []byte("other") }, []int{7}},
		{"wrong key", 64, func(c []sigCheck) { c[3].pub = c[4].pub }, []int{3}},
		{"swapped signatures", 64, func(c []sigCheck) { c[1].sig, c[2].sig = c[2].sig, c[1].sig }, []int{1, 2}},
		{"s not canonical", 64, func(c []sigCheck) {
			s := append([]byte(nil), c[9].sig...)
			s[63] |= 0xf0
			c[9].sig = s
		}, []int{9}},
		{"short signature", 64, func(c []sigCheck) { c[5].sig = c[5].sig[:10] }, []int{5}},
		{"bad key bytes", 64, func(c []sigCheck) { c[6].pub = make([]byte, 3) }, []int{6}},
		{"many bad", 200, func(c []sigCheck) {
			for i := 0; i < 200; i += 17 {
				c[i].msg = []byte("other")
			}
		}, []int{0, 17, 34, 51, 68, 85, 102, 119, 136, 153, 170, 187}},
		{"all bad", 20, func(c []sigCheck) {
			for i := range c {
				c[i].msg = []byte("other")
			}
		}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}},
	}
	var bv batchVerifier
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := batchChecks(tc.n)
			tc.tamper(c)
			ok := bv.verify(c)
			for i := range c {
				wantOK := true
				for _, b := range tc.bad {
					if b == i {
						wantOK = false
					}
				}
				if ok[i] != wantOK {
					t.Errorf("signature %d: ok=%v, want %v", i, ok[i], wantOK)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	c := batchChecks(128)
	b.Run("one-by-one", func(b *testing.B) {
		for b.Loop() {
			for _, s := range c {
				ed25519.Verify(s.pub, s.msg, s.sig)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(c))/1000, "µs/sig")
	})
	b.Run("batch", func(b *testing.B) {
		var bv batchVerifier
		for b.Loop() {
			bv.verify(c)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(c))/1000, "µs/sig")
	})
}
