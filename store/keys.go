package store

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cespare/xxhash/v2"

	"github.com/prdcredit/ccnode/credit"
)

// Key prefixes owned by this package (see the package doc).
const (
	prefixRecord   = 'R'
	prefixIdentity = 'I'
	prefixSubject  = 'U'
	prefixStats    = 'S'
	prefixProgress = 'P'
	prefixMeta     = 'M'
)

const (
	usccLen    = 18
	idLen      = 16 // identity digest truncated: 128 bits are ample against collisions
	dateLen    = 4
	recKeyLen  = 1 + usccLen + 1 + dateLen + idLen
	idKeyLen   = 1 + usccLen + idLen
	idValLen   = 1 + dateLen + 8
	subjKeyLen = 1 + usccLen
	valueV1    = 1 // first byte of a record value: encoding version
)

// ErrCorrupt is returned, wrapped, when stored bytes do not decode or a
// checksum over a table block or value does not match: the database was
// changed outside this package. After a checksum mismatch the store
// refuses reports (DB.Corruption) until it is reopened.
var ErrCorrupt = errors.New("corrupt record store")

// Entry is a normalised record encoded for the store: its keys, value and
// what the statistics need. Encoding is pure and runs in the import's
// parallel workers so that the single writer only writes.
type Entry struct {
	RecKey   []byte // R | uscc | category | date | identity
	IDKey    []byte // I | uscc | identity
	Value    []byte // version | source | source id | attrs
	Hash     uint64 // of Value, to tell an unchanged duplicate from a correction
	Category int    // ordinal
	Source   string
}

// Encode turns a normalised record into an Entry. The record must have
// passed credit.Record.Normalize.
func Encode(r *credit.Record) (Entry, error) {
	var e Entry
	if err := EncodeInto(&e, r, nil); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// EncodeInto is Encode that appends the keys and value to buf (which may be
// nil) so a worker can encode a whole batch into one allocation.
func EncodeInto(e *Entry, r *credit.Record, buf []byte) error {
	ord, d, id, err := keyParts(r)
	if err != nil {
		return err
	}
	start := len(buf)
	buf = append(buf, prefixRecord)
	buf = append(buf, r.Subject...)
	buf = append(buf, byte(ord))
	buf = binary.BigEndian.AppendUint32(buf, d)
	buf = append(buf, id[:idLen]...)
	mid := len(buf)
	buf = append(buf, prefixIdentity)
	buf = append(buf, r.Subject...)
	buf = append(buf, id[:idLen]...)
	vstart := len(buf)
	buf = appendValue(buf, r)
	e.RecKey = buf[start:mid:mid]
	e.IDKey = buf[mid:vstart:vstart]
	e.Value = buf[vstart:len(buf):len(buf)]
	e.Hash = xxhash.Sum64(e.Value)
	e.Category = ord
	e.Source = r.Source
	return nil
}

// keyParts checks a normalised record and returns what its keys are made
// of: category ordinal, packed date and identity digest.
func keyParts(r *credit.Record) (ord int, date uint32, id [32]byte, err error) {
	if len(r.Subject) != usccLen {
		return 0, 0, id, fmt.Errorf("subject %q: want a normalised USCC", r.Subject)
	}
	ord = r.Category.Ordinal()
	if ord < 0 {
		return 0, 0, id, fmt.Errorf("category %q: not in the vocabulary", r.Category)
	}
	if date, err = packDate(r.Date); err != nil {
		return 0, 0, id, err
	}
	return ord, date, r.Identity(), nil
}

func appendValue(b []byte, r *credit.Record) []byte {
	b = append(b, valueV1)
	b = binary.AppendUvarint(b, uint64(len(r.Source)))
	b = append(b, r.Source...)
	b = binary.AppendUvarint(b, uint64(len(r.SourceID)))
	b = append(b, r.SourceID...)
	return append(b, r.Attrs...)
}

// packDate encodes YYYY-MM-DD in four bytes that sort as the dates do.
func packDate(d credit.Date) (uint32, error) {
	s := string(d)
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return 0, fmt.Errorf("date %q: want YYYY-MM-DD", s)
	}
	var n [3]uint32
	for i, f := range [3]string{s[0:4], s[5:7], s[8:10]} {
		for j := 0; j < len(f); j++ {
			c := f[j]
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("date %q: want YYYY-MM-DD", s)
			}
			n[i] = n[i]*10 + uint32(c-'0')
		}
	}
	return n[0]<<16 | n[1]<<8 | n[2], nil
}

func unpackDate(b []byte) credit.Date { return credit.Date(appendDate(nil, b)) }

func appendDate(out, b []byte) []byte {
	v := binary.BigEndian.Uint32(b)
	y, m, d := v>>16, (v>>8)&0xff, v&0xff
	return append(out,
		byte('0'+y/1000%10), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10%10), byte('0'+m%10), '-',
		byte('0'+d/10%10), byte('0'+d%10))
}

// recordKeyFromIndex rebuilds the record key an identity entry points at.
func recordKeyFromIndex(idKey, idVal []byte) []byte {
	k := make([]byte, 0, recKeyLen)
	k = append(k, prefixRecord)
	k = append(k, idKey[1:1+usccLen]...)
	k = append(k, idVal[:1+dateLen]...)
	return append(k, idKey[1+usccLen:]...)
}

func indexValue(e *Entry) []byte {
	v := make([]byte, 0, idValLen)
	v = append(v, e.RecKey[1+usccLen:1+usccLen+1+dateLen]...)
	return binary.BigEndian.AppendUint64(v, e.Hash)
}

func subjectKey(u []byte) []byte {
	k := make([]byte, 0, subjKeyLen)
	return append(append(k, prefixSubject), u...)
}

var (
	statsTotalsKey = []byte{prefixStats, 't'}
	statsCatPrefix = []byte{prefixStats, 'c'}
	statsSrcPrefix = []byte{prefixStats, 's'}
)

func statsCatKey(ord int) []byte { return []byte{prefixStats, 'c', byte(ord)} }
func statsSrcKey(src string) []byte {
	return append([]byte{prefixStats, 's'}, src...)
}

// progressKey names an import input by a digest of its identity string.
func progressKey(input string) []byte {
	h := sha256.Sum256([]byte(input))
	return append([]byte{prefixProgress}, h[:]...)
}

var allCats = credit.AllCategories()

// sourceOfValue returns the source department stored in a record value.
func sourceOfValue(val []byte) (string, error) {
	if len(val) < 2 || val[0] != valueV1 {
		return "", ErrCorrupt
	}
	n, w := binary.Uvarint(val[1:])
	if w <= 0 || uint64(len(val)-1-w) < n {
		return "", ErrCorrupt
	}
	return string(val[1+w : 1+w+int(n)]), nil
}
