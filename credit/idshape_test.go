package credit

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// TestIDShapesMatchPatterns: each idShape gives the answer of the regular
// expression it replaced, on edge cases and on random strings over the
// bytes that matter.
func TestIDShapesMatchPatterns(t *testing.T) {
	for _, c := range []struct {
		name    string
		shape   idShape
		pattern string
	}{
		{"network", networkShape, `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`},
		{"bank id", bankIDShape, `^[a-z0-9][a-z0-9_.-]{1,63}$`},
		{"id", docIDShape, `^[A-Za-z0-9_-]{8,64}$`},
		{"region id", regionIDShape, `^[a-z0-9][a-z0-9_-]{0,31}$`},
	} {
		re := regexp.MustCompile(c.pattern)
		check := func(s string) {
			if got, want := c.shape.match(s), re.MatchString(s); got != want {
				t.Errorf("%s %q: %v, the pattern says %v", c.name, s, got, want)
			}
		}
		for _, s := range []string{"", "a", "A", "-", "_a", ".a", "a.", "ab", "440300", "bank-a", "consent-0001",
			"Aa_-.09", strings.Repeat("a", 31), strings.Repeat("a", 32), strings.Repeat("a", 33), strings.Repeat("a", 63),
			strings.Repeat("a", 64), strings.Repeat("a", 65), "a\n", "a b", "aé", "a/b", "a+b", "a\x00"} {
			check(s)
		}
		const alphabet = "aZ09_-.+/ \né\x00"
		r := rand.New(rand.NewPCG(1, 2))
		for range 20000 {
			b := make([]byte, r.IntN(70))
			for i := range b {
				b[i] = alphabet[r.IntN(len(alphabet))]
			}
			check(string(b))
		}
	}
}
