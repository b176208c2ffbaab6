package credit

import (
	"strconv"
	"unicode/utf8"
)

// maxQuoted is how much of an offending input an error message repeats.
const maxQuoted = 64

// Quote is s for an error message: Go-quoted (so control bytes and invalid
// UTF-8 are escaped) and cut to a short prefix, with the full length said.
// An error never echoes a whole field: a hostile 1 MiB value would be
// copied into every message, log line and response that carries it.
func Quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…(" + strconv.Itoa(len(s)) + " bytes)"
}
