package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/prdcredit/ccnode/credit"
)

// Filter narrows a report. The zero value selects everything.
type Filter struct {
	Categories []credit.Category // none: all
	From, To   credit.Date       // inclusive; empty: unbounded
}

// Report returns the subject's records in report order: by category
// (credit.AllCategories order), then date, then identity.
func (db *DB) Report(ctx context.Context, subject credit.USCC, f Filter) ([]credit.Record, error) {
	s, err := db.OpenReport(subject, f)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out []credit.Record
	err = s.Each(ctx, 0, func(recs []credit.Record) error { out = recs; return nil })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ReportSnapshot reads one subject's records, in report order, from one
// read snapshot of the store, as often as its caller needs and in pieces
// of bounded size: an answering node digests a large slice in one pass and
// sends it in a second, and both see the same records without either
// holding the whole slice. Close releases the snapshot.
type ReportSnapshot struct {
	db       *DB
	subject  credit.USCC
	prefix   []byte
	ords     []int  // categories to seek one by one, sorted; nil: one scan
	wanted   uint64 // with one scan, the categories kept (bit per ordinal); 0: all
	from, to uint32
	txn      *badger.Txn
	release  func()
}

// OpenReport opens a snapshot of the subject's records that f selects.
func (db *DB) OpenReport(subject credit.USCC, f Filter) (*ReportSnapshot, error) {
	if len(subject) != usccLen {
		return nil, fmt.Errorf("store: report: subject %q is not a USCC", subject)
	}
	s := &ReportSnapshot{db: db, subject: subject, from: 0, to: ^uint32(0)}
	var err error
	if f.From != "" {
		if s.from, err = packDate(f.From); err != nil {
			return nil, fmt.Errorf("store: report: from: %w", err)
		}
	}
	if f.To != "" {
		if s.to, err = packDate(f.To); err != nil {
			return nil, fmt.Errorf("store: report: to: %w", err)
		}
	}
	for _, c := range f.Categories {
		o := c.Ordinal()
		if o < 0 {
			return nil, fmt.Errorf("store: report: unknown category %q", c)
		}
		s.ords = append(s.ords, o)
	}
	slices.Sort(s.ords)
	s.ords = slices.Compact(s.ords)
	if len(s.ords) > len(allCats)/2 {
		// Most categories: one scan of the subject that skips the others
		// costs less than a seek per category, each through every
		// memtable and level (BenchmarkReport/categories).
		for _, o := range s.ords {
			s.wanted |= 1 << o
		}
		s.ords = nil
	}
	s.prefix = append(append(make([]byte, 0, recKeyLen), prefixRecord), subject...)
	if s.release, err = db.acquire(); err != nil {
		return nil, err
	}
	if err := db.Corruption(); err != nil {
		s.release()
		return nil, fmt.Errorf("store: report %s: %w", subject, err)
	}
	s.txn = db.bdb.NewTransaction(false)
	return s, nil
}

// Close releases the snapshot; safe twice.
func (s *ReportSnapshot) Close() {
	if s.txn == nil {
		return
	}
	s.txn.Discard()
	s.txn = nil
	s.release()
}

// Each calls fn with the records in report order, in pieces whose stored
// size is about maxBytes (0: one piece, every record; with no records fn
// is called once with none). fn may keep the records it is given.
func (s *ReportSnapshot) Each(ctx context.Context, maxBytes int, fn func([]credit.Record) error) error {
	if s.txn == nil {
		return ErrClosed
	}
	db := s.db
	// A verification may have found the store corrupted since the
	// snapshot opened: answer from it no more.
	if err := db.Corruption(); err != nil {
		return fmt.Errorf("store: report %s: %w", s.subject, err)
	}
	if db.readSlots != nil {
		select {
		case db.readSlots <- struct{}{}:
			defer func() { <-db.readSlots }()
		case <-ctx.Done():
			return fmt.Errorf("store: report %s: waiting for a turn: %w", s.subject, ctx.Err())
		}
	}
	// Values are read in the loop: with prefetching, Badger v4.9.6 starts a
	// goroutine per item and a report is five times slower.
	it := s.txn.NewIterator(badger.IteratorOptions{Prefix: s.prefix})
	defer it.Close()

	buf := reportBufs.Get().(*reportBuf)
	defer buf.release()
	sent := false
	flush := func() error {
		sent = true
		recs := buf.records(s.subject)
		buf.reset()
		return fn(recs)
	}
	scan := func(seek []byte, within []byte) error {
		for it.Seek(seek); it.ValidForPrefix(within); it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) != recKeyLen {
				return fmt.Errorf("%w: record key %x", ErrCorrupt, k)
			}
			if s.wanted != 0 && s.wanted&(1<<k[1+usccLen]) == 0 {
				continue
			}
			d := binary.BigEndian.Uint32(k[1+usccLen+1:])
			if d < s.from || d > s.to {
				if len(s.ords) > 0 && d > s.to {
					return nil // keys of one category are in date order
				}
				continue
			}
			if err := item.Value(func(v []byte) error { return buf.add(k, v) }); err != nil {
				return err
			}
			if maxBytes > 0 && len(buf.strs)+len(buf.attrs) >= maxBytes {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if len(s.ords) == 0 {
		if err := scan(s.prefix, s.prefix); err != nil {
			return fmt.Errorf("store: report %s: %w", s.subject, db.noteCorrupt(err))
		}
	} else {
		for _, o := range s.ords {
			within := append(bytes.Clone(s.prefix), byte(o))
			seek := binary.BigEndian.AppendUint32(bytes.Clone(within), s.from)
			if err := scan(seek, within); err != nil {
				return fmt.Errorf("store: report %s: %w", s.subject, db.noteCorrupt(err))
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Before the last piece: a report cut short by a block Badger could
	// not read must fail, not answer with fewer records (readGuard).
	if db.guard != nil {
		if err := db.guard.check(s.prefix, prefixEnd(s.prefix)); err != nil {
			if errors.Is(err, ErrCorrupt) {
				db.markCorrupt(err)
			}
			return fmt.Errorf("store: report %s: %w", s.subject, err)
		}
	}
	if len(buf.recs) > 0 || !sent {
		return flush()
	}
	return nil
}

// prefixEnd is the first key after every key with prefix p (p does not
// end in 0xff: it is a record prefix and a USCC).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	end[len(end)-1]++
	return end
}

// reportBuf gathers a report while Badger's iterator holds the bytes, and
// is reused through reportBufs. Dates, source ids and attributes are
// appended to scratch buffers that stay warm in the CPU's caches from one
// report to the next; the report is then built with one copy of each into
// memory of exactly its size: a string for the dates and source ids, a
// byte slice for every attribute. New memory for the copies is not zeroed
// first (the runtime skips that for a slice that is made and filled by
// one copy), where attributes copied record by record into fresh chunks
// were written twice, once by the zeroing and once by the copy, in memory
// cold in the caches.
type reportBuf struct {
	strs    []byte      // per record: date (10 bytes), then source id
	attrs   []byte      // per record: attributes
	recs    []bufRecord // per record, in order
	sources map[string]string
	lastSrc string // the source of the record before, when the same as most often
}

type bufRecord struct {
	source   string
	strsEnd  int32 // end of this record's date and source id in strs
	attrsEnd int32 // end of this record's attributes in attrs
	cat      uint8
}

var reportBufs = sync.Pool{New: func() any {
	return &reportBuf{sources: make(map[string]string, 64)}
}}

// Bounds on what a pooled buffer keeps: one enterprise's largest report
// (thousands of records) fits; a buffer grown past them by some outsized
// subject is dropped rather than held forever.
const (
	maxPooledRecords = 1 << 16
	maxPooledBytes   = 16 << 20
	maxPooledSources = 4096
)

func (b *reportBuf) release() {
	if cap(b.recs) > maxPooledRecords || cap(b.attrs) > maxPooledBytes || cap(b.strs) > maxPooledBytes {
		return
	}
	if len(b.sources) > maxPooledSources {
		clear(b.sources)
	}
	b.reset()
	reportBufs.Put(b)
}

// reset forgets the records gathered.
func (b *reportBuf) reset() {
	clear(b.recs) // the source strings
	b.strs, b.attrs, b.recs, b.lastSrc = b.strs[:0], b.attrs[:0], b.recs[:0], ""
}

// add decodes one stored record (key and value) into the buffer.
func (b *reportBuf) add(key, val []byte) error {
	if len(key) != recKeyLen || len(val) < 3 || val[0] != valueV1 {
		return fmt.Errorf("%w: record key %x", ErrCorrupt, key)
	}
	ord := key[1+usccLen]
	if int(ord) >= len(allCats) {
		return fmt.Errorf("%w: category ordinal %d", ErrCorrupt, ord)
	}
	p := val[1:]
	n, w := binary.Uvarint(p)
	if w <= 0 || uint64(len(p)-w) < n {
		return fmt.Errorf("%w: record value %x", ErrCorrupt, key)
	}
	srcB := p[w : w+int(n)]
	p = p[w+int(n):]
	m, w := binary.Uvarint(p)
	if w <= 0 || uint64(len(p)-w) < m {
		return fmt.Errorf("%w: record value %x", ErrCorrupt, key)
	}
	// Departments are few: their names are made into strings once per
	// buffer, not once per record, and neighbouring records (one category)
	// mostly share one.
	src := b.lastSrc
	if string(srcB) != src {
		var ok bool
		if src, ok = b.sources[string(srcB)]; !ok {
			src = string(srcB)
			b.sources[src] = src
		}
		b.lastSrc = src
	}
	b.strs = appendDate(b.strs, key[1+usccLen+1:])
	b.strs = append(b.strs, p[w:w+int(m)]...)
	b.attrs = append(b.attrs, p[w+int(m):]...)
	b.recs = append(b.recs, bufRecord{source: src, strsEnd: int32(len(b.strs)), attrsEnd: int32(len(b.attrs)), cat: ord})
	return nil
}

// records builds the gathered records.
func (b *reportBuf) records(subject credit.USCC) []credit.Record {
	out := make([]credit.Record, len(b.recs))
	strs := string(b.strs)
	attrs := make([]byte, len(b.attrs))
	copy(attrs, b.attrs)
	var s, a int32
	for i, r := range b.recs {
		out[i] = credit.Record{
			Subject:  subject,
			Source:   r.source,
			SourceID: strs[s+dateLen*2+2 : r.strsEnd],
			Category: allCats[r.cat],
			Date:     credit.Date(strs[s : s+dateLen*2+2]),
			// Capped: a caller appending to one record's attributes must
			// not write over the next record's.
			Attrs: attrs[a:r.attrsEnd:r.attrsEnd],
		}
		s, a = r.strsEnd, r.attrsEnd
	}
	return out
}

// Stats are the store's counters.
type Stats struct {
	Records    int64                     `json:"records"`
	Subjects   int64                     `json:"subjects"`
	Categories map[credit.Category]int64 `json:"categories"`
	Sources    map[string]int64          `json:"sources"`
}

// Stats reads the counters; it costs a scan of a few dozen keys, not of
// the records.
func (db *DB) Stats(ctx context.Context) (Stats, error) {
	release, err := db.acquire()
	if err != nil {
		return Stats{}, err
	}
	defer release()
	return db.statsLocked(ctx)
}

// statsLocked is Stats for callers that hold acquire.
func (db *DB) statsLocked(ctx context.Context) (Stats, error) {
	s := Stats{Categories: map[credit.Category]int64{}, Sources: map[string]int64{}}
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixStats}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(v)%8 != 0 || len(v) == 0 {
				return fmt.Errorf("%w: stats key %q", ErrCorrupt, k)
			}
			n := int64(binary.BigEndian.Uint64(v))
			switch {
			case bytes.Equal(k, statsTotalsKey) && len(v) == 16:
				s.Records = n
				s.Subjects = int64(binary.BigEndian.Uint64(v[8:]))
			case bytes.HasPrefix(k, statsCatPrefix) && len(k) == 3 && int(k[2]) < len(allCats):
				if n != 0 {
					s.Categories[allCats[k[2]]] = n
				}
			case bytes.HasPrefix(k, statsSrcPrefix):
				if n != 0 {
					s.Sources[string(k[2:])] = n
				}
			default:
				return fmt.Errorf("%w: stats key %q", ErrCorrupt, k)
			}
		}
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("store: stats: %w", err)
	}
	return s, ctx.Err()
}

// Scan calls fn for every record in key order (subject, category, date).
// It is for exports and tests; a node never needs it.
func (db *DB) Scan(ctx context.Context, fn func(credit.Record) error) error {
	release, err := db.acquire()
	if err != nil {
		return err
	}
	defer release()
	return db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRecord}})
		defer it.Close()
		buf := reportBufs.Get().(*reportBuf)
		defer buf.release()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			k := item.Key()
			if len(k) != recKeyLen {
				return fmt.Errorf("%w: record key %x", ErrCorrupt, k)
			}
			buf.reset()
			if err := item.Value(func(v []byte) error { return buf.add(k, v) }); err != nil {
				return err
			}
			rec := buf.records(credit.USCC(k[1 : 1+usccLen]))
			if err := fn(rec[0]); err != nil {
				return err
			}
		}
		return nil
	})
}
