package receipts

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/prdcredit/ccnode/credit"
)

// Sub-keys under prefixLog.
const (
	logSize  = 's' // Ls -> uint64 committed size
	logNode  = 'n' // Ln level(1) index(8) -> 32-byte hash
	logLeaf  = 'l' // Ll index(8) -> appended-at unix nanos(8) + leaf bytes
	logIndex = 'i' // Li receipt id -> index(8)
	logAck   = 'a' // La receipt id 0x00 requester -> Ack JSON
)

// Hasher is the log's hasher: RFC 6962 SHA-256.
var Hasher = rfc6962.DefaultHasher

// LogOptions tunes a Log. The zero value is usable.
type LogOptions struct {
	Logger *slog.Logger
	// MaxBatch bounds how many concurrent appends share one Badger
	// transaction and one fsync (group commit). Default 128.
	MaxBatch int
	// Now is the clock for append times; default time.Now.
	Now func() time.Time
	// Syncer is db's Syncer, shared with the other durable writers of db
	// (nil: one of the log's own).
	Syncer *Syncer
}

// Log is the append-only receipt log. Appends from many goroutines are
// grouped into one transaction and one fsync, so durability costs one sync
// per batch, not per receipt.
type Log struct {
	db    *badger.DB
	sync  *Syncer
	log   *slog.Logger
	now   func() time.Time
	rf    *compact.RangeFactory
	max   int
	size  atomic.Uint64
	reqs  chan *appendReq
	stop  chan struct{}
	done  chan struct{}
	close sync.Once

	// rng is the right edge of the tree; only the writer goroutine
	// touches it after Open.
	rng *compact.Range

	// recent holds the ids the writer appended last, so that PutAck finds
	// the receipt an ack names without reading the index (a Badger read
	// goes through every memtable and level): a node takes each ack in
	// the exchange that logged its receipt.
	recent *recentIDs
}

// recentIDsCap bounds Log.recent: at a thousand receipts a second, the
// last 16 s of them, longer than an exchange may last.
const recentIDsCap = 1 << 14

// recentIDs is a set of the last len(ring) ids added.
type recentIDs struct {
	mu   sync.Mutex
	set  map[string]struct{}
	ring []string
	next int
}

func newRecentIDs(n int) *recentIDs {
	return &recentIDs{set: make(map[string]struct{}, n), ring: make([]string, n)}
}

func (r *recentIDs) add(ids ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if old := r.ring[r.next]; old != "" {
			delete(r.set, old)
		}
		r.ring[r.next] = id
		r.set[id] = struct{}{}
		r.next = (r.next + 1) % len(r.ring)
	}
}

func (r *recentIDs) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.set[id]
	return ok
}

type appendReq struct {
	id    string
	leaf  []byte
	reply chan appendRes
}

type appendRes struct {
	index uint64
	err   error
}

func nodeKey(level uint, index uint64) []byte {
	k := make([]byte, 11)
	k[0], k[1], k[2] = prefixLog, logNode, byte(level)
	binary.BigEndian.PutUint64(k[3:], index)
	return k
}

func leafKey(index uint64) []byte {
	k := make([]byte, 10)
	k[0], k[1] = prefixLog, logLeaf
	binary.BigEndian.PutUint64(k[2:], index)
	return k
}

func indexKey(id string) []byte { return append([]byte{prefixLog, logIndex}, id...) }

func ackPrefix(id string) []byte {
	return append(append([]byte{prefixLog, logAck}, id...), 0)
}

var sizeKey = []byte{prefixLog, logSize}

// OpenLog opens the receipt log in db, rebuilding the tree's right edge
// from the stored node hashes. Close it before closing db.
func OpenLog(db *badger.DB, opts LogOptions) (*Log, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 128
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Log{
		db: db, sync: syncerFor(db, opts.Syncer), log: opts.Logger, now: opts.Now, max: opts.MaxBatch,
		rf:     &compact.RangeFactory{Hash: Hasher.HashChildren},
		recent: newRecentIDs(recentIDsCap),
		reqs:   make(chan *appendReq),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	var size uint64
	err := db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(sizeKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("%w: log size has %d bytes", ErrCorrupt, len(v))
			}
			size = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("open receipt log: %w", err)
	}
	hashes, err := l.rangeHashes(0, size)
	if err != nil {
		return nil, fmt.Errorf("open receipt log at size %d: %w", size, err)
	}
	if l.rng, err = l.rf.NewRange(0, size, hashes); err != nil {
		return nil, fmt.Errorf("open receipt log: %w", err)
	}
	l.size.Store(size)
	go l.writer()
	return l, nil
}

// Close stops the writer; appends after Close fail with ErrClosed. Safe to
// call more than once.
func (l *Log) Close() error {
	l.close.Do(func() { close(l.stop) })
	<-l.done
	return nil
}

// Size is the number of durable leaves.
func (l *Log) Size() uint64 { return l.size.Load() }

// Append adds r (signed) to the log and returns its leaf index once the
// leaf is durable. A receipt whose id the log already holds is refused
// with ErrDuplicateReceipt and adds nothing: an id is issued once.
func (l *Log) Append(ctx context.Context, r *credit.Receipt) (uint64, error) {
	leaf, err := r.LeafBytes()
	if err != nil {
		return 0, fmt.Errorf("append receipt %s: %w", r.ID, err)
	}
	return l.AppendLeaf(ctx, r.ID, leaf)
}

// AppendLeaf is Append for the receipt with id whose LeafBytes are leaf
// (as credit.Receipt.SignLeaf returns them), which it does not encode
// again.
func (l *Log) AppendLeaf(ctx context.Context, id string, leaf []byte) (uint64, error) {
	req := &appendReq{id: id, leaf: leaf, reply: make(chan appendRes, 1)}
	select {
	case l.reqs <- req:
	case <-l.stop:
		return 0, ErrClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	// Once handed to the writer the append may commit; wait for the
	// outcome rather than abandoning it, so a caller never sends an answer
	// whose receipt it does not know to be logged.
	res := <-req.reply
	return res.index, res.err
}

func (l *Log) writer() {
	defer close(l.done)
	for {
		var batch []*appendReq
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
		case <-l.stop:
			return
		}
		// Before the batch is closed, the goroutines ready to run go first
		// (once): under load some of them are about to append and join
		// this batch's one sync (a sync is a device write of every page
		// the batch dirtied, whole folios on this kernel, BENCHMARKS.md),
		// instead of starting the next; with nothing else to run, as at
		// one query in flight, Gosched returns at once.
		yielded := false
	drain:
		for len(batch) < l.max {
			select {
			case r := <-l.reqs:
				batch = append(batch, r)
			default:
				if yielded {
					break drain
				}
				yielded = true
				runtime.Gosched()
			}
		}
		l.commit(batch)
	}
}

// commit writes a batch in one transaction and one sync, then answers
// every request. On failure the in-memory edge is restored.
func (l *Log) commit(batch []*appendReq) {
	saved, _ := l.rf.NewRange(0, l.rng.End(), slices.Clone(l.rng.Hashes()))
	results := make([]appendRes, len(batch))
	err := l.db.Update(func(txn *badger.Txn) error {
		seen := make(map[string]uint64, len(batch))
		stamp := make([]byte, 8)
		binary.BigEndian.PutUint64(stamp, uint64(l.now().UnixNano()))
		for i, req := range batch {
			// The id's index entry is read in the transaction that would
			// write it (one point lookup), so two appends of one id never
			// both succeed, whether in one batch or in two.
			idx, ok := seen[req.id]
			var err error
			if !ok {
				idx, err = indexIn(txn, req.id)
			}
			switch {
			case err == nil:
				results[i].err = fmt.Errorf("append receipt %s: %w at leaf %d", req.id, ErrDuplicateReceipt, idx)
				continue
			case !errors.Is(err, ErrNotFound):
				return err
			}
			idx = l.rng.End()
			results[i].index = idx
			seen[req.id] = idx
			var werr error
			visit := func(id compact.NodeID, hash []byte) {
				if werr == nil {
					werr = txn.Set(nodeKey(id.Level, id.Index), slices.Clone(hash))
				}
			}
			if err := l.rng.Append(Hasher.HashLeaf(req.leaf), visit); err != nil {
				return err
			}
			if werr != nil {
				return werr
			}
			if err := txn.Set(leafKey(idx), append(slices.Clone(stamp), req.leaf...)); err != nil {
				return err
			}
			ib := make([]byte, 8)
			binary.BigEndian.PutUint64(ib, idx)
			if err := txn.Set(indexKey(req.id), ib); err != nil {
				return err
			}
		}
		sb := make([]byte, 8)
		binary.BigEndian.PutUint64(sb, l.rng.End())
		return txn.Set(sizeKey, sb)
	})
	if err == nil {
		err = l.sync.Sync()
	}
	if err != nil {
		l.rng = saved
		l.log.Error("receipt log append failed", "batch", len(batch), "err", err)
		for _, req := range batch {
			req.reply <- appendRes{err: fmt.Errorf("append receipt %s: %w", req.id, err)}
		}
		return
	}
	l.size.Store(l.rng.End())
	ids := make([]string, 0, len(batch))
	for i, req := range batch {
		if results[i].err == nil {
			ids = append(ids, req.id)
		}
	}
	l.recent.add(ids...)
	for i, req := range batch {
		req.reply <- results[i]
	}
}

// rangeHashes reads the roots of the perfect subtrees covering [begin, end).
func (l *Log) rangeHashes(begin, end uint64) ([][]byte, error) {
	return l.nodeHashes(compact.RangeNodes(begin, end, nil))
}

func (l *Log) nodeHashes(ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	err := l.db.View(func(txn *badger.Txn) error {
		for i, id := range ids {
			item, err := txn.Get(nodeKey(id.Level, id.Index))
			if errors.Is(err, badger.ErrKeyNotFound) {
				return fmt.Errorf("%w: tree node (%d,%d) missing", ErrCorrupt, id.Level, id.Index)
			}
			if err != nil {
				return err
			}
			if out[i], err = item.ValueCopy(nil); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// Root is the RFC 6962 root hash of the log's first size leaves.
func (l *Log) Root(size uint64) ([]byte, error) {
	if size > l.Size() {
		return nil, fmt.Errorf("root at size %d of a log of %d: %w", size, l.Size(), ErrOutOfRange)
	}
	if size == 0 {
		return Hasher.EmptyRoot(), nil
	}
	hashes, err := l.rangeHashes(0, size)
	if err != nil {
		return nil, err
	}
	rng, err := l.rf.NewRange(0, size, hashes)
	if err != nil {
		return nil, err
	}
	return rng.GetRootHash(nil)
}

// Head returns the current size and root together.
func (l *Log) Head() (uint64, []byte, error) {
	size := l.Size()
	root, err := l.Root(size)
	return size, root, err
}

// InclusionProof proves leaf index is in the tree of the given size.
func (l *Log) InclusionProof(index, size uint64) ([][]byte, error) {
	if size > l.Size() || index >= size {
		return nil, fmt.Errorf("inclusion of leaf %d at size %d (log size %d): %w", index, size, l.Size(), ErrOutOfRange)
	}
	n, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	return l.rehash(n)
}

// ConsistencyProof proves the tree of size1 is a prefix of the tree of
// size2.
func (l *Log) ConsistencyProof(size1, size2 uint64) ([][]byte, error) {
	if size2 > l.Size() || size1 > size2 {
		return nil, fmt.Errorf("consistency %d..%d (log size %d): %w", size1, size2, l.Size(), ErrOutOfRange)
	}
	n, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	return l.rehash(n)
}

func (l *Log) rehash(n proof.Nodes) ([][]byte, error) {
	hashes, err := l.nodeHashes(n.IDs)
	if err != nil {
		return nil, err
	}
	return n.Rehash(hashes, Hasher.HashChildren)
}

// Entry is one leaf of the log.
type Entry struct {
	Index      uint64
	AppendedAt time.Time
	Leaf       []byte // the receipt's LeafBytes
}

// Receipt decodes the entry's receipt. A leaf is the receipt's canonical
// LeafBytes, which credit.DecodeCanonicalReceipt reads in one pass without
// reflection (it gives what encoding/json gives, or refuses); anything
// else goes to encoding/json.
func (e *Entry) Receipt() (credit.Receipt, error) {
	return decodeLeaf(e.Index, e.Leaf)
}

func decodeLeaf(index uint64, leaf []byte) (credit.Receipt, error) {
	if r, ok := credit.DecodeCanonicalReceipt(leaf); ok {
		return r, nil
	}
	var r credit.Receipt
	if err := json.Unmarshal(leaf, &r); err != nil {
		return r, fmt.Errorf("%w: leaf %d: %w", ErrCorrupt, index, err)
	}
	return r, nil
}

func decodeEntry(index uint64, v []byte) (Entry, error) {
	if len(v) < 8 {
		return Entry{}, fmt.Errorf("%w: leaf %d too short", ErrCorrupt, index)
	}
	return Entry{
		Index:      index,
		AppendedAt: time.Unix(0, int64(binary.BigEndian.Uint64(v[:8]))).UTC(),
		Leaf:       slices.Clone(v[8:]),
	}, nil
}

// Entry returns the leaf at index.
func (l *Log) Entry(index uint64) (Entry, error) {
	if index >= l.Size() {
		return Entry{}, fmt.Errorf("leaf %d of %d: %w", index, l.Size(), ErrOutOfRange)
	}
	var e Entry
	err := l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(leafKey(index))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) (err error) { e, err = decodeEntry(index, v); return })
	})
	return e, err
}

// IndexOf returns the leaf index of a logged receipt id.
func (l *Log) IndexOf(id string) (uint64, error) {
	var idx uint64
	err := l.db.View(func(txn *badger.Txn) (err error) {
		idx, err = indexIn(txn, id)
		return err
	})
	return idx, err
}

// Lookup returns a logged receipt and its entry by id.
func (l *Log) Lookup(id string) (credit.Receipt, Entry, error) {
	var e Entry
	err := l.db.View(func(txn *badger.Txn) error {
		idx, err := indexIn(txn, id)
		if err != nil {
			return err
		}
		item, err := txn.Get(leafKey(idx))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) (err error) { e, err = decodeEntry(idx, v); return })
	})
	if err != nil {
		return credit.Receipt{}, Entry{}, err
	}
	r, err := e.Receipt()
	return r, e, err
}

// indexIn reads a logged receipt's leaf index in txn.
func indexIn(txn *badger.Txn, id string) (uint64, error) {
	item, err := txn.Get(indexKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, fmt.Errorf("receipt %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	var idx uint64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: index of %s", ErrCorrupt, id)
		}
		idx = binary.BigEndian.Uint64(v)
		return nil
	})
	return idx, err
}

// Scan calls fn for every leaf in [from, to) in order; to beyond the size
// is clipped. fn's error stops the scan and is returned.
func (l *Log) Scan(from, to uint64, fn func(Entry) error) error {
	if size := l.Size(); to > size {
		to = size
	}
	if from >= to {
		return nil
	}
	return l.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false // measured: prefetch is 5x slower in v4.9.6
		opts.Prefix = []byte{prefixLog, logLeaf}
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(leafKey(from)); it.Valid(); it.Next() {
			k := it.Item().Key()
			idx := binary.BigEndian.Uint64(k[2:])
			if idx >= to {
				return nil
			}
			var e Entry
			if err := it.Item().Value(func(v []byte) (err error) { e, err = decodeEntry(idx, v); return }); err != nil {
				return err
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
}

// PutAck stores a requester's acknowledgement beside the receipt it
// names; storing the same requester's ack again replaces it.
func (l *Log) PutAck(a credit.Ack) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	// The receipt's presence is checked in the transaction that stores
	// the ack, unless the writer appended it lately.
	known := l.recent.has(a.ReceiptID)
	var missing error
	err = l.db.Update(func(txn *badger.Txn) error {
		if !known {
			if _, err := indexIn(txn, a.ReceiptID); err != nil {
				missing = err
				return err
			}
		}
		return txn.Set(append(ackPrefix(a.ReceiptID), a.Requester...), b)
	})
	if missing != nil {
		return fmt.Errorf("ack by %s: %w", a.Requester, missing)
	}
	if err != nil {
		return fmt.Errorf("store ack of %s: %w", a.ReceiptID, err)
	}
	return nil
}

// Acks lists the acknowledgements stored for a receipt.
func (l *Log) Acks(receiptID string) ([]credit.Ack, error) {
	var out []credit.Ack
	err := l.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = ackPrefix(receiptID)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var a credit.Ack
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &a) }); err != nil {
				return fmt.Errorf("%w: ack: %w", ErrCorrupt, err)
			}
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

// Receipt returns a logged receipt by id.
func (l *Log) Receipt(id string) (credit.Receipt, error) {
	r, _, err := l.Lookup(id)
	return r, err
}
