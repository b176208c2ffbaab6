package credit

import (
	"encoding/base64"
	"time"
)

// DecodeExportEntry decodes one receipt line of an export and the receipt
// it holds: DecodeExportLine followed by DecodeReceipt, in a fraction of
// their time. lineErr is DecodeExportLine's error (nothing more was
// decoded); receiptErr is DecodeReceipt's (the line itself was read).
//
// Lines as `ccnode receipts export` writes them (format version 1, see
// ExportFormat: fields in declaration order, no insignificant space,
// strings of printable ASCII without escapes, integers without sign or
// exponent, times in UTC) are decoded by hand in one pass, every byte
// checked against that grammar, so no separate validation pass is needed.
// Anything else, well formed or not, is decoded by encoding/json through
// DecodeExportLine and DecodeReceipt, so that what is accepted, what is
// refused and the error naming the field that is wrong are theirs.
// FuzzDecodeExportEntry holds the two paths to the same result.
//
// l.Receipt may share line's memory.
func DecodeExportEntry(line []byte) (l ExportLine, rc Receipt, lineErr, receiptErr error) {
	if l, rc, ok := fastExportEntry(line); ok {
		return l, rc, nil, nil
	}
	l, lineErr = DecodeExportLine(line)
	if lineErr != nil {
		return l, Receipt{}, lineErr, nil
	}
	rc, receiptErr = DecodeReceipt(l.Receipt)
	return l, rc, nil, receiptErr
}

// fastExportEntry decodes line when it is in the exact layout the export
// writer produces; ok is false for anything else.
func fastExportEntry(line []byte) (l ExportLine, rc Receipt, ok bool) {
	s := exportScanner{b: line, ok: true}
	s.lit(`{"index":`)
	l.Index = s.uint()
	s.lit(`,"receipt":`)
	start := s.i
	s.receipt(&rc)
	if !s.ok {
		return l, rc, false
	}
	// The scanner reads codes as plain strings; one that USCC's own
	// decoding would refuse or rewrite goes to encoding/json, which
	// gives its error.
	if !rc.Query.canonicalUSCCs() {
		return l, rc, false
	}
	l.Receipt = line[start:s.i]
	if s.has(`,"acks":`) {
		l.Acks = s.acks()
	}
	if s.has(`,"received_at":`) {
		if s.has("null") {
			l.ReceivedAt = nil
		} else {
			t := s.time()
			l.ReceivedAt = &t
		}
	}
	s.lit("}")
	return l, rc, s.ok && s.i == len(line)
}

// exportScanner reads the export writer's layout. Its methods do nothing
// once ok is false, so a decoder checks ok once at the end.
type exportScanner struct {
	b  []byte
	i  int
	ok bool
	// arena holds the decoded []byte fields of one line (keys,
	// signatures, digests: about 400 bytes) in one allocation.
	arena []byte
}

func (s *exportScanner) fail() { s.ok = false }

// has consumes lit when the input continues with it.
func (s *exportScanner) has(lit string) bool {
	if s.ok && len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// lit consumes lit, which must come next.
func (s *exportScanner) lit(lit string) {
	if !s.has(lit) {
		s.fail()
	}
}

// uint reads an unsigned integer of at most 18 digits (so it cannot
// overflow) without leading zeros.
func (s *exportScanner) uint() uint64 {
	if !s.ok {
		return 0
	}
	j := s.i
	var v uint64
	for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
		v = 10*v + uint64(s.b[j]-'0')
		j++
	}
	n := j - s.i
	if n == 0 || n > 18 || (n > 1 && s.b[s.i] == '0') {
		s.fail()
		return 0
	}
	s.i = j
	return v
}

func (s *exportScanner) int() int { return int(s.uint()) }

// str reads a string of printable ASCII without escapes, returning its
// contents (which share the input's memory).
func (s *exportScanner) str() []byte {
	if !s.ok || s.i >= len(s.b) || s.b[s.i] != '"' {
		s.fail()
		return nil
	}
	for j := s.i + 1; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			out := s.b[s.i+1 : j]
			s.i = j + 1
			return out
		case c < 0x20 || c >= 0x7f || c == '\\':
			s.fail()
			return nil
		}
	}
	s.fail()
	return nil
}

func (s *exportScanner) string() string { return string(s.str()) }

// bytes reads base64 as encoding/json does for a []byte, null as nil.
func (s *exportScanner) bytes() []byte {
	if s.has("null") {
		return nil
	}
	enc := s.str()
	if !s.ok {
		return nil
	}
	if len(enc) == 0 {
		// encoding/json gives an empty, not a nil, slice for "".
		return []byte{}
	}
	n := base64.StdEncoding.DecodedLen(len(enc))
	if cap(s.arena)-len(s.arena) < n {
		s.arena = make([]byte, 0, max(512, n))
	}
	start := len(s.arena)
	out := s.arena[start : start+n]
	n, err := base64.StdEncoding.Decode(out, enc)
	if err != nil {
		s.fail()
		return nil
	}
	s.arena = s.arena[:start+n]
	return out[:n:n]
}

func (s *exportScanner) categories() []Category {
	if s.has("null") {
		return nil
	}
	s.lit("[")
	out := make([]Category, 0, 4)
	if s.has("]") {
		return out
	}
	for s.ok {
		out = append(out, category(s.str()))
		if !s.has(",") {
			break
		}
	}
	s.lit("]")
	return out
}

// category returns the known categories without allocating.
func category(b []byte) Category {
	for _, c := range allCategories {
		if string(c) == string(b) {
			return c
		}
	}
	return Category(b)
}

func purpose(b []byte) Purpose {
	for _, p := range [...]Purpose{PurposeLoanApplication, PurposeCreditReview, PurposePostLoan, PurposeGuarantee} {
		if string(p) == string(b) {
			return p
		}
	}
	return Purpose(b)
}

// time reads "YYYY-MM-DDTHH:MM:SS[.fraction]Z" with 1 to 9 fraction
// digits, refusing what time.Time's UnmarshalJSON refuses (a day the month
// does not have, hour 24, second 60).
func (s *exportScanner) time() time.Time {
	b := s.str()
	if !s.ok {
		return time.Time{}
	}
	const layout = len("2006-01-02T15:04:05Z")
	if len(b) < layout || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[len(b)-1] != 'Z' {
		s.fail()
		return time.Time{}
	}
	num := func(b []byte) int {
		v := 0
		for _, c := range b {
			if c < '0' || c > '9' {
				s.fail()
				return 0
			}
			v = 10*v + int(c-'0')
		}
		return v
	}
	year, month, day := num(b[0:4]), num(b[5:7]), num(b[8:10])
	hour, minute, sec := num(b[11:13]), num(b[14:16]), num(b[17:19])
	ns := 0
	if frac := b[19 : len(b)-1]; len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			s.fail()
			return time.Time{}
		}
		ns = num(frac[1:])
		for range 10 - len(frac) {
			ns *= 10
		}
	}
	if !s.ok || month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) || hour > 23 || minute > 59 || sec > 59 {
		s.fail()
		return time.Time{}
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, ns, time.UTC)
}

func daysIn(m time.Month, year int) int {
	if m == time.February {
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	}
	return 31 - int((m-1)%7%2)
}

func (s *exportScanner) consent(g *ConsentGrant) {
	s.lit(`{"v":`)
	g.Version = s.int()
	s.lit(`,"id":`)
	g.ID = s.string()
	s.lit(`,"uscc":`)
	g.Subject = USCC(s.str())
	s.lit(`,"grantee":`)
	g.Grantee = BankID(s.str())
	s.lit(`,"categories":`)
	g.Categories = s.categories()
	s.lit(`,"purpose":`)
	g.Purpose = purpose(s.str())
	s.lit(`,"valid_from":`)
	g.ValidFrom = s.time()
	s.lit(`,"valid_until":`)
	g.ValidUntil = s.time()
	s.lit(`,"region":`)
	g.Region = RegionID(s.str())
	s.lit(`,"signed_at":`)
	g.SignedAt = s.time()
	s.lit(`,"enterprise_cert":[`)
	for i := 0; s.ok && !s.has("]"); i++ {
		if i > 0 {
			s.lit(",")
		}
		g.EnterpriseCert = append(g.EnterpriseCert, s.bytes())
	}
	s.lit(`,"enterprise_sig":`)
	g.EnterpriseSig = s.bytes()
	s.lit(`,"region_sig":`)
	g.RegionSig = s.bytes()
	s.lit("}")
}

func (s *exportScanner) query(q *Query) {
	s.lit(`{"v":`)
	q.Version = s.int()
	s.lit(`,"bank":`)
	q.Bank = BankID(s.str())
	s.lit(`,"uscc":`)
	q.Subject = USCC(s.str())
	s.lit(`,"categories":`)
	q.Categories = s.categories()
	s.lit(`,"purpose":`)
	q.Purpose = purpose(s.str())
	s.lit(`,"consent_id":`)
	q.ConsentID = s.string()
	s.lit(`,"consent":`)
	if !s.has("null") {
		q.Consent = new(ConsentGrant)
		s.consent(q.Consent)
	}
	s.lit(`,"nonce":`)
	q.Nonce = s.string()
	s.lit(`,"time":`)
	q.Time = s.time()
	s.lit(`,"sig":`)
	q.Sig = s.bytes()
	s.lit("}")
}

func (s *exportScanner) receipt(r *Receipt) {
	s.lit(`{"v":`)
	r.Version = s.int()
	s.lit(`,"id":`)
	r.ID = s.string()
	s.lit(`,"query":`)
	s.query(&r.Query)
	s.lit(`,"requester":`)
	r.Requester = RegionID(s.str())
	s.lit(`,"answerer":`)
	r.Answerer = RegionID(s.str())
	s.lit(`,"categories":`)
	r.Categories = s.categories()
	s.lit(`,"report_digest":`)
	r.ReportDigest = s.bytes()
	s.lit(`,"record_count":`)
	r.RecordCount = s.int()
	s.lit(`,"time":`)
	r.Time = s.time()
	s.lit(`,"sig":`)
	r.Sig = s.bytes()
	s.lit("}")
}

func (s *exportScanner) ack(a *Ack) {
	s.lit(`{"v":`)
	a.Version = s.int()
	s.lit(`,"receipt_id":`)
	a.ReceiptID = s.string()
	s.lit(`,"receipt_digest":`)
	a.ReceiptDigest = s.bytes()
	s.lit(`,"requester":`)
	a.Requester = RegionID(s.str())
	s.lit(`,"time":`)
	a.Time = s.time()
	s.lit(`,"sig":`)
	a.Sig = s.bytes()
	s.lit("}")
}

func (s *exportScanner) acks() []Ack {
	if s.has("null") {
		return nil
	}
	s.lit("[")
	if s.has("]") {
		return []Ack{}
	}
	out := make([]Ack, 0, 1)
	for s.ok {
		out = append(out, Ack{})
		s.ack(&out[len(out)-1])
		if !s.has(",") {
			break
		}
	}
	s.lit("]")
	return out
}
