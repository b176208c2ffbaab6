package credit

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseUSCCRealCodes(t *testing.T) {
	// Codes published on the national enterprise credit information
	// publicity system for well-known Pearl River Delta companies.
	valid := []string{
		"91440300708461136T", // Shenzhen Tencent Computer Systems
		"914403001922038216", // Huawei Technologies, Shenzhen
		"91440101231243173M", // GAC Group, Guangzhou
		"91440400192548256N", // Gree Electric Appliances, Zhuhai
		"91330100799655058B", // Alibaba (China), Hangzhou
	}
	for _, s := range valid {
		u, err := ParseUSCC(s)
		if err != nil {
			t.Errorf("ParseUSCC(%q): %v", s, err)
			continue
		}
		if string(u) != s {
			t.Errorf("ParseUSCC(%q) = %q", s, u)
		}
	}
}

func TestParseUSCCRules(t *testing.T) {
	tests := []struct {
		in   string
		rule USCCRule
		pos  int
	}{
		{"9144030070846113", RuleLength, 0},
		{"91440300708461136T0", RuleLength, 0},
		{"91440300708461I36T", RuleCharset, 15},
		{"91440300708461136S", RuleCharset, 18},
		{"B1440300708461136T", RuleAuthority, 1},
		{"94440300708461136T", RuleEntityType, 2},
		{"9144A300708461136T", RuleDivision, 5},
		{"91990300708461136T", RuleDivision, 3},
		{"91440300708461136U", RuleCheck, 18},
		{"914403001922038217", RuleCheck, 18},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseUSCC(tc.in)
			var ue *USCCError
			if !errors.As(err, &ue) {
				t.Fatalf("ParseUSCC(%q) = %v, want a *USCCError", tc.in, err)
			}
			if !errors.Is(err, ErrInvalidUSCC) {
				t.Errorf("error does not match ErrInvalidUSCC")
			}
			if ue.Rule != tc.rule || ue.Position != tc.pos {
				t.Errorf("rule %s at %d, want %s at %d (%v)", ue.Rule, ue.Position, tc.rule, tc.pos, err)
			}
		})
	}
}

func TestParseUSCCNormalisesCase(t *testing.T) {
	u, err := ParseUSCC("91440300708461136t")
	if err != nil {
		t.Fatal(err)
	}
	if u != "91440300708461136T" {
		t.Fatalf("got %q", u)
	}
	if u.Division() != "440300" {
		t.Fatalf("division %q", u.Division())
	}
}

func TestCompleteUSCC(t *testing.T) {
	u, err := CompleteUSCC("91440300708461136")
	if err != nil || u != "91440300708461136T" {
		t.Fatalf("CompleteUSCC = %q, %v", u, err)
	}
	if _, err := CompleteUSCC("9144030070846113"); err == nil {
		t.Fatal("accepted 16 characters")
	}
}

func FuzzParseUSCC(f *testing.F) {
	for _, s := range []string{"91440300708461136T", "914403001922038216", "91440300708461136t", "", "0000000000000000000", "Y1440300708461136T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUSCC(s)
		if err != nil {
			var ue *USCCError
			if !errors.As(err, &ue) {
				t.Fatalf("error of wrong type: %v", err)
			}
			return
		}
		// A valid code is upper case, round-trips, and CompleteUSCC agrees
		// on its check character.
		again, err := ParseUSCC(string(u))
		if err != nil || again != u {
			t.Fatalf("re-parse of %q: %q, %v", u, again, err)
		}
		c, err := CompleteUSCC(string(u[:17]))
		if err != nil || c != u {
			t.Fatalf("CompleteUSCC(%q) = %q, %v", u[:17], c, err)
		}
	})
}

func BenchmarkParseUSCC(b *testing.B) {
	for b.Loop() {
		if _, err := ParseUSCC("91440300708461136T"); err != nil {
			b.Fatal(err)
		}
	}
}

// The tables ParseUSCC checks positions 1-4 with must say what the maps
// they are built from say.
func TestParseUSCCTablesAgreeWithMaps(t *testing.T) {
	for i := 0; i < len(usccAlphabet); i++ {
		for j := 0; j < len(usccAlphabet); j++ {
			a, e := usccAlphabet[i], usccAlphabet[j]
			first := []byte{a, e, '4', '4', '0', '3', '0', '0', '7', '0', '8', '4', '6', '1', '1', '3', '6'}
			_, err := ParseUSCC(string(append(first, checkChar(first))))
			types, known := entityTypes[a]
			want := USCCRule("")
			switch {
			case !known:
				want = RuleAuthority
			case !strings.ContainsRune(types, rune(e)):
				want = RuleEntityType
			}
			if got := ruleOf(err); got != want {
				t.Errorf("%c%c: rule %q, want %q", a, e, got, want)
			}
		}
	}
	for p := 0; p < 100; p++ {
		first := []byte(fmt.Sprintf("91%02d0300708461136", p))
		_, err := ParseUSCC(string(append(first, checkChar(first))))
		want := USCCRule("")
		if !provinces[fmt.Sprintf("%02d", p)] {
			want = RuleDivision
		}
		if got := ruleOf(err); got != want {
			t.Errorf("province %02d: rule %q, want %q", p, got, want)
		}
	}
}

func ruleOf(err error) USCCRule {
	var ue *USCCError
	if errors.As(err, &ue) {
		return ue.Rule
	}
	return ""
}

// FuzzValidNormalUSCC holds the one-pass check of an upper-case code to
// parseUSCC, which reports what is wrong with any other.
func FuzzValidNormalUSCC(f *testing.F) {
	for _, s := range []string{"91440300708461136T", "914403001922038216", "91440300708461136t", "", "0000000000000000000", "Y1440300708461136T", "9I440300708461136T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, lower, err := parseUSCC(s)
		if want := err == nil && !lower; validNormalUSCC(s) != want {
			t.Fatalf("%q: validNormalUSCC %v, parseUSCC says %v (%v)", s, !want, want, err)
		}
	})
}
