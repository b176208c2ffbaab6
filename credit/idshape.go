package credit

import "strings"

// idShape is the shape of an identifier: its length bounds and the bytes
// allowed first and after. Identifiers are checked several times per
// query on both sides of an exchange; a loop over bytes costs a fraction
// of a regular expression's match (TestIDShapesMatchPatterns holds the
// two to the same answers).
type idShape struct {
	min, max    int
	first, rest idBytes
}

// idBytes is a set of bytes: a-z and 0-9, A-Z when upper, and punct.
type idBytes struct {
	upper bool
	punct string
}

func (c idBytes) has(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || c.upper && b >= 'A' && b <= 'Z' || strings.IndexByte(c.punct, b) >= 0
}

func (sh idShape) match(s string) bool {
	if len(s) < sh.min || len(s) > sh.max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := sh.rest
		if i == 0 {
			c = sh.first
		}
		if !c.has(s[i]) {
			return false
		}
	}
	return true
}

var (
	// networkShape keeps an origin a valid note key name (no spaces, no
	// '+') and splittable back into network and region (no '/').
	networkShape  = idShape{1, 64, idBytes{true, ""}, idBytes{true, "._-"}}
	bankIDShape   = idShape{2, 64, idBytes{false, ""}, idBytes{false, "_.-"}}
	docIDShape    = idShape{8, 64, idBytes{true, "_-"}, idBytes{true, "_-"}}
	regionIDShape = idShape{1, 32, idBytes{false, ""}, idBytes{false, "_-"}}
)
