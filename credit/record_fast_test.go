package credit

import (
	"fmt"
	"regexp"
	"testing"
	"time"
)

// The hand-written checks of Normalize must accept exactly what the
// time.Parse and regexp versions they replaced accepted.

func TestParseDateAgreesWithTimeParse(t *testing.T) {
	old := func(s string) bool {
		tm, err := time.Parse(time.DateOnly, s)
		return err == nil && len(s) == 10 && tm.Year() >= 1949
	}
	var cases []string
	for _, y := range []int{0, 1900, 1948, 1949, 1999, 2000, 2024, 2025, 2100, 9999} {
		for m := 0; m <= 13; m++ {
			for d := 0; d <= 32; d++ {
				cases = append(cases, fmt.Sprintf("%04d-%02d-%02d", y, m, d))
			}
		}
	}
	cases = append(cases, "", "2024-1-01", "2024/01/01", "2024-01-1x", "+024-01-01", "2024-01-01 ", "２０２4-01-01")
	for _, s := range cases {
		got, err := parseDate(s)
		if (err == nil) != old(s) {
			t.Fatalf("%q: accepted %v, time.Parse %v", s, err == nil, old(s))
		}
		if err == nil {
			want, _ := time.Parse(time.DateOnly, s)
			if !got.Equal(want) {
				t.Fatalf("%q: %v, want %v", s, got, want)
			}
		}
	}
}

func TestValidateSourceAgreesWithPattern(t *testing.T) {
	re := regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)
	cases := []string{"a", "sz-tax", "0", "_a", "-a", ".a", "a_b.c-d", "A", "sz tax", "é", "a\n",
		"a234567890123456789012345678901234567890123456789012345678901234",
		"a2345678901234567890123456789012345678901234567890123456789012345"}
	for _, s := range cases {
		if got, want := ValidateSource(s) == nil, re.MatchString(s); got != want {
			t.Errorf("%q: accepted %v, pattern %v", s, got, want)
		}
	}
}

func FuzzParseDate(f *testing.F) {
	f.Add("2024-02-29")
	f.Add("1949-01-01")
	f.Fuzz(func(t *testing.T, s string) {
		tm, perr := time.Parse(time.DateOnly, s)
		want := perr == nil && len(s) == 10 && tm.Year() >= 1949
		if _, err := parseDate(s); (err == nil) != want {
			t.Fatalf("%q: accepted %v, time.Parse %v", s, err == nil, want)
		}
	})
}
