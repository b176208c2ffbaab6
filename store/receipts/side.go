package receipts

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/prdcredit/ccnode/credit"
)

// Requested keeps the receipts this node received as a requester, with the
// acknowledgement it signed for each: the evidence an auditor cross-checks
// against the answering region's log.
type Requested struct {
	db   *badger.DB
	sync *Syncer
}

// NewRequested uses db's C prefix; s is db's Syncer (nil: one of its own).
func NewRequested(db *badger.DB, s *Syncer) *Requested {
	return &Requested{db: db, sync: syncerFor(db, s)}
}

// Held is a receipt received as requester.
type Held struct {
	Receipt    credit.Receipt `json:"receipt"`
	Ack        credit.Ack     `json:"ack"`
	ReceivedAt time.Time      `json:"received_at"`
	// Leaf is the receipt's LeafBytes. Put stores it as given when it is
	// set (the requester has it from the receipt's check) instead of
	// encoding the receipt again; Scan and Get set it.
	Leaf []byte `json:"-"`
}

// A query's received receipts are kept as one value under
// prefixRequested, groupTag and the first receipt's id: the query (most of
// each receipt's bytes, with its consent and certificates) once, then
// each receipt's leaf without it, its ack and when it arrived
// (encodeGroup). Values stored before, one JSON Held per receipt id
// directly under prefixRequested, are still read. Receipt ids are hex, so
// the two kinds of key never meet.
const (
	groupTag    = 0x01
	groupFormat = 0x01 // the value's first byte
)

func requestedKey(id string) []byte { return append([]byte{prefixRequested}, id...) }

func groupKey(id string) []byte { return append([]byte{prefixRequested, groupTag}, id...) }

// Put stores one query's received receipts and our acks in one
// transaction. It returns once they are committed, which a crash of the
// process does not undo (Badger's write-ahead log is mapped memory); they
// survive a crash of the machine too once the next sync round of the
// database has run, at the latest DefaultSoonDelay later (Syncer.Soon). A
// requester's copy is evidence beside the answering region's durable
// log: waiting for its msync added one to every query's latency, and a
// round of its own at once held up the next query's nonce, which Badger
// writes only once the WAL's msync is over. A second Put whose first
// receipt is the same replaces the first one's group.
func (s *Requested) Put(hs ...Held) error {
	if len(hs) == 0 {
		return nil
	}
	v, err := encodeGroup(hs)
	if err == nil {
		err = s.db.Update(func(txn *badger.Txn) error { return txn.Set(groupKey(hs[0].Receipt.ID), v) })
	}
	if err != nil {
		return fmt.Errorf("store %d received receipts: %w", len(hs), err)
	}
	s.sync.Soon()
	return nil
}

// encodeGroup encodes hs, the receipts of one query (BenchmarkRequestedPut):
//
//	format byte, uvarint length + the query's canonical encoding q,
//	uvarint count, then per receipt:
//	  uvarint at (0: the leaf is whole; else q was cut out at at-1),
//	  uvarint length + the leaf's bytes, uvarint length + the ack's JSON,
//	  varint received-at Unix nanoseconds.
//
// A receipt of another query, or a leaf that does not hold q verbatim, is
// stored whole.
func encodeGroup(hs []Held) ([]byte, error) {
	q, _, err := hs[0].Receipt.Query.CanonicalAndDigest()
	if err != nil {
		return nil, err
	}
	size := 16 + len(q)
	leaves := make([][]byte, len(hs))
	for i := range hs {
		if leaves[i] = hs[i].Leaf; leaves[i] == nil {
			if leaves[i], err = hs[i].Receipt.LeafBytes(); err != nil {
				return nil, err
			}
		}
		size += len(leaves[i]) + 512
	}
	v := make([]byte, 0, size)
	v = append(v, groupFormat)
	v = binary.AppendUvarint(v, uint64(len(q)))
	v = append(v, q...)
	v = binary.AppendUvarint(v, uint64(len(hs)))
	for i := range hs {
		leaf := leaves[i]
		at := bytes.Index(leaf, q)
		v = binary.AppendUvarint(v, uint64(at+1))
		if at < 0 {
			v = binary.AppendUvarint(v, uint64(len(leaf)))
			v = append(v, leaf...)
		} else {
			v = binary.AppendUvarint(v, uint64(len(leaf)-len(q)))
			v = append(append(v, leaf[:at]...), leaf[at+len(q):]...)
		}
		ack, err := json.Marshal(hs[i].Ack)
		if err != nil {
			return nil, err
		}
		v = binary.AppendUvarint(v, uint64(len(ack)))
		v = append(v, ack...)
		v = binary.AppendVarint(v, hs[i].ReceivedAt.UnixNano())
	}
	return v, nil
}

// decodeGroup calls fn for each receipt of a value encodeGroup made.
func decodeGroup(v []byte, fn func(Held) error) error {
	d := groupDecoder{b: v}
	if len(v) == 0 || v[0] != groupFormat {
		return fmt.Errorf("%w: received receipts: unknown format", ErrCorrupt)
	}
	d.b = d.b[1:]
	q := d.bytes()
	n := d.uvarint()
	for i := uint64(0); i < n && d.err == nil; i++ {
		at := d.uvarint()
		rest := d.bytes()
		ack := d.bytes()
		nanos := d.varint()
		if d.err != nil {
			break
		}
		var leaf []byte // v is Badger's, valid only inside its call
		if at == 0 {
			leaf = bytes.Clone(rest)
		} else {
			if at-1 > uint64(len(rest)) {
				return fmt.Errorf("%w: received receipts: query cut at %d of a %d-byte leaf", ErrCorrupt, at-1, len(rest))
			}
			leaf = make([]byte, 0, len(rest)+len(q))
			leaf = append(append(append(leaf, rest[:at-1]...), q...), rest[at-1:]...)
		}
		h := Held{Leaf: leaf, ReceivedAt: time.Unix(0, nanos).UTC()}
		var ok bool
		if h.Receipt, ok = credit.DecodeCanonicalReceipt(leaf); !ok {
			var err error
			if h.Receipt, err = credit.DecodeReceipt(leaf); err != nil {
				return fmt.Errorf("%w: received receipt: %w", ErrCorrupt, err)
			}
		}
		if err := json.Unmarshal(ack, &h.Ack); err != nil {
			return fmt.Errorf("%w: ack of received receipt %s: %w", ErrCorrupt, h.Receipt.ID, err)
		}
		if err := fn(h); err != nil {
			return err
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after the last receipt", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("%w: received receipts: %w", ErrCorrupt, d.err)
	}
	return nil
}

// groupDecoder reads encodeGroup's fields; the first error sticks.
type groupDecoder struct {
	b   []byte
	err error
}

func (d *groupDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("truncated")
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *groupDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errors.New("truncated")
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *groupDecoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("a field of %d bytes with %d left", n, len(d.b))
		return nil
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b
}

// Get returns a received receipt by id. Receipts kept by query are
// found by a scan: Get is for tools and tests, not for a query's path.
func (s *Requested) Get(id string) (Held, error) {
	var h Held
	found := false
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(requestedKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &h) })
	})
	if err != nil || found {
		return h, err
	}
	errFound := errors.New("found")
	err = s.Scan(func(x Held) error {
		if x.Receipt.ID == id {
			h = x
			return errFound
		}
		return nil
	})
	if errors.Is(err, errFound) {
		return h, nil
	}
	if err != nil {
		return h, err
	}
	return h, fmt.Errorf("received receipt %s: %w", id, ErrNotFound)
}

// Scan calls fn for every received receipt: those kept by query in the
// order of their groups' keys, then those kept one by one, in id order.
func (s *Requested) Scan(fn func(Held) error) error {
	return s.db.View(func(txn *badger.Txn) error { return scanHeld(txn, fn) })
}

// ScanCounted calls count with the number of receipts held, then fn with
// each of them as Scan does, from one snapshot: an export states its size
// before its lines, and a home node keeps a receipt per region per query,
// too many to hold in memory to count them first.
func (s *Requested) ScanCounted(count func(int) error, fn func(Held) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		n, err := countHeld(txn)
		if err != nil {
			return err
		}
		if err := count(n); err != nil {
			return err
		}
		return scanHeld(txn, fn)
	})
}

// heldIterator iterates over the received receipts' keys.
func heldIterator(txn *badger.Txn) *badger.Iterator {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = []byte{prefixRequested}
	return txn.NewIterator(opts)
}

// countHeld counts the received receipts, reading only a group's header.
func countHeld(txn *badger.Txn) (int, error) {
	it := heldIterator(txn)
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		if k := item.Key(); len(k) < 2 || k[1] != groupTag {
			n++
			continue
		}
		if err := item.Value(func(v []byte) error {
			c, err := groupCount(v)
			n += c
			return err
		}); err != nil {
			return n, err
		}
	}
	return n, nil
}

func scanHeld(txn *badger.Txn, fn func(Held) error) error {
	it := heldIterator(txn)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		if k := item.Key(); len(k) > 1 && k[1] == groupTag {
			if err := item.Value(func(v []byte) error { return decodeGroup(v, fn) }); err != nil {
				return err
			}
			continue
		}
		var h Held
		if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &h) }); err != nil {
			return fmt.Errorf("%w: received receipt: %w", ErrCorrupt, err)
		}
		if err := fn(h); err != nil {
			return err
		}
	}
	return nil
}

// groupCount is the number of receipts in a group's value (encodeGroup).
func groupCount(v []byte) (int, error) {
	if len(v) == 0 || v[0] != groupFormat {
		return 0, fmt.Errorf("%w: received receipts: unknown format", ErrCorrupt)
	}
	d := groupDecoder{b: v[1:]}
	d.bytes()
	n := d.uvarint()
	if d.err != nil {
		return 0, d.err
	}
	return int(n), nil
}

// Pending is a signed checkpoint waiting to be anchored, with the
// consistency proof from the last anchored checkpoint.
type Pending struct {
	Checkpoint credit.Checkpoint `json:"checkpoint"`
	FromSize   uint64            `json:"from_size"`
	Proof      [][]byte          `json:"proof"`
	CreatedAt  time.Time         `json:"created_at"`
	// OldestLeafAt is when the oldest leaf this checkpoint newly covers
	// was appended: anchoring lag is measured from it.
	OldestLeafAt time.Time `json:"oldest_leaf_at"`
}

// Outbox holds at most one pending checkpoint and the last anchored one.
// Anchoring is idempotent on the ledger, so a pending checkpoint that was
// in fact committed before a crash is simply anchored again.
type Outbox struct {
	db   *badger.DB
	sync *Syncer
}

// NewOutbox uses db's O prefix; s is db's Syncer (nil: one of its own).
func NewOutbox(db *badger.DB, s *Syncer) *Outbox { return &Outbox{db: db, sync: syncerFor(db, s)} }

// syncerFor is s, or a Syncer of db's own that groups only its owner's
// calls.
func syncerFor(db *badger.DB, s *Syncer) *Syncer {
	if s == nil {
		return NewSyncer(db)
	}
	return s
}

var (
	outboxPending  = []byte{prefixOutbox, 'p'}
	outboxAnchored = []byte{prefixOutbox, 'a'}
	outboxView     = []byte{prefixOutbox, 'v'}
	outboxHistory  = []byte{prefixOutbox, 'h'} // + big-endian size: every checkpoint seen anchored
)

func historyKey(size uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), outboxHistory...), size)
}

func getJSON(db *badger.DB, key []byte, v any) (bool, error) {
	found := false
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return item.Value(func(b []byte) error {
			if err := json.Unmarshal(b, v); err != nil {
				return fmt.Errorf("%w: %q: %w", ErrCorrupt, key, err)
			}
			return nil
		})
	})
	return found, err
}

func putJSON(db *badger.DB, s *Syncer, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(key, b) }); err != nil {
		return err
	}
	return s.Sync()
}

// SetPending replaces the pending checkpoint, durably.
func (o *Outbox) SetPending(p Pending) error {
	if err := putJSON(o.db, o.sync, outboxPending, p); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// Pending returns the pending checkpoint, if any.
func (o *Outbox) Pending() (Pending, bool, error) {
	var p Pending
	ok, err := getJSON(o.db, outboxPending, &p)
	return p, ok, err
}

// MarkAnchored records ac as the last anchored checkpoint (and in the
// history AnchoredAt reads) and clears the pending one if ac covers it, in
// one transaction.
func (o *Outbox) MarkAnchored(ac credit.AnchoredCheckpoint) error {
	b, err := json.Marshal(ac)
	if err != nil {
		return err
	}
	err = o.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(outboxPending)
		if err == nil {
			var p Pending
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &p) }); err != nil {
				return fmt.Errorf("%w: pending: %w", ErrCorrupt, err)
			}
			if p.Checkpoint.Size <= ac.Size {
				if err := txn.Delete(outboxPending); err != nil {
					return err
				}
			}
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if err := txn.Set(historyKey(ac.Size), b); err != nil {
			return err
		}
		return txn.Set(outboxAnchored, b)
	})
	if err == nil {
		err = o.sync.Sync()
	}
	if err != nil {
		return fmt.Errorf("outbox: mark anchored at %d: %w", ac.Size, err)
	}
	return nil
}

// LastAnchored returns the last checkpoint this node saw anchored.
func (o *Outbox) LastAnchored() (credit.AnchoredCheckpoint, bool, error) {
	var ac credit.AnchoredCheckpoint
	ok, err := getJSON(o.db, outboxAnchored, &ac)
	return ac, ok, err
}

// AnchoredAt returns the checkpoint of size this node saw anchored, if it
// saw one: the proofs it serves connect checkpoints the ledger holds.
func (o *Outbox) AnchoredAt(size uint64) (credit.AnchoredCheckpoint, bool, error) {
	var ac credit.AnchoredCheckpoint
	ok, err := getJSON(o.db, historyKey(size), &ac)
	return ac, ok, err
}

// SaveView stores the node's cached ledger view (any JSON value, such as
// the consent commitments and the event position they reflect).
func (o *Outbox) SaveView(v any) error {
	if err := putJSON(o.db, o.sync, outboxView, v); err != nil {
		return fmt.Errorf("save ledger view: %w", err)
	}
	return nil
}

// LoadView reads the cached ledger view into v; false if none is stored.
func (o *Outbox) LoadView(v any) (bool, error) { return getJSON(o.db, outboxView, v) }

// Nonces remembers bank query nonces until they expire, so that a replayed
// query within its freshness window is refused. Badger drops expired keys
// itself.
type Nonces struct{ db *badger.DB }

// nonceSpace follows the N prefix of every nonce key; it was the home
// node's namespace when the answering side kept nonces of its own, and
// stays so that nonces stored before are still found.
const nonceSpace = 'h'

// NewNonces uses db's N prefix. A node spends each query's nonce once,
// whichever side it answers on.
func NewNonces(db *badger.DB) *Nonces { return &Nonces{db: db} }

// Use records (bank, nonce) for at least ttl from now; ErrReplay if it is
// already recorded.
func (n *Nonces) Use(bank credit.BankID, nonce string, ttl time.Duration) error {
	key := append(append(append([]byte{prefixNonce, nonceSpace}, bank...), 0), nonce...)
	e := badger.NewEntry(key, nil)
	e.ExpiresAt = expiresAt(time.Now(), ttl)
	err := n.db.Update(func(txn *badger.Txn) error {
		if _, err := txn.Get(key); err == nil {
			return ErrReplay
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		return txn.SetEntry(e)
	})
	if errors.Is(err, badger.ErrConflict) {
		// A concurrent transaction wrote the same nonce first.
		err = ErrReplay
	}
	if err != nil {
		return fmt.Errorf("nonce %s of bank %s: %w", nonce, bank, err)
	}
	return nil
}

// expiresAt is Badger's expiry for a key that must live at least ttl from
// now. Badger keeps expiries in whole Unix seconds of the wall clock and
// drops a key once the clock reaches that second; WithTTL truncates, which
// forgets the key up to a second early, so the second is rounded up past
// now+ttl instead.
func expiresAt(now time.Time, ttl time.Duration) uint64 {
	return uint64(now.Add(ttl).Unix()) + 1
}

// ClearPending drops the pending checkpoint, when it was built on a base
// the ledger no longer has as latest; the next round builds a new one.
func (o *Outbox) ClearPending() error {
	err := o.db.Update(func(txn *badger.Txn) error { return txn.Delete(outboxPending) })
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return o.sync.Sync()
}
