package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"

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
	release, err := db.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	if len(subject) != usccLen {
		return nil, fmt.Errorf("store: report: subject %q is not a USCC", subject)
	}
	var from, to uint32 = 0, ^uint32(0)
	if f.From != "" {
		if from, err = packDate(f.From); err != nil {
			return nil, fmt.Errorf("store: report: from: %w", err)
		}
	}
	if f.To != "" {
		if to, err = packDate(f.To); err != nil {
			return nil, fmt.Errorf("store: report: to: %w", err)
		}
	}
	var ords []int
	for _, c := range f.Categories {
		o := c.Ordinal()
		if o < 0 {
			return nil, fmt.Errorf("store: report: unknown category %q", c)
		}
		ords = append(ords, o)
	}
	slices.Sort(ords)
	ords = slices.Compact(ords)

	prefix := make([]byte, 0, recKeyLen)
	prefix = append(append(prefix, prefixRecord), subject...)
	txn := db.bdb.NewTransaction(false)
	defer txn.Discard()
	// Values are read in the loop: with prefetching, Badger v4.9.6 starts a
	// goroutine per item and a report is five times slower.
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()

	out := make([]credit.Record, 0, 256)
	dec := newDecoder()
	scan := func(seek []byte, within []byte) error {
		for it.Seek(seek); it.ValidForPrefix(within); it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) != recKeyLen {
				return fmt.Errorf("%w: record key %x", ErrCorrupt, k)
			}
			d := binary.BigEndian.Uint32(k[1+usccLen+1:])
			if d < from || d > to {
				if len(ords) > 0 && d > to {
					return nil // keys of one category are in date order
				}
				continue
			}
			out = append(out, credit.Record{})
			rec := &out[len(out)-1]
			if err := item.Value(func(v []byte) error { return dec.add(k, v, subject, rec) }); err != nil {
				return err
			}
		}
		return nil
	}
	if len(ords) == 0 {
		if err := scan(prefix, prefix); err != nil {
			return nil, fmt.Errorf("store: report: %w", err)
		}
	} else {
		for _, o := range ords {
			within := append(bytes.Clone(prefix), byte(o))
			seek := binary.BigEndian.AppendUint32(bytes.Clone(within), from)
			if err := scan(seek, within); err != nil {
				return nil, fmt.Errorf("store: report: %w", err)
			}
		}
	}
	dec.finish(out)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
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
		dec := newDecoder()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			k := item.Key()
			if len(k) != recKeyLen {
				return fmt.Errorf("%w: record key %x", ErrCorrupt, k)
			}
			var rec [1]credit.Record
			dec.attrs = nil // the callback may keep the record
			if err := item.Value(func(v []byte) error { return dec.add(k, v, credit.USCC(k[1:1+usccLen]), &rec[0]) }); err != nil {
				return err
			}
			dec.finish(rec[:])
			if err := fn(rec[0]); err != nil {
				return err
			}
		}
		return nil
	})
}
