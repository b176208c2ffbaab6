package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Pipeline is a writer for one long import: it prepares batch N+1 while
// Badger commits batch N. Each batch is still one atomic transaction
// carrying its records, the statistics and the progress marker.
//
// Why this works: the transactions for batch N+1 are opened before batch
// N is committed, so they read a snapshot without N; the pipeline keeps
// N's identity and subject writes in memory and consults them first. The
// write transaction only writes (reads go through a separate read-only
// transaction), so it cannot conflict with N. The statistics are held in
// memory for the pipeline's lifetime: it holds the store's writer lock, so
// nothing else changes them.
type Pipeline struct {
	db      *DB
	release func()
	stats   memStats

	r, w     *badger.Txn       // prepared for the next batch
	prevIDs  map[string][]byte // identity key -> index value, batch in flight
	prevSubj map[string]bool   // subjects first stored by the batch in flight
	inflight chan error
	err      error
	closed   bool
}

type memStats struct {
	records, subjects int64
	cats              [16]int64
	srcs              map[string]int64
}

// NewPipeline starts a pipelined writer. It holds the store's writer lock
// until Close: other writes of this package wait.
func (db *DB) NewPipeline(ctx context.Context) (*Pipeline, error) {
	release, err := db.acquire()
	if err != nil {
		return nil, err
	}
	db.wmu.Lock()
	p := &Pipeline{db: db, release: func() { db.wmu.Unlock(); release() }}
	if err := p.loadStats(ctx); err != nil {
		p.release()
		return nil, err
	}
	return p, nil
}

func (p *Pipeline) loadStats(ctx context.Context) error {
	st, err := p.db.statsLocked(ctx)
	if err != nil {
		return err
	}
	p.stats = memStats{records: st.Records, subjects: st.Subjects, srcs: st.Sources}
	for c, n := range st.Categories {
		p.stats.cats[c.Ordinal()] = n
	}
	return nil
}

// Write submits one batch (and its progress marker) for commit and returns
// what it will do. Badger keeps the entries' slices until the commit: they
// must stay unchanged until the next Write or Close has returned. A commit failure is returned by a later Write or Close;
// after an error the pipeline only fails.
func (p *Pipeline) Write(ctx context.Context, entries []Entry, prog *Progress) (WriteResult, error) {
	if p.closed {
		return WriteResult{}, ErrClosed
	}
	if p.err != nil {
		return WriteResult{}, p.err
	}
	if err := ctx.Err(); err != nil {
		return WriteResult{}, err
	}
	if p.r == nil {
		p.r, p.w = p.db.bdb.NewTransaction(false), p.db.bdb.NewTransaction(true)
	}
	res, ids, subj, newStats, err := p.prepare(entries, prog)
	if errors.Is(err, badger.ErrTxnTooBig) {
		// Too big for one transaction: drain the pipeline and let the
		// ordinary path split it.
		if err := p.drain(); err != nil {
			return WriteResult{}, err
		}
		res, err := p.db.write(ctx, entries, prog)
		if err != nil {
			p.err = err
			return res, err
		}
		if err := p.loadStats(ctx); err != nil {
			p.err = err
		}
		return res, p.err
	}
	if err != nil {
		p.fail(err)
		return WriteResult{}, p.err
	}
	// Open the next batch's transactions before committing this one, so
	// that they do not wait for it (see the type's comment).
	nextR, nextW := p.db.bdb.NewTransaction(false), p.db.bdb.NewTransaction(true)
	if p.inflight != nil {
		if err := <-p.inflight; err != nil {
			nextR.Discard()
			nextW.Discard()
			p.inflight = nil
			p.fail(fmt.Errorf("store: commit: %w", err))
			return WriteResult{}, p.err
		}
	}
	ch := make(chan error, 1)
	p.w.CommitWith(func(err error) { ch <- err })
	p.r.Discard()
	p.inflight = ch
	p.prevIDs, p.prevSubj, p.stats = ids, subj, newStats
	p.r, p.w = nextR, nextW
	return res, nil
}

func (p *Pipeline) fail(err error) {
	p.err = fmt.Errorf("store: pipeline: %w", err)
	if p.r != nil {
		p.r.Discard()
		p.w.Discard()
		p.r, p.w = nil, nil
	}
}

// drain waits for the batch in flight and drops the prepared transactions.
func (p *Pipeline) drain() error {
	if p.r != nil {
		p.r.Discard()
		p.w.Discard()
		p.r, p.w = nil, nil
	}
	if p.inflight != nil {
		err := <-p.inflight
		p.inflight = nil
		if err != nil {
			p.err = fmt.Errorf("store: commit: %w", err)
			return p.err
		}
	}
	p.prevIDs, p.prevSubj = nil, nil
	return nil
}

// Close waits for the last commit, releases the writer lock and returns
// the first error. Safe to call twice.
func (p *Pipeline) Close() error {
	if p.closed {
		return p.err
	}
	p.closed = true
	err := p.drain()
	p.release()
	if p.err != nil {
		return p.err
	}
	return err
}

func (p *Pipeline) prepare(entries []Entry, prog *Progress) (WriteResult, map[string][]byte, map[string]bool, memStats, error) {
	var res WriteResult
	st := p.stats
	st.srcs = nil // copied on first change below
	srcs := func() map[string]int64 {
		if st.srcs == nil {
			st.srcs = make(map[string]int64, len(p.stats.srcs)+1)
			for k, v := range p.stats.srcs {
				st.srcs[k] = v
			}
		}
		return st.srcs
	}
	ids := make(map[string][]byte, len(entries))
	subj := map[string]bool{}
	changedCats := map[int]bool{}
	changedSrcs := map[string]bool{}
	lookup := func(k []byte) ([]byte, bool, error) {
		if v, ok := ids[string(k)]; ok {
			return v, true, nil
		}
		if v, ok := p.prevIDs[string(k)]; ok {
			return v, true, nil
		}
		item, err := p.r.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		v, err := item.ValueCopy(nil)
		return v, true, err
	}
	hasSubject := func(sk []byte) (bool, error) {
		s := string(sk)
		if subj[s] || p.prevSubj[s] {
			return true, nil
		}
		_, err := p.r.Get(sk)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	var lastSubject []byte
	for i := range entries {
		e := &entries[i]
		v, found, err := lookup(e.IDKey)
		if err != nil {
			return res, nil, nil, st, err
		}
		if found {
			if len(v) != idValLen || int(v[0]) >= len(allCats) {
				return res, nil, nil, st, fmt.Errorf("%w: identity value %x", ErrCorrupt, e.IDKey)
			}
			oldPos := v[:1+dateLen]
			newPos := e.RecKey[1+usccLen : 1+usccLen+1+dateLen]
			if string(oldPos) == string(newPos) && binary.BigEndian.Uint64(v[1+dateLen:]) == e.Hash {
				res.Unchanged++
				continue
			}
			if string(oldPos) != string(newPos) {
				if err := p.w.Delete(recordKeyFromIndex(e.IDKey, v)); err != nil {
					return res, nil, nil, st, err
				}
				st.cats[v[0]]--
				st.cats[e.Category]++
				changedCats[int(v[0])], changedCats[e.Category] = true, true
			}
			res.Replaced++
		} else {
			res.Inserted++
			st.records++
			st.cats[e.Category]++
			changedCats[e.Category] = true
			srcs()[e.Source]++
			changedSrcs[e.Source] = true
			s := e.IDKey[1 : 1+usccLen]
			if string(s) != string(lastSubject) {
				lastSubject = s
				sk := subjectKey(s)
				ok, err := hasSubject(sk)
				if err != nil {
					return res, nil, nil, st, err
				}
				if !ok {
					st.subjects++
					subj[string(sk)] = true
					if err := p.w.Set(sk, nil); err != nil {
						return res, nil, nil, st, err
					}
				}
			}
		}
		iv := indexValue(e)
		ids[string(e.IDKey)] = iv
		if err := p.w.Set(e.RecKey, e.Value); err != nil {
			return res, nil, nil, st, err
		}
		if err := p.w.Set(e.IDKey, iv); err != nil {
			return res, nil, nil, st, err
		}
	}
	if st.srcs == nil {
		st.srcs = p.stats.srcs
	}
	tot := make([]byte, 16)
	binary.BigEndian.PutUint64(tot, uint64(st.records))
	binary.BigEndian.PutUint64(tot[8:], uint64(st.subjects))
	if err := p.w.Set(statsTotalsKey, tot); err != nil {
		return res, nil, nil, st, err
	}
	for c := range changedCats {
		if err := p.w.Set(statsCatKey(c), binary.BigEndian.AppendUint64(nil, uint64(st.cats[c]))); err != nil {
			return res, nil, nil, st, err
		}
	}
	for s := range changedSrcs {
		if err := p.w.Set(statsSrcKey(s), binary.BigEndian.AppendUint64(nil, uint64(st.srcs[s]))); err != nil {
			return res, nil, nil, st, err
		}
	}
	if prog != nil {
		b, err := json.Marshal(prog)
		if err != nil {
			return res, nil, nil, st, err
		}
		if err := p.w.Set(progressKey(prog.Input), b); err != nil {
			return res, nil, nil, st, err
		}
	}
	return res, ids, subj, st, nil
}
