package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/prdcredit/ccnode/credit"
)

// WriteResult counts what a write did with its records.
type WriteResult struct {
	Inserted  int64 `json:"inserted"`  // new identities
	Replaced  int64 `json:"replaced"`  // corrections of a stored identity
	Unchanged int64 `json:"unchanged"` // duplicates of what was stored
}

// Add accumulates another result.
func (w *WriteResult) Add(o WriteResult) {
	w.Inserted += o.Inserted
	w.Replaced += o.Replaced
	w.Unchanged += o.Unchanged
}

// Progress is how far an import of one input is durable: every line
// before Offset (a byte offset in the decoded input) is stored, in the same
// transaction as this marker.
type Progress struct {
	Input    string `json:"input"`    // the input's identity (path, size, mtime, ...)
	Offset   int64  `json:"offset"`   // byte offset of the first line not yet stored
	Line     int64  `json:"line"`     // number of lines before Offset
	Rejected int64  `json:"rejected"` // rejected lines before Offset
	Done     bool   `json:"done"`     // the whole input is stored
}

// Put normalises nothing: recs must have passed credit.Record.Normalize.
// It encodes and writes them in one transaction (or several, if too large
// for one; each is atomic and replaying them is harmless).
func (db *DB) Put(ctx context.Context, recs []credit.Record) (WriteResult, error) {
	entries := make([]Entry, len(recs))
	var buf []byte
	for i := range recs {
		if err := EncodeInto(&entries[i], &recs[i], buf); err != nil {
			return WriteResult{}, fmt.Errorf("store: record %d: %w", i, err)
		}
		buf = nil
	}
	return db.Write(ctx, entries, nil)
}

// Write stores encoded entries and, if p is not nil, the progress marker,
// atomically: after a crash either all of them are stored or none.
// Statistics deltas are computed against the keys the transaction reads,
// so writing the same entries again changes nothing.
func (db *DB) Write(ctx context.Context, entries []Entry, p *Progress) (WriteResult, error) {
	release, err := db.acquire()
	if err != nil {
		return WriteResult{}, err
	}
	defer release()
	db.wmu.Lock()
	defer db.wmu.Unlock()
	return db.write(ctx, entries, p)
}

func (db *DB) write(ctx context.Context, entries []Entry, p *Progress) (WriteResult, error) {
	if err := ctx.Err(); err != nil {
		return WriteResult{}, err
	}
	for attempt := 0; ; attempt++ {
		res, err := db.writeTxn(entries, p)
		switch {
		case err == nil:
			return res, nil
		case errors.Is(err, badger.ErrTxnTooBig) && len(entries) > 1:
			// Split; only the last part carries the marker, so a crash
			// between parts replays the first part harmlessly.
			half := len(entries) / 2
			r1, err := db.write(ctx, entries[:half], nil)
			if err != nil {
				return r1, err
			}
			r2, err := db.write(ctx, entries[half:], p)
			r1.Add(r2)
			return r1, err
		case errors.Is(err, badger.ErrConflict) && attempt < 16:
			// Another package's transaction read a key we wrote; retry.
			continue
		default:
			return WriteResult{}, fmt.Errorf("store: write: %w", err)
		}
	}
}

type statDelta struct {
	records, subjects int64
	cats              [16]int64
	srcs              map[string]int64
}

func (db *DB) writeTxn(entries []Entry, p *Progress) (WriteResult, error) {
	txn := db.bdb.NewTransaction(true)
	defer txn.Discard()
	var res WriteResult
	d := statDelta{srcs: make(map[string]int64, 4)}
	var lastSubject []byte
	for i := range entries {
		e := &entries[i]
		item, err := txn.Get(e.IDKey)
		switch {
		case err == nil:
			var old [idValLen]byte
			v, err := item.ValueCopy(old[:0])
			if err != nil {
				return res, err
			}
			if len(v) != idValLen {
				return res, fmt.Errorf("%w: identity value %x", ErrCorrupt, e.IDKey)
			}
			oldPos := v[:1+dateLen]
			newPos := e.RecKey[1+usccLen : 1+usccLen+1+dateLen]
			if string(oldPos) == string(newPos) && binary.BigEndian.Uint64(v[1+dateLen:]) == e.Hash {
				res.Unchanged++
				continue
			}
			if string(oldPos) != string(newPos) {
				if err := txn.Delete(recordKeyFromIndex(e.IDKey, v)); err != nil {
					return res, err
				}
				if int(v[0]) >= len(allCats) {
					return res, fmt.Errorf("%w: identity value %x", ErrCorrupt, e.IDKey)
				}
				d.cats[v[0]]--
				d.cats[e.Category]++
			}
			res.Replaced++
		case errors.Is(err, badger.ErrKeyNotFound):
			res.Inserted++
			d.records++
			d.cats[e.Category]++
			d.srcs[e.Source]++
			subj := e.IDKey[1 : 1+usccLen]
			if string(subj) != string(lastSubject) {
				lastSubject = subj
				sk := subjectKey(subj)
				if _, err := txn.Get(sk); errors.Is(err, badger.ErrKeyNotFound) {
					d.subjects++
					if err := txn.Set(sk, nil); err != nil {
						return res, err
					}
				} else if err != nil {
					return res, err
				}
			}
		default:
			return res, err
		}
		if err := txn.Set(e.RecKey, e.Value); err != nil {
			return res, err
		}
		if err := txn.Set(e.IDKey, indexValue(e)); err != nil {
			return res, err
		}
	}
	if err := applyDelta(txn, &d); err != nil {
		return res, err
	}
	if p != nil {
		b, err := json.Marshal(p)
		if err != nil {
			return res, err
		}
		if err := txn.Set(progressKey(p.Input), b); err != nil {
			return res, err
		}
	}
	return res, txn.Commit()
}

func applyDelta(txn *badger.Txn, d *statDelta) error {
	add := func(key []byte, deltas ...int64) error {
		nonzero := false
		for _, x := range deltas {
			nonzero = nonzero || x != 0
		}
		if !nonzero {
			return nil
		}
		cur := make([]byte, 8*len(deltas))
		item, err := txn.Get(key)
		switch {
		case err == nil:
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(v) != len(cur) {
				return fmt.Errorf("%w: stats key %q", ErrCorrupt, key)
			}
			copy(cur, v)
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		for i, x := range deltas {
			n := int64(binary.BigEndian.Uint64(cur[8*i:])) + x
			binary.BigEndian.PutUint64(cur[8*i:], uint64(n))
		}
		return txn.Set(key, cur)
	}
	// The totals key is always written: its presence marks a store whose
	// records were written by complete transactions (see checkIncomplete).
	if _, err := txn.Get(statsTotalsKey); errors.Is(err, badger.ErrKeyNotFound) {
		if err := txn.Set(statsTotalsKey, make([]byte, 16)); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if err := add(statsTotalsKey, d.records, d.subjects); err != nil {
		return err
	}
	for ord, x := range d.cats {
		if err := add(statsCatKey(ord), x); err != nil {
			return err
		}
	}
	for src, x := range d.srcs {
		if err := add(statsSrcKey(src), x); err != nil {
			return err
		}
	}
	return nil
}

// LoadProgress returns the progress marker of an input, if any.
func (db *DB) LoadProgress(ctx context.Context, input string) (Progress, bool, error) {
	release, err := db.acquire()
	if err != nil {
		return Progress{}, false, err
	}
	defer release()
	var p Progress
	found := false
	err = db.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get(progressKey(input))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &p) })
	})
	if err != nil {
		return Progress{}, false, fmt.Errorf("store: progress: %w", err)
	}
	return p, found, nil
}
