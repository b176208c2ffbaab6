package credit

// DecodeCanonicalQuery decodes a signed query in exactly the layout of its
// canonical encoding (Query.CanonicalAndDigest, as the report protocol
// carries it: fields in declaration order, no insignificant space, strings
// of printable ASCII without escapes, times in UTC), by hand and in one
// pass that checks every byte against that layout, so no separate
// validation pass is needed. ok is false for anything else, well formed or
// not, which the caller decodes with encoding/json; where both accept,
// both give the same value (p2p's FuzzDecodeJSON holds them together).
// The decoded query does not share b's memory.
func DecodeCanonicalQuery(b []byte) (q Query, ok bool) {
	// The arena is made before the first []byte field, so that an empty
	// one ("") decodes, as encoding/json decodes it, to an empty slice and
	// not to nil.
	s := exportScanner{b: b, ok: true, arena: make([]byte, 0, 512)}
	s.query(&q)
	return q, s.ok && s.i == len(b) && q.canonicalUSCCs()
}

// DecodeCanonicalReceipt is DecodeCanonicalQuery for a receipt in its
// canonical form (LeafBytes), as an answer carries it.
func DecodeCanonicalReceipt(b []byte) (r Receipt, ok bool) {
	s := exportScanner{b: b, ok: true, arena: make([]byte, 0, 512)}
	s.receipt(&r)
	return r, s.ok && s.i == len(b) && r.Query.canonicalUSCCs()
}

// canonicalUSCCs reports whether the query's codes are what decoding them
// as JSON would give (USCC.UnmarshalText): valid and already in their
// parsed form. The layout scanner reads them as plain strings, so a code
// that is not is left to encoding/json, which refuses or rewrites it.
func (q *Query) canonicalUSCCs() bool {
	return validNormalUSCC(string(q.Subject)) && (q.Consent == nil || validNormalUSCC(string(q.Consent.Subject)))
}
