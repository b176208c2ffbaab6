package store

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/ristretto/v2/z"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/prdcredit/ccnode/credit"
)

// BulkOptions configure a bulk load.
type BulkOptions struct {
	// TempDir receives sorted runs when the input does not fit in
	// ChunkBytes; default os.TempDir().
	TempDir string
	// ChunkBytes bounds the records held in memory before a sorted run is
	// spilled to TempDir (default 256 MiB).
	ChunkBytes int
	// ProgressEvery: the merge and write phases at the end log their
	// progress (at Info, to the store's logger) this often; 0:
	// DefaultProgressEvery, negative: never.
	ProgressEvery time.Duration
}

// DefaultChunkBytes is BulkOptions.ChunkBytes' default.
const DefaultChunkBytes = 256 << 20

// Bulk loads records into an empty store with Badger's StreamWriter, which
// writes sorted tables straight into the last level: no write-ahead log,
// no compaction. Input in any order is sorted here, in memory or in runs
// spilled to disk and merged. Later input wins over earlier input with the
// same identity, as it would in an ordinary import.
//
// A bulk load that dies after it started writing leaves its marker file
// (see bulkMarkerName); Open then reports ErrIncompleteBulk and a new bulk
// load starts over.
type Bulk struct {
	db    *DB
	opts  BulkOptions
	seq   uint64
	arena *sortArena // nil until the first entry
	index [][]byte   // the entries, pointing into arena (or, larger than it, the heap)
	runs  []string
	done  bool

	// started: Finish began writing into the store.
	started bool
	// clearIfUnused: the store was empty, so a bulk load closed before it
	// started writing leaves it usable again. Over an interrupted bulk
	// load the marker stays until one finishes.
	clearIfUnused bool

	// incremental: a Load into a store that may hold data (see NewLoad).
	incremental bool
	release     func()      // the writer lock a Load holds; nil once released
	meter       *phaseMeter // of the phase running, counting entries' bytes
	// beforeApply, when set (by tests), runs once the plan and its marker
	// are durable; an error stops Finish there, as a crash would.
	beforeApply func(plan string) error
}

// bulk entry layout, in the arena and in run files:
//
//	idKey(35) | seq(8) | category(1) | date(4) | hash(8) | value...
const (
	bOffSeq  = idKeyLen
	bOffPos  = bOffSeq + 8
	bOffHash = bOffPos + 1 + dateLen
	bOffVal  = bOffHash + 8
)

// NewBulk starts a bulk load. It refuses a store that holds anything but
// the remains of an interrupted bulk load.
func (db *DB) NewBulk(opts BulkOptions) (*Bulk, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.isClosed {
		return nil, ErrClosed
	}
	if !db.incomplete {
		empty := true
		err := db.bdb.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{})
			defer it.Close()
			it.Rewind()
			empty = !it.Valid()
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("store: bulk: %w", err)
		}
		if !empty {
			return nil, fmt.Errorf("store: bulk load needs an empty store: %w", ErrNotEmpty)
		}
	}
	if opts.ChunkBytes <= 0 {
		opts.ChunkBytes = DefaultChunkBytes
	}
	if opts.TempDir == "" {
		opts.TempDir = os.TempDir()
	}
	// Nothing else may use the store until Finish: its content is partial.
	// The marker says so to a later Open if this process dies first.
	if !db.inMem {
		if err := writeMarker(db.dir, bulkMarkerName, "bulk load"); err != nil {
			return nil, err
		}
	}
	b := &Bulk{db: db, opts: opts, clearIfUnused: !db.incomplete}
	db.incomplete = true
	return b, nil
}

// bulkMarkerName is the file in the data directory that exists from the
// start of a bulk load until everything it wrote is durable: the tables of
// a stream become visible one by one as they are written, statistics
// included, so only the marker tells a finished bulk load from a killed one.
const bulkMarkerName = "ccnode-bulk.pending"

// clearBulk removes the bulk marker once the bulk load is durable.
func (db *DB) clearBulk() error {
	if db.inMem {
		return nil
	}
	if err := os.Remove(filepath.Join(db.dir, bulkMarkerName)); err != nil {
		return fmt.Errorf("store: marker %s: %w", bulkMarkerName, err)
	}
	return syncDir(db.dir)
}

// Add buffers entries (copied; the caller may reuse them).
func (b *Bulk) Add(entries []Entry) error {
	if b.done {
		return errors.New("store: bulk: Add after Finish")
	}
	for i := range entries {
		e := &entries[i]
		dst, err := b.alloc(bOffVal + len(e.Value))
		if err != nil {
			return err
		}
		blk := dst[:0]
		blk = append(blk, e.IDKey...)
		blk = binary.BigEndian.AppendUint64(blk, b.seq)
		blk = append(blk, e.RecKey[1+usccLen:1+usccLen+1+dateLen]...)
		blk = binary.BigEndian.AppendUint64(blk, e.Hash)
		blk = append(blk, e.Value...)
		b.index = append(b.index, dst)
		b.seq++
	}
	return nil
}

// alloc returns room for an entry of n bytes in the sort buffer, spilling
// a sorted run when the buffer is full.
func (b *Bulk) alloc(n int) ([]byte, error) {
	if b.arena == nil {
		a, err := newSortArena(b.opts.ChunkBytes)
		if err != nil {
			return nil, err
		}
		b.arena = a
	}
	if dst := b.arena.alloc(n); dst != nil {
		return dst, nil
	}
	if len(b.index) > 0 {
		if err := b.spill(); err != nil {
			return nil, err
		}
		if dst := b.arena.alloc(n); dst != nil {
			return dst, nil
		}
	}
	// Larger than the whole buffer (a tiny ChunkBytes): on the heap, until
	// the next spill.
	return make([]byte, n), nil
}

// A LoadBatch is records encoded by an import's parsers, in parallel, in
// the layout a Bulk or Load sorts, so that the import's single writer only
// copies them into the sort buffer (AddBatch). The zero value is ready to
// use.
type LoadBatch struct {
	buf  []byte
	ends []int
}

// Reset empties the batch and makes it append to buf (which may be nil).
func (lb *LoadBatch) Reset(buf []byte) { lb.buf, lb.ends = buf[:0], lb.ends[:0] }

// Len is the number of records in the batch.
func (lb *LoadBatch) Len() int { return len(lb.ends) }

// Append encodes a normalised record (see Encode) at the end of the batch.
func (lb *LoadBatch) Append(r *credit.Record) error {
	ord, d, id, err := keyParts(r)
	if err != nil {
		return err
	}
	buf := lb.buf
	buf = append(buf, prefixIdentity)
	buf = append(buf, r.Subject...)
	buf = append(buf, id[:idLen]...)
	buf = binary.BigEndian.AppendUint64(buf, 0) // seq: AddBatch sets it
	buf = append(buf, byte(ord))
	buf = binary.BigEndian.AppendUint32(buf, d)
	hashAt := len(buf)
	buf = binary.BigEndian.AppendUint64(buf, 0)
	vstart := len(buf)
	buf = appendValue(buf, r)
	binary.BigEndian.PutUint64(buf[hashAt:], xxhash.Sum64(buf[vstart:]))
	lb.buf = buf
	lb.ends = append(lb.ends, len(buf))
	return nil
}

// Bytes returns the batch's memory, for the caller to reuse once the batch
// was added.
func (lb *LoadBatch) Bytes() []byte { return lb.buf }

// AddBatch buffers a batch's records (copied) in input order after those
// added before.
func (b *Bulk) AddBatch(lb *LoadBatch) error {
	if b.done {
		return errors.New("store: bulk: AddBatch after Finish")
	}
	start := 0
	for _, end := range lb.ends {
		e := lb.buf[start:end]
		start = end
		dst, err := b.alloc(len(e))
		if err != nil {
			return err
		}
		copy(dst, e)
		binary.BigEndian.PutUint64(dst[bOffSeq:bOffPos], b.seq)
		b.seq++
		b.index = append(b.index, dst)
	}
	return nil
}

// sortChunk orders the buffered entries by (identity key, sequence) in
// parts sorted at the same time on the machine's cores; the merge that
// follows (a spill's, or Finish's) merges the parts too.
func (b *Bulk) sortChunk() [][][]byte {
	n := min(runtime.GOMAXPROCS(0), len(b.index)/sortPartMin)
	if n <= 1 {
		slices.SortFunc(b.index, compareEntries)
		return [][][]byte{b.index}
	}
	parts := make([][][]byte, n)
	var wg sync.WaitGroup
	for i := range parts {
		parts[i] = b.index[i*len(b.index)/n : (i+1)*len(b.index)/n]
		wg.Add(1)
		go func() {
			defer wg.Done()
			slices.SortFunc(parts[i], compareEntries)
		}()
	}
	wg.Wait()
	return parts
}

// sortPartMin: below this many entries a part is not worth a goroutine.
const sortPartMin = 16 << 10

func compareEntries(x, y []byte) int { return bytes.Compare(x[:bOffPos], y[:bOffPos]) }

func (b *Bulk) spill() error {
	parts := b.sortChunk()
	f, err := os.CreateTemp(b.opts.TempDir, "ccnode-bulk-*.run")
	if err != nil {
		return fmt.Errorf("store: bulk: %w", err)
	}
	b.runs = append(b.runs, f.Name())
	w := bufio.NewWriterSize(f, 1<<20)
	var hdr [binary.MaxVarintLen64]byte
	h := make(mergeHeap, 0, len(parts))
	for _, p := range parts {
		h = append(h, &memSource{index: p})
	}
	heap.Init(&h)
	for h.Len() > 0 {
		s := h[0]
		e := s.peek()
		s.next()
		if s.peek() == nil {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
		w.Write(hdr[:binary.PutUvarint(hdr[:], uint64(len(e)))])
		w.Write(e)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("store: bulk: spill: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("store: bulk: spill: %w", err)
	}
	clear(b.index) // drop references to entries on the heap
	b.index = b.index[:0]
	b.arena.reset()
	return nil
}

// freeSortBuffer returns the sort buffer to the system once the merge no
// longer reads it, so that it does not add to the peak while the tables
// are written.
func (b *Bulk) freeSortBuffer() {
	b.index = nil
	if b.arena != nil {
		b.arena.free()
		b.arena = nil
	}
}

// Close removes temporary runs. Safe to call more than once and after
// Finish.
func (b *Bulk) Close() error {
	var errs []error
	for _, r := range b.runs {
		if err := os.Remove(r); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	b.runs = nil
	b.freeSortBuffer()
	if b.clearIfUnused && !b.started {
		// Abandoned before writing anything: the store is as empty as it
		// was.
		b.started = true
		if err := b.db.clearBulk(); err != nil {
			errs = append(errs, err)
		} else {
			b.db.mu.Lock()
			b.db.incomplete = false
			b.db.mu.Unlock()
		}
	}
	if b.release != nil {
		b.release()
		b.release = nil
	}
	return errors.Join(errs...)
}

// source yields entries in (identity key, seq) order.
type source interface {
	peek() []byte // nil when exhausted
	next() error
}

type memSource struct {
	index [][]byte // sorted
	i     int
}

func (m *memSource) peek() []byte {
	if m.i >= len(m.index) {
		return nil
	}
	return m.index[m.i]
}
func (m *memSource) next() error { m.i++; return nil }

type runSource struct {
	f    *os.File
	r    *bufio.Reader
	cur  []byte
	slab []byte // entries are read into it; a full slab is left to the ones that still hold it
}

func (r *runSource) peek() []byte { return r.cur }
func (r *runSource) next() error {
	n, err := binary.ReadUvarint(r.r)
	if errors.Is(err, io.EOF) {
		r.cur = nil
		return nil
	}
	if err != nil {
		return err
	}
	// Never over an entry read before: the merge may still hold it.
	if uint64(cap(r.slab)-len(r.slab)) < n {
		r.slab = make([]byte, 0, max(runSlabSize, n))
	}
	buf := r.slab[len(r.slab) : len(r.slab)+int(n) : len(r.slab)+int(n)]
	r.slab = r.slab[:len(r.slab)+int(n)]
	if _, err := io.ReadFull(r.r, buf); err != nil {
		return err
	}
	r.cur = buf
	return nil
}

// runSlabSize: run entries are read into slabs this size, one allocation
// for thousands of entries.
const runSlabSize = 1 << 20

type mergeHeap []source

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	return bytes.Compare(h[i].peek()[:bOffPos], h[j].peek()[:bOffPos]) < 0
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(source)) }
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// merge sorts what is buffered, merges it with the spilled runs and calls
// fn with each subject's winning entries (the last of each identity in
// input order), in identity-key order, and beside each the first entry of
// its identity in input order. res counts each entry after the first of
// its identity as replacing or repeating the one before it, as ordinary
// writes in input order would.
func (b *Bulk) merge(ctx context.Context, res *WriteResult, fn func(group, firsts [][]byte) error) error {
	var h mergeHeap
	for _, p := range b.sortChunk() {
		h = append(h, &memSource{index: p})
	}
	for _, name := range b.runs {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("store: bulk: %w", err)
		}
		defer f.Close()
		rs := &runSource{f: f, r: bufio.NewReaderSize(f, 1<<20)}
		if err := rs.next(); err != nil {
			return fmt.Errorf("store: bulk: read run: %w", err)
		}
		h = append(h, rs)
	}
	kept := h[:0]
	for _, s := range h {
		if s.peek() != nil {
			kept = append(kept, s)
		}
	}
	h = kept
	heap.Init(&h)

	var group [][]byte  // one subject's winning entries, in identity order
	var firsts [][]byte // the first entry of each identity in group
	var prev []byte     // previous entry seen (any subject)
	for h.Len() > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		s := h[0]
		e := s.peek()
		b.meter.add(len(e))
		if err := s.next(); err != nil {
			return fmt.Errorf("store: bulk: read run: %w", err)
		}
		if s.peek() == nil {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
		if prev != nil && bytes.Equal(prev[:idKeyLen], e[:idKeyLen]) {
			// Same identity again, later in the input: it wins.
			if bytes.Equal(prev[bOffPos:bOffVal], e[bOffPos:bOffVal]) {
				res.Unchanged++
			} else {
				res.Replaced++
			}
			group[len(group)-1] = e
			prev = e
			continue
		}
		if prev != nil && !bytes.Equal(prev[1:1+usccLen], e[1:1+usccLen]) {
			if err := fn(group, firsts); err != nil {
				return err
			}
			group, firsts = group[:0], firsts[:0]
		}
		group = append(group, e)
		firsts = append(firsts, e)
		prev = e
	}
	if len(group) > 0 {
		return fn(group, firsts)
	}
	return nil
}

// Finish sorts, merges and writes everything with the given progress
// markers and the statistics, syncs, removes the bulk marker and opens the
// store for use.
func (b *Bulk) Finish(ctx context.Context, progress []Progress) (WriteResult, error) {
	if b.done {
		return WriteResult{}, errors.New("store: bulk: Finish twice")
	}
	b.done = true
	defer b.Close()
	if b.incremental {
		return b.finishIncremental(ctx, progress)
	}

	if err := b.checkSpace(); err != nil {
		return WriteResult{}, err
	}
	// One pass merges the sorted input and writes the tables; the meter
	// runs until the tables are flushed.
	b.meter = startPhase(b.db.log, "merge and write", int64(b.pendingBytes()), b.opts.ProgressEvery)
	defer b.meter.end()
	b.started = true
	sw := b.db.bdb.NewStreamWriter()
	defer sw.Cancel()
	if err := sw.Prepare(); err != nil {
		return WriteResult{}, fmt.Errorf("store: bulk: prepare: %w", err)
	}
	out := newStreamOut(b.db, sw)
	var res WriteResult
	d := statDelta{srcs: map[string]int64{}}
	// Everything goes through the stream writer, progress markers (P,
	// before the records) and statistics (S, after them) included, so
	// nothing is left in Badger's memtable: at Close it would become a
	// level-0 table, and a Load into a store with level-0 tables takes the
	// write-batch path, several times slower.
	if err := putProgress(progress, func(k, v []byte) error { return out.put(streamRecord, k, v) }); err != nil {
		out.buf.Release()
		return res, err
	}
	err := b.merge(ctx, &res, func(group, _ [][]byte) error {
		res.Inserted += int64(len(group))
		return out.subject(group, &d)
	})
	if err != nil {
		out.buf.Release()
		return res, err
	}
	b.freeSortBuffer()
	// An empty bulk load leaves the store empty (and open to another).
	err = putStats(Stats{}, &d, d.records > 0, func(k, v []byte) error { return out.put(streamRecord, k, v) })
	if err != nil {
		out.buf.Release()
		return res, err
	}
	if err := out.close(); err != nil {
		return res, err
	}
	if err := sw.Flush(); err != nil {
		return res, fmt.Errorf("store: bulk: flush: %w", err)
	}
	if err := b.db.dropTablePages(); err != nil {
		return res, err
	}
	if err := b.db.Sync(); err != nil {
		return res, err
	}
	if err := b.db.clearBulk(); err != nil {
		return res, err
	}
	b.db.mu.Lock()
	b.db.incomplete = false
	b.db.mu.Unlock()
	return res, nil
}

// Stream ids of a bulk load; their key ranges never overlap. The progress
// markers (P), statistics (S) and subject markers (U) share the records'
// stream (R), in key order, rather than having streams of their own: every
// stream costs a table builder that allocates 128 MiB up front (see
// loadStreamRest).
const (
	streamIdentity = 1 // I
	streamRecord   = 2 // P, R, S, U
)

// kvSink takes encoded key-value buffers: Badger's StreamWriter, or what
// the floor benchmark records in place of it.
type kvSink interface {
	Write(buf *z.Buffer) error
}

type streamOut struct {
	sw       kvSink
	db       *DB
	buf      *z.Buffer
	flushed  int    // bytes handed to the stream writer since its mapped pages were last released
	version  uint64 // of every key written; 1 for a bulk load into an empty store
	subjects []byte // subjects written by subject, usccLen bytes each, in order
}

func newStreamOut(db *DB, sw kvSink) *streamOut {
	return &streamOut{sw: sw, db: db, buf: z.NewBuffer(8<<20, "ccnode.bulk"), version: 1}
}

// releaseEvery: the pages of the tables written are released from the
// process (see dropTablePages) every this many bytes of entries written.
const releaseEvery = 128 << 20

func (o *streamOut) put(stream uint32, k, v []byte) error { return o.putKV(stream, k, v, false) }

// deleteMeta is Badger's delete flag in pb.KV.Meta, as its own backups
// write it.
var deleteMeta = []byte{1}

func (o *streamOut) putKV(stream uint32, k, v []byte, del bool) error {
	var meta []byte
	if del {
		meta = deleteMeta
	}
	dst := o.buf.SliceAllocate(kvSize(k, v, meta, o.version, stream))
	appendKV(dst[:0], k, v, meta, o.version, stream)
	if o.buf.LenNoPadding() >= 4<<20 {
		return o.flush()
	}
	return nil
}

// appendKV appends the protobuf encoding of the pb.KV {Key: k, Value: v,
// Meta: meta, Version: version, StreamId: stream} that
// badger.KVToBuffer would write, without its reflection (a few percent of
// an import's CPU); TestAppendKVMatchesProto holds the two to the same
// bytes.
func appendKV(b, k, v, meta []byte, version uint64, stream uint32) []byte {
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, k)
	if len(v) > 0 {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, v)
	}
	if version != 0 {
		b = protowire.AppendTag(b, 4, protowire.VarintType)
		b = protowire.AppendVarint(b, version)
	}
	if len(meta) > 0 {
		b = protowire.AppendTag(b, 6, protowire.BytesType)
		b = protowire.AppendBytes(b, meta)
	}
	if stream != 0 {
		b = protowire.AppendTag(b, 10, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(stream))
	}
	return b
}

func kvSize(k, v, meta []byte, version uint64, stream uint32) int {
	n := 1 + protowire.SizeBytes(len(k))
	if len(v) > 0 {
		n += 1 + protowire.SizeBytes(len(v))
	}
	if version != 0 {
		n += 1 + protowire.SizeVarint(version)
	}
	if len(meta) > 0 {
		n += 1 + protowire.SizeBytes(len(meta))
	}
	if stream != 0 {
		n += 1 + protowire.SizeVarint(uint64(stream))
	}
	return n
}

func (o *streamOut) flush() error {
	if o.buf.LenNoPadding() == 0 {
		return nil
	}
	// Write decodes and copies every entry before it returns, so the
	// buffer can be reused; a fresh 8 MiB buffer per call costs page faults.
	o.flushed += o.buf.LenNoPadding()
	err := o.sw.Write(o.buf)
	o.buf.Reset()
	if err != nil {
		return fmt.Errorf("store: bulk: write: %w", err)
	}
	if o.flushed >= releaseEvery {
		o.flushed = 0
		return o.db.dropTablePages()
	}
	return nil
}

func (o *streamOut) close() error {
	for i := 0; i < len(o.subjects); i += usccLen {
		if err := o.put(streamRecord, subjectKey(o.subjects[i:i+usccLen]), nil); err != nil {
			o.buf.Release()
			return err
		}
	}
	err := o.flush()
	o.buf.Release()
	return err
}

// subject writes one subject's identity entries, its record entries in
// record-key order and its subject marker.
func (o *streamOut) subject(group [][]byte, d *statDelta) error {
	for _, e := range group {
		if err := o.put(streamIdentity, e[:idKeyLen], e[bOffPos:bOffVal]); err != nil {
			return err
		}
	}
	recs := make([][]byte, len(group))
	for i, e := range group {
		k := make([]byte, 0, recKeyLen)
		k = append(k, prefixRecord)
		k = append(k, e[1:1+usccLen]...)
		k = append(k, e[bOffPos:bOffHash]...)
		recs[i] = append(k, e[1+usccLen:idKeyLen]...)
		d.records++
		d.cats[e[bOffPos]]++
		src, err := sourceOfValue(e[bOffVal:])
		if err != nil {
			return fmt.Errorf("store: bulk: %w", err)
		}
		d.srcs[src]++
	}
	order := make([]int, len(group))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(recs[a], recs[b]) })
	for _, i := range order {
		if err := o.put(streamRecord, recs[i], group[i][bOffVal:]); err != nil {
			return err
		}
	}
	d.subjects++
	o.subjects = append(o.subjects, group[0][1:1+usccLen]...)
	return nil
}

// checkSpace fails with a *SpaceError unless the store's filesystem has
// room for the tables of everything buffered and spilled (a bulk load
// writes each entry once; its index and statistics are a small part).
func (b *Bulk) checkSpace() error {
	if b.db.inMem {
		return nil
	}
	return CheckSpace(b.db.dir, "write the bulk load's tables", tablesFor(b.pendingBytes()))
}

// pendingBytes is the bytes of entries buffered and spilled.
func (b *Bulk) pendingBytes() uint64 {
	var n uint64
	for _, e := range b.index {
		n += uint64(len(e))
	}
	for _, r := range b.runs {
		if fi, err := os.Stat(r); err == nil {
			n += uint64(fi.Size())
		}
	}
	return n
}
