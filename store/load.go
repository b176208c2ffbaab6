package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// A Load is the fast way to import into a store that already holds data.
//
// Going through Badger's transactions, every record costs a write-ahead
// log entry, a memtable insert, a level-0 table and then compactions that
// rewrite it again and again as the tree grows, so the rate falls as the
// store grows (BenchmarkImportPaths). A Load instead sorts the whole input
// (like Bulk), merges it in key order with the identities already stored
// (one seek per subject instead of a random read per record) and writes
// the outcome as sorted tables with Badger's incremental StreamWriter, one
// level above the data already there: no log, no memtable, no compaction
// during the import.
//
// Crash safety: the outcome is first written to a plan file in the data
// directory — every key to put or delete, the statistics as absolute values
// and the progress markers — and synced; then a marker file naming the plan
// is renamed into place. Only then is the plan applied. Applying a plan is
// idempotent (absolute values, written at a version above everything
// stored), so a process killed while applying leaves the marker, and the
// next Open applies the whole plan again before anything else reads the
// store. Killed before the marker exists, nothing was written and the
// import simply runs again. Records are never visible without their
// statistics to a reader of a store opened with Open.
//
// Nothing is durable before Finish: an interrupted Load is redone from its
// inputs' start (the transactional Pipeline resumes batch by batch, at a
// fraction of the speed).

// Files of a Load in the data directory.
const (
	loadPlanName   = "ccnode-load.plan"
	loadMarkerName = "ccnode-load.pending"
)

// Plan record layout: stream(1) | flags(1) | uvarint key length | key |
// uvarint value length | value. A record with stream planEnd ends the plan;
// a plan without it was cut short and is never applied.
const (
	planEnd    = 0xff
	planDelete = 1 << 0
)

// A Load writes two streams. Each stream gets its own table builder, and
// Badger's builder allocates (and zeroes) twice the table size, 128 MiB,
// up front, so a stream per prefix would cost an import CPU in allocation
// alone. Keys of one stream must come in key order, so the
// second carries P (progress, known before the merge), R (during it), S
// (statistics, after it) and U (subjects, gathered during it and written
// last), in that order, which is the key order of those prefixes.
const (
	loadStreamIdentity = 1 // I
	loadStreamRest     = 2 // P, R, S, U
)

// NewLoad starts an incremental load. Entries are added with Add and
// written by Finish; Close discards an unfinished load. The load holds the
// store's writer lock until Finish or Close: other writes of this package
// wait, and reads go on. While Finish writes tables, Badger refuses every
// other write to the database (ErrBlockedWrites), sibling packages' too:
// an import runs in a process of its own (ccnode import).
//
// Speed depends on what else wrote to the store: ordinary transactions
// (--transactional imports, receipts) leave tables in Badger's level 0 until
// its compactions move them, and while they are there a Load applies its
// plan with write batches, at about the transactional path's speed.
func (db *DB) NewLoad(opts BulkOptions) (*Bulk, error) {
	release, err := db.acquire()
	if err != nil {
		return nil, err
	}
	db.wmu.Lock()
	if opts.ChunkBytes <= 0 {
		opts.ChunkBytes = DefaultChunkBytes
	}
	if opts.TempDir == "" {
		opts.TempDir = os.TempDir()
	}
	return &Bulk{db: db, opts: opts, incremental: true, release: func() { db.wmu.Unlock(); release() }}, nil
}

// finishIncremental merges the buffered entries with what is stored,
// writes the plan and applies it.
func (b *Bulk) finishIncremental(ctx context.Context, progress []Progress) (WriteResult, error) {
	db := b.db
	var res WriteResult
	if len(b.index) == 0 && len(b.runs) == 0 && len(progress) == 0 {
		// Nothing to write (every input was already imported): writing
		// the unchanged totals would still take a level of Badger's tree.
		return res, nil
	}
	start := time.Now()
	base, err := db.statsLocked(ctx)
	if err != nil {
		return res, err
	}
	planPath := filepath.Join(db.dir, loadPlanName)
	if db.inMem {
		planPath = filepath.Join(b.opts.TempDir, fmt.Sprintf("ccnode-load-%p.plan", b))
	}
	pw, err := createPlan(planPath)
	if err != nil {
		return res, err
	}
	defer pw.discard()
	if err := putProgress(progress, func(k, v []byte) error { return pw.add(loadStreamRest, 0, k, v) }); err != nil {
		return res, err
	}
	b.meter = startPhase(db.log, "merge", int64(b.pendingBytes()), b.opts.ProgressEvery)
	m, err := b.mergeIntoPlan(ctx, pw, &res)
	b.meter.end()
	if err != nil {
		return res, err
	}
	if err := m.finishPlan(base); err != nil {
		return res, err
	}
	db.log.Info("import merged with the store", "elapsed", time.Since(start).Round(time.Millisecond),
		"inserted", res.Inserted, "replaced", res.Replaced, "unchanged", res.Unchanged)
	start = time.Now()
	defer func() { db.log.Info("import written", "elapsed", time.Since(start).Round(time.Millisecond)) }()
	return res, b.applyLoad(ctx, planPath, b.opts.ProgressEvery)
}

// planMerger merges the sorted input, a subject at a time, with the
// identities already stored and writes the outcome to the plan.
type planMerger struct {
	db   *DB
	pw   *planWriter
	it   *badger.Iterator
	res  *WriteResult
	d    statDelta
	recs []planRec
	seek []byte
	old  [idValLen]byte
	// newSubjects are the subjects the store did not hold, usccLen bytes
	// each, in order.
	newSubjects []byte
	groups      int
}

type planRec struct {
	key, val []byte
	del      bool
}

// mergeIntoPlan runs the merge; what it returns writes the plan's tail.
func (b *Bulk) mergeIntoPlan(ctx context.Context, pw *planWriter, res *WriteResult) (*planMerger, error) {
	rt := b.db.bdb.NewTransaction(false)
	defer rt.Discard()
	it := rt.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixIdentity}})
	defer it.Close()
	m := &planMerger{db: b.db, pw: pw, it: it, res: res, d: statDelta{srcs: map[string]int64{}},
		seek: make([]byte, 0, 1+usccLen)}
	if err := b.merge(ctx, res, m.group); err != nil {
		return nil, err
	}
	b.freeSortBuffer()
	return m, nil
}

// group merges one subject's entries (the winner of each identity, and
// the first of it in input order) with what the store holds on it.
func (m *planMerger) group(group, firsts [][]byte) error {
	// The identities read from the store's tables stay mapped (and
	// resident) otherwise; see dropTablePages.
	if m.groups++; m.groups%(64<<10) == 0 {
		if err := m.db.dropTablePages(); err != nil {
			return err
		}
	}
	it, res, d := m.it, m.res, &m.d
	subj := group[0][1 : 1+usccLen]
	m.seek = append(append(m.seek[:0], prefixIdentity), subj...)
	it.Seek(m.seek)
	existed := it.ValidForPrefix(m.seek)
	inserted := false
	m.recs = m.recs[:0]
	for i, e := range group {
		k := e[:idKeyLen]
		for it.ValidForPrefix(m.seek) && bytes.Compare(it.Item().Key(), k) < 0 {
			it.Next()
		}
		newPos := e[bOffPos:bOffHash]
		if it.ValidForPrefix(m.seek) && bytes.Equal(it.Item().Key(), k) {
			v, err := it.Item().ValueCopy(m.old[:0])
			if err != nil {
				return fmt.Errorf("store: load: %w", err)
			}
			if len(v) != idValLen || int(v[0]) >= len(allCats) {
				return fmt.Errorf("%w: identity value %x", ErrCorrupt, k)
			}
			// Counted as ordinary writes in input order count: the
			// first of the identity against what is stored.
			if bytes.Equal(v, firsts[i][bOffPos:bOffVal]) {
				res.Unchanged++
			} else {
				res.Replaced++
			}
			if bytes.Equal(v, e[bOffPos:bOffVal]) {
				continue // the winner is what is stored
			}
			if !bytes.Equal(v[:1+dateLen], newPos) {
				// The correction moved the record (category or date):
				// the old key goes.
				m.recs = append(m.recs, planRec{key: recordKeyFromIndex(k, v), del: true})
				d.cats[v[0]]--
				d.cats[newPos[0]]++
			}
		} else {
			res.Inserted++
			inserted = true
			d.records++
			d.cats[newPos[0]]++
			src, err := sourceOfValue(e[bOffVal:])
			if err != nil {
				return fmt.Errorf("store: load: %w", err)
			}
			d.srcs[src]++
		}
		if err := m.pw.add(loadStreamIdentity, 0, k, e[bOffPos:bOffVal]); err != nil {
			return err
		}
		rk := make([]byte, 0, recKeyLen)
		rk = append(rk, prefixRecord)
		rk = append(rk, subj...)
		rk = append(rk, newPos...)
		rk = append(rk, e[1+usccLen:idKeyLen]...)
		m.recs = append(m.recs, planRec{key: rk, val: e[bOffVal:]})
	}
	slices.SortFunc(m.recs, func(x, y planRec) int { return bytes.Compare(x.key, y.key) })
	for _, r := range m.recs {
		var fl byte
		if r.del {
			fl = planDelete
		}
		if err := m.pw.add(loadStreamRest, fl, r.key, r.val); err != nil {
			return err
		}
	}
	if !existed && inserted {
		d.subjects++
		m.newSubjects = append(m.newSubjects, subj...)
	}
	return nil
}

// finishPlan writes the statistics (base plus what the merge changed) and
// the new subjects, and ends the plan.
func (m *planMerger) finishPlan(base Stats) error {
	add := func(k, v []byte) error { return m.pw.add(loadStreamRest, 0, k, v) }
	if err := putStats(base, &m.d, true, add); err != nil {
		return err
	}
	for i := 0; i < len(m.newSubjects); i += usccLen {
		if err := add(subjectKey(m.newSubjects[i:i+usccLen]), nil); err != nil {
			return err
		}
	}
	return m.pw.finish()
}

// applyLoad applies a finished plan: on disk after its marker is durable,
// so that a crash part way leaves a plan the next Open applies again.
func (b *Bulk) applyLoad(ctx context.Context, planPath string, every time.Duration) error {
	db := b.db
	if err := ctx.Err(); err != nil {
		return err
	}
	if db.inMem {
		return db.applyPlan(planPath, every)
	}
	// Before the marker: refused here, the import leaves the store as it
	// was (the plan is dropped by the next open).
	if err := db.checkPlanSpace(planPath, "write the import's tables"); err != nil {
		return err
	}
	if err := writeMarker(db.dir, loadMarkerName, loadPlanName); err != nil {
		return err
	}
	if b.beforeApply != nil {
		if err := b.beforeApply(planPath); err != nil {
			return err
		}
	}
	if err := db.applyPlan(planPath, every); err != nil {
		return err
	}
	return db.clearLoad()
}

// resumeLoad applies the plan of a load that was killed while applying it.
// Open calls it before anything reads the store.
func (db *DB) resumeLoad() error {
	if _, err := os.Stat(filepath.Join(db.dir, loadMarkerName)); errors.Is(err, os.ErrNotExist) {
		// A plan without a marker was never applied: drop it.
		if err := os.Remove(filepath.Join(db.dir, loadPlanName)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("store: remove unused load plan: %w", err)
		}
		return nil
	} else if err != nil {
		return fmt.Errorf("store: marker %s: %w", loadMarkerName, err)
	}
	if err := db.checkPlanSpace(filepath.Join(db.dir, loadPlanName), "finish the interrupted import's load"); err != nil {
		return fmt.Errorf("store: resume interrupted import: %w", err)
	}
	db.log.Warn("applying the plan of an interrupted import", "dir", db.dir)
	if err := db.applyPlan(filepath.Join(db.dir, loadPlanName), DefaultProgressEvery); err != nil {
		return fmt.Errorf("store: resume interrupted import: %w", err)
	}
	return db.clearLoad()
}

// clearLoad removes the marker, then the plan, once the plan is applied
// and durable.
func (db *DB) clearLoad() error {
	if err := db.Sync(); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(db.dir, loadMarkerName)); err != nil {
		return fmt.Errorf("store: marker %s: %w", loadMarkerName, err)
	}
	if err := syncDir(db.dir); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(db.dir, loadPlanName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: load plan: %w", err)
	}
	return nil
}

// putProgress emits the progress markers in key order.
func putProgress(progress []Progress, put func(k, v []byte) error) error {
	type kv struct{ k, v []byte }
	prog := make([]kv, 0, len(progress))
	for _, p := range progress {
		v, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("store: progress of %s: %w", p.Input, err)
		}
		prog = append(prog, kv{progressKey(p.Input), v})
	}
	slices.SortFunc(prog, func(x, y kv) int { return bytes.Compare(x.k, y.k) })
	for _, p := range prog {
		if err := put(p.k, p.v); err != nil {
			return err
		}
	}
	return nil
}

// putStats emits the statistics of base plus d as absolute values, in key
// order: S|c|ordinal, S|s|source, then S|t, the totals (always when
// totals is set; see checkIncomplete). Counters d leaves unchanged are not
// written.
func putStats(base Stats, d *statDelta, totals bool, put func(k, v []byte) error) error {
	u64 := func(n int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }
	for ord, x := range d.cats {
		if x == 0 {
			continue
		}
		if err := put(statsCatKey(ord), u64(base.Categories[allCats[ord]]+x)); err != nil {
			return err
		}
	}
	srcs := make([]string, 0, len(d.srcs))
	for s, x := range d.srcs {
		if x != 0 {
			srcs = append(srcs, s)
		}
	}
	slices.Sort(srcs)
	for _, s := range srcs {
		if err := put(statsSrcKey(s), u64(base.Sources[s]+d.srcs[s])); err != nil {
			return err
		}
	}
	if !totals {
		return nil
	}
	return put(statsTotalsKey, binary.BigEndian.AppendUint64(u64(base.Records+d.records), uint64(base.Subjects+d.subjects)))
}

// writeMarker durably creates the file name in dir, holding content.
func writeMarker(dir, name, content string) error {
	tmp := filepath.Join(dir, name+".tmp")
	if err := os.WriteFile(tmp, []byte(content+"\n"), 0o644); err != nil {
		return fmt.Errorf("store: marker %s: %w", name, err)
	}
	f, err := os.Open(tmp)
	if err != nil {
		return fmt.Errorf("store: marker %s: %w", name, err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("store: marker %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("store: marker %s: %w", name, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: sync %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("store: sync %s: %w", dir, err)
	}
	return nil
}

type planWriter struct {
	f    *os.File
	w    *bufio.Writer
	path string
	hdr  [2 + 2*binary.MaxVarintLen64]byte
	done bool

	written, started int64 // bytes written; bytes whose write-back was started
}

// planWriteback: the plan's write-back to disk is started every this many
// bytes, so that it proceeds while the merge computes the rest and the
// final sync has little left to wait for (the kernel would otherwise hold
// it all in the page cache until then).
const planWriteback = 16 << 20

func createPlan(path string) (*planWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("store: load plan: %w", err)
	}
	return &planWriter{f: f, w: bufio.NewWriterSize(f, 1<<20), path: path}, nil
}

func (p *planWriter) add(stream, flags byte, k, v []byte) error {
	h := p.hdr[:0]
	h = append(h, stream, flags)
	h = binary.AppendUvarint(h, uint64(len(k)))
	p.w.Write(h)
	p.w.Write(k)
	h = binary.AppendUvarint(p.hdr[:0], uint64(len(v)))
	p.w.Write(h)
	if _, err := p.w.Write(v); err != nil {
		return fmt.Errorf("store: load plan: %w", err)
	}
	p.written += int64(2 + len(k) + len(v) + 4)
	if p.written-p.started >= planWriteback {
		if err := p.w.Flush(); err != nil {
			return fmt.Errorf("store: load plan: %w", err)
		}
		end := p.written
		if off, err := p.f.Seek(0, io.SeekCurrent); err == nil {
			end = off
		}
		startWriteback(p.f, p.started, end-p.started)
		p.started, p.written = end, end
	}
	return nil
}

// finish ends, flushes and syncs the plan.
func (p *planWriter) finish() error {
	p.w.WriteByte(planEnd)
	if err := p.w.Flush(); err != nil {
		return fmt.Errorf("store: load plan: %w", err)
	}
	if err := p.f.Sync(); err != nil {
		return fmt.Errorf("store: load plan: %w", err)
	}
	if err := p.f.Close(); err != nil {
		return fmt.Errorf("store: load plan: %w", err)
	}
	p.done = true
	return nil
}

// discard removes a plan that was not finished, and an in-memory store's
// plan (which needs no crash recovery) once applied.
func (p *planWriter) discard() {
	if !p.done {
		p.f.Close()
		os.Remove(p.path)
		return
	}
	if filepath.Base(p.path) != loadPlanName {
		os.Remove(p.path)
	}
}

// readPlan calls fn for every record of a complete plan. k and v are only
// valid during the call.
func readPlan(path string, fn func(stream, flags byte, k, v []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("load plan: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var buf []byte
	for {
		stream, err := r.ReadByte()
		if err != nil {
			return fmt.Errorf("load plan %s: cut short: %w", path, err)
		}
		if stream == planEnd {
			return nil
		}
		flags, err := r.ReadByte()
		if err != nil {
			return fmt.Errorf("load plan %s: cut short: %w", path, err)
		}
		kl, err := binary.ReadUvarint(r)
		if err != nil {
			return fmt.Errorf("load plan %s: cut short: %w", path, err)
		}
		buf = slices.Grow(buf[:0], int(kl))[:kl]
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("load plan %s: cut short: %w", path, err)
		}
		vl, err := binary.ReadUvarint(r)
		if err != nil {
			return fmt.Errorf("load plan %s: cut short: %w", path, err)
		}
		buf = slices.Grow(buf, int(vl))[:int(kl)+int(vl)]
		if _, err := io.ReadFull(r, buf[kl:]); err != nil {
			return fmt.Errorf("load plan %s: cut short: %w", path, err)
		}
		if err := fn(stream, flags, buf[:kl], buf[kl:]); err != nil {
			return err
		}
	}
}

// applyPlan writes a plan with the incremental StreamWriter, at a version
// above every version stored, so its keys shadow what they replace. When
// the store has had ordinary writes that are still in Badger's memtable or
// level 0 (an import with --transactional, receipts), the plan goes through
// ordinary write batches instead: slower, and just as idempotent.
func (db *DB) applyPlan(path string, every time.Duration) error {
	var size int64
	if fi, err := os.Stat(path); err == nil {
		size = fi.Size()
	}
	meter := startPhase(db.log, "write", size, every)
	defer meter.end()
	// With tables in level 0, PrepareIncremental would call Flatten, which
	// restarts the compactors that PrepareIncremental has just stopped: two
	// sets then run, one of them unknown to Close (Badger v4.9.6). Tables
	// reach level 0 only from ordinary writes; the batches are correct
	// whatever the tree holds.
	for _, l := range db.bdb.Levels() {
		if l.Level == 0 && l.NumTables > 0 {
			db.log.Info("level 0 holds tables; applying the import with write batches", "tables", l.NumTables)
			return db.applyPlanBatches(path, meter)
		}
	}
	rt := db.bdb.NewTransaction(false)
	version := rt.ReadTs() + 1
	rt.Discard()
	sw := db.bdb.NewStreamWriter()
	if err := sw.PrepareIncremental(); err != nil {
		sw.Cancel()
		db.log.Info("incremental stream refused; applying the import with write batches", "err", err)
		return db.applyPlanBatches(path, meter)
	}
	defer sw.Cancel()
	out := newStreamOut(db, sw)
	out.version = version
	err := readPlan(path, func(stream, flags byte, k, v []byte) error {
		meter.add(len(k) + len(v) + 4)
		return out.putKV(uint32(stream), k, v, flags&planDelete != 0)
	})
	if err != nil {
		out.buf.Release()
		return fmt.Errorf("store: %w", err)
	}
	if err := out.close(); err != nil {
		return err
	}
	if err := sw.Flush(); err != nil {
		return fmt.Errorf("store: load: flush: %w", err)
	}
	return db.dropTablePages()
}

func (db *DB) applyPlanBatches(path string, meter *phaseMeter) error {
	if db.noCompactors {
		// A plan is as large as the import: its batches would fill level
		// 0 and stall for ever with no compactor to drain it.
		return fmt.Errorf("store: load: the plan needs write batches, and the store was opened without compactions: %w", ErrNoCompactions)
	}
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	err := readPlan(path, func(_, flags byte, k, v []byte) error {
		meter.add(len(k) + len(v) + 4)
		k = bytes.Clone(k) // the batch keeps them until it commits
		if flags&planDelete != 0 {
			return wb.Delete(k)
		}
		return wb.Set(k, bytes.Clone(v))
	})
	if err != nil {
		return fmt.Errorf("store: load: %w", err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("store: load: %w", err)
	}
	return nil
}

// checkPlanSpace fails with a *SpaceError unless the store's filesystem
// has room for the tables a plan becomes.
func (db *DB) checkPlanSpace(planPath, what string) error {
	fi, err := os.Stat(planPath)
	if err != nil {
		return fmt.Errorf("store: load plan: %w", err)
	}
	return CheckSpace(db.dir, what, tablesFor(uint64(fi.Size())))
}
