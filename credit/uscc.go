package credit

import (
	"errors"
	"fmt"
	"strings"
)

// usccAlphabet is the GB 32100-2015 character set: digits and upper-case
// letters without I, O, S, V and Z. A character's value is its index.
const usccAlphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"

// usccWeights are 3^(i-1) mod 31 for positions 1..17.
var usccWeights = [17]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}

var usccValue = func() (v [256]int8) {
	for i := range v {
		v[i] = -1
	}
	for i := 0; i < len(usccAlphabet); i++ {
		v[usccAlphabet[i]] = int8(i)
	}
	return v
}()

// entityTypes lists, per registration authority code (position 1), the
// entity-type codes (position 2) GB 32100-2015 assigns.
var entityTypes = map[byte]string{
	'1': "1239", // organisation establishment: organs, public institutions, mass organisations, other
	'2': "19",   // foreign affairs
	'3': "123459",
	'4': "19",
	'5': "1239", // civil affairs: social organisations, private non-enterprise units, foundations, other
	'6': "129",
	'7': "129",
	'8': "19",
	'9': "123", // market regulation: enterprises, individual businesses, farmers' cooperatives
	'A': "19",
	'N': "1239",
	'Y': "1",
}

// provinces are the valid first two digits of an administrative division
// code (GB/T 2260), plus 10 used for centrally registered bodies.
var provinces = map[string]bool{
	"10": true, "11": true, "12": true, "13": true, "14": true, "15": true,
	"21": true, "22": true, "23": true,
	"31": true, "32": true, "33": true, "34": true, "35": true, "36": true, "37": true,
	"41": true, "42": true, "43": true, "44": true, "45": true, "46": true,
	"50": true, "51": true, "52": true, "53": true, "54": true,
	"61": true, "62": true, "63": true, "64": true, "65": true,
	"71": true, "81": true, "82": true,
}

// USCC is a validated 18-character unified social credit code in upper case.
// The zero value is not a valid code; obtain one with ParseUSCC.
type USCC string

// USCCRule names the rule of GB 32100-2015 that a code broke.
type USCCRule string

// The rules ParseUSCC checks, in the order it checks them.
const (
	RuleLength     USCCRule = "length"
	RuleCharset    USCCRule = "charset"
	RuleAuthority  USCCRule = "registration-authority"
	RuleEntityType USCCRule = "entity-type"
	RuleDivision   USCCRule = "division-code"
	RuleCheck      USCCRule = "check-character"
)

// ErrInvalidUSCC is matched by every USCCError with errors.Is.
var ErrInvalidUSCC = errors.New("invalid USCC")

// USCCError says which rule an input broke and at which 1-based position.
type USCCError struct {
	Input    string
	Rule     USCCRule
	Position int // 0 when the rule is about the whole code
	Detail   string
}

func (e *USCCError) Error() string {
	if e.Position > 0 {
		return fmt.Sprintf("invalid USCC %s: %s at position %d: %s", Quote(e.Input), e.Rule, e.Position, e.Detail)
	}
	return fmt.Sprintf("invalid USCC %s: %s: %s", Quote(e.Input), e.Rule, e.Detail)
}

func (e *USCCError) Is(target error) bool { return target == ErrInvalidUSCC }

// entityTypeOK[a] has bit t-'0' set when entity type t (position 2)
// belongs to registration authority a (position 1); every character of the
// alphabet is within 64 of '0': entityTypes as a table, because
// every imported line checks its code and a map lookup per line showed in
// the import's profile.
var entityTypeOK = func() (t [256]uint64) {
	for a, types := range entityTypes {
		for i := 0; i < len(types); i++ {
			t[a] |= 1 << (types[i] - '0')
		}
	}
	return t
}()

// provinceOK is provinces indexed by the two digits' value.
var provinceOK = func() (t [100]bool) {
	for p := range provinces {
		t[int(p[0]-'0')*10+int(p[1]-'0')] = true
	}
	return t
}()

// ParseUSCC validates s as a unified social credit code. Lower-case letters
// are accepted and normalised; surrounding space is not.
func ParseUSCC(s string) (USCC, error) {
	if validNormalUSCC(s) {
		return USCC(s), nil
	}
	b, lower, err := parseUSCC(s)
	if err != nil {
		return "", err
	}
	if !lower {
		return USCC(s), nil // already normal: no copy
	}
	return USCC(b[:]), nil
}

// validNormalUSCC reports whether s is a valid code already in upper
// case: every imported line's code, checked in one pass over s without the
// copy and the error reporting of parseUSCC, which says what is wrong with
// any other.
func validNormalUSCC(s string) bool {
	if len(s) != 18 {
		return false
	}
	sum := 0
	for i := 0; i < 17; i++ {
		v := usccValue[s[i]]
		if v < 0 {
			return false
		}
		sum += int(v) * usccWeights[i]
	}
	for i := 2; i < 8; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	v := 31 - sum%31
	if v == 31 {
		v = 0
	}
	return entityTypeOK[s[0]]&(1<<(s[1]-'0')) != 0 &&
		provinceOK[int(s[2]-'0')*10+int(s[3]-'0')] &&
		s[17] == usccAlphabet[v]
}

// parseUSCC checks s and returns it in upper case; lower says whether that
// differs from s.
func parseUSCC(s string) (b [18]byte, lower bool, err error) {
	in := s
	if len(s) != 18 {
		return b, false, &USCCError{Input: in, Rule: RuleLength, Detail: fmt.Sprintf("want 18 characters, got %d bytes", len(s))}
	}
	for i := 0; i < 18; i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
			lower = true
		}
		if usccValue[c] < 0 {
			return b, false, &USCCError{Input: in, Rule: RuleCharset, Position: i + 1, Detail: fmt.Sprintf("%q is not one of %s", rune(s[i]), usccAlphabet)}
		}
		b[i] = c
	}
	if entityTypeOK[b[0]] == 0 {
		return b, false, &USCCError{Input: in, Rule: RuleAuthority, Position: 1, Detail: fmt.Sprintf("%q is not a registration authority code", rune(b[0]))}
	}
	if entityTypeOK[b[0]]&(1<<(b[1]-'0')) == 0 {
		return b, false, &USCCError{Input: in, Rule: RuleEntityType, Position: 2, Detail: fmt.Sprintf("%q is not an entity type of authority %q", rune(b[1]), rune(b[0]))}
	}
	for i := 2; i < 8; i++ {
		if b[i] < '0' || b[i] > '9' {
			return b, false, &USCCError{Input: in, Rule: RuleDivision, Position: i + 1, Detail: "division code must be six digits"}
		}
	}
	if !provinceOK[int(b[2]-'0')*10+int(b[3]-'0')] {
		return b, false, &USCCError{Input: in, Rule: RuleDivision, Position: 3, Detail: fmt.Sprintf("%s is not a province code", b[2:4])}
	}
	want := checkChar(b[:17])
	if b[17] != want {
		return b, false, &USCCError{Input: in, Rule: RuleCheck, Position: 18, Detail: fmt.Sprintf("got %q, want %q", rune(b[17]), rune(want))}
	}
	return b, lower, nil
}

// checkChar computes the 18th character from the first 17, which must all be
// in the alphabet.
func checkChar(first17 []byte) byte {
	sum := 0
	for i, c := range first17 {
		sum += int(usccValue[c]) * usccWeights[i]
	}
	v := 31 - sum%31
	if v == 31 {
		v = 0
	}
	return usccAlphabet[v]
}

// CompleteUSCC appends the check character to 17 valid leading characters and
// validates the result. Generators and tests use it to make valid codes.
func CompleteUSCC(first17 string) (USCC, error) {
	if len(first17) != 17 {
		return "", &USCCError{Input: first17, Rule: RuleLength, Detail: fmt.Sprintf("want 17 leading characters, got %d", len(first17))}
	}
	b := []byte(strings.ToUpper(first17))
	for i, c := range b {
		if usccValue[c] < 0 {
			return "", &USCCError{Input: first17, Rule: RuleCharset, Position: i + 1, Detail: fmt.Sprintf("%q is not one of %s", rune(c), usccAlphabet)}
		}
	}
	return ParseUSCC(string(append(b, checkChar(b))))
}

// Division is the six-digit administrative division code (positions 3-8) of
// the registering authority.
func (u USCC) Division() string {
	if len(u) != 18 {
		return ""
	}
	return string(u[2:8])
}

func (u USCC) String() string { return string(u) }

// UnmarshalText validates the code, so decoding JSON rejects bad codes.
func (u *USCC) UnmarshalText(b []byte) error {
	v, err := ParseUSCC(string(b))
	if err != nil {
		return err
	}
	*u = v
	return nil
}
