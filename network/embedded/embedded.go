// Package embedded is the one-process ledger backend: it runs the
// consortium contract (package chaincode, the same code Fabric runs) over a
// local Badger state, one transaction at a time, with hash-chained blocks,
// key history and events, all persisted so that a restart loses nothing.
//
// Callers authenticate as on Fabric: each client acts as one MSP identity
// and signs every transaction proposal with that identity's ed25519 key;
// the server checks the signature against its identity registry (the
// embedded counterpart of a channel's MSP configuration) before the
// contract sees the caller. Several nodes in one process share one Server,
// each through its own Client.
package embedded

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/prdcredit/ccnode/chaincode"
	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/badgerrepair"
	"github.com/prdcredit/ccnode/network"
)

// Key layout of the ledger's Badger database.
const (
	keyState    = "s/" // s/<contract key> -> value
	keyHistory  = "h/" // h/<contract key>/<block:8> -> historyValue
	keyBlock    = "b/" // b/<block:8> -> Block JSON
	keyIdentity = "i/" // i/<msp id> -> ed25519 public key
	// keyNonce (nonce.go): n/<msp id>/<nonce> -> proposals accepted lately
	keyHeight = "m/height"
)

// Options configures a Server.
type Options struct {
	InMemory bool
	Logger   *slog.Logger
	// Now is the clock that stamps transactions and times proposal nonces
	// (default time.Now); tests pass one they move. Block times still
	// strictly increase: a clock set back stamps 1 µs after the last block.
	Now func() time.Time
	// Identities are registered at opening, as AddIdentity would (the
	// embedded counterpart of a channel's MSP configuration).
	Identities map[string]ed25519.PublicKey
}

// Block is one committed transaction. Hash covers every other field, and
// PrevHash chains it to the block before, so a changed block is detected
// by VerifyChain.
type Block struct {
	Number   uint64    `json:"number"`
	PrevHash []byte    `json:"prev_hash"`
	TxID     string    `json:"tx_id"`
	Time     time.Time `json:"time"`
	Caller   string    `json:"caller"`
	Function string    `json:"function"`
	// ArgsDigest is SHA-256 of the JSON array of the call's arguments;
	// what they changed is in Writes.
	ArgsDigest []byte   `json:"args_digest"`
	Writes     []Write  `json:"writes"`
	Event      *TxEvent `json:"event,omitempty"`
	Hash       []byte   `json:"hash"`
}

// Write is one key written by a block.
type Write struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

// TxEvent is the contract event a block carries.
type TxEvent struct {
	Name    string          `json:"name"`
	Payload json.RawMessage `json:"payload"`
}

func (b *Block) computeHash() []byte {
	c := *b
	c.Hash = nil
	raw, _ := json.Marshal(c) // fixed struct order: deterministic
	h := sha256.Sum256(raw)
	return h[:]
}

type historyValue struct {
	TxID  string    `json:"tx_id"`
	Time  time.Time `json:"time"`
	Value []byte    `json:"value"`
}

// Server is the embedded ledger. Its methods are safe for concurrent use.
type Server struct {
	db    *badger.DB
	log   *slog.Logger
	now   func() time.Time
	rules chaincode.Contract

	mu       sync.Mutex // serialises transactions
	height   uint64
	lastHash []byte
	lastTime time.Time
	changed  chan struct{} // closed and replaced after every commit
	closed   bool

	// life keeps reads that run outside mu (evaluations, event reads)
	// off the database while Close closes it: Badger must not be used
	// during or after its Close.
	life     sync.RWMutex
	dbClosed bool
}

// Open opens (or creates) the ledger in dir.
func Open(dir string, o Options) (*Server, error) {
	bo := badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true)
	if o.InMemory {
		bo = badger.DefaultOptions("").WithInMemory(true).WithLogger(nil)
	} else if _, err := badgerrepair.EmptyMemtables(dir); err != nil {
		return nil, fmt.Errorf("embedded ledger: open %s: %w", dir, err)
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("embedded ledger: open %s: %w", dir, err)
	}
	s := &Server{db: db, log: o.Logger, now: o.Now, changed: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	msps := make([]string, 0, len(o.Identities))
	for m := range o.Identities {
		msps = append(msps, m)
	}
	sort.Strings(msps)
	for _, m := range msps {
		if err := s.AddIdentity(m, o.Identities[m]); err != nil {
			db.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Server) load() error {
	return s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyHeight))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if s.height, err = decodeHeight(v); err != nil {
			return err
		}
		b, err := readBlock(txn, s.height)
		if err != nil {
			return fmt.Errorf("embedded ledger: head block %d: %w", s.height, err)
		}
		s.lastHash, s.lastTime = b.Hash, b.Time
		return nil
	})
}

// Close closes the ledger; it is safe to call twice.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.changed)
	s.life.Lock()
	defer s.life.Unlock()
	s.dbClosed = true
	return s.db.Close()
}

// errClosed is what a read of a closed ledger returns.
var errClosed = &network.Error{Op: "read", Kind: network.ErrUnavailable, Msg: "ledger closed"}

// view runs fn in a read transaction, unless the ledger is closed.
func (s *Server) view(fn func(*badger.Txn) error) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.dbClosed {
		return errClosed
	}
	return s.db.View(fn)
}

// update runs fn in a write transaction, unless the ledger is closed.
func (s *Server) update(fn func(*badger.Txn) error) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.dbClosed {
		return errClosed
	}
	return s.db.Update(fn)
}

// Height is the number of the last committed block (0: none).
func (s *Server) Height() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.height
}

// AddIdentity registers an MSP identity's public key. Registering the same
// key again is a no-op; a different key for a known MSP id is refused.
func (s *Server) AddIdentity(mspID string, pub ed25519.PublicKey) error {
	if mspID == "" || len(pub) != ed25519.PublicKeySize {
		return &network.Error{Op: "AddIdentity", Kind: network.ErrInvalid, Msg: "want an MSP id and a 32-byte ed25519 key"}
	}
	return s.update(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyIdentity + mspID))
		if err == nil {
			old, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if !ed25519.PublicKey(old).Equal(pub) {
				return &network.Error{Op: "AddIdentity", Kind: network.ErrConflict, Msg: "MSP " + mspID + " is registered with another key"}
			}
			return nil
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		return txn.Set([]byte(keyIdentity+mspID), pub)
	})
}

func (s *Server) identity(mspID string) (ed25519.PublicKey, error) {
	var pub ed25519.PublicKey
	err := s.view(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyIdentity + mspID))
		if err != nil {
			return err
		}
		pub, err = item.ValueCopy(nil)
		return err
	})
	return pub, err
}

// decodeHeight reads the stored head; a folder handed to an auditor may
// hold anything, so a bad value is an error, not a panic.
func decodeHeight(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("embedded ledger: stored height is %d bytes, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func blockKey(n uint64) []byte {
	k := make([]byte, len(keyBlock)+8)
	copy(k, keyBlock)
	binary.BigEndian.PutUint64(k[len(keyBlock):], n)
	return k
}

func readBlock(txn *badger.Txn, n uint64) (Block, error) {
	var b Block
	item, err := txn.Get(blockKey(n))
	if err != nil {
		return b, err
	}
	err = item.Value(func(v []byte) error { return json.Unmarshal(v, &b) })
	return b, err
}

// authenticate checks a proposal's signature against the registry. The one
// exception is a candidate region's own ProposeRegion (candidateKey).
func (s *Server) authenticate(tx credit.LedgerTx) error {
	pub, err := s.identity(tx.Caller)
	if errors.Is(err, badger.ErrKeyNotFound) {
		if pub = candidateKey(tx); pub == nil {
			return &network.Error{Op: tx.Function, Kind: network.ErrDenied, Msg: "unknown identity " + tx.Caller}
		}
		err = nil
	}
	if err != nil {
		return &network.Error{Op: tx.Function, Kind: network.ErrUnavailable, Msg: err.Error()}
	}
	if err := credit.VerifyLedgerTx(pub, tx); err != nil {
		return &network.Error{Op: tx.Function, Kind: network.ErrDenied, Msg: "proposal signature of " + tx.Caller + " does not verify"}
	}
	return nil
}

// proposeFunc is the one function an unregistered identity may call.
const proposeFunc = "ProposeRegion"

// candidateKey is the key a ProposeRegion from an unregistered caller must
// be signed with: the one its own descriptor names, for the MSP id the
// descriptor names. The caller proves it holds the key it proposes, so it
// can speak for no one else; nil for anything else. Its identity is
// registered only when the proposal is accepted (registerAccepted): until
// then it can neither read the ledger nor call anything but this.
func candidateKey(tx credit.LedgerTx) ed25519.PublicKey {
	if tx.Function != proposeFunc || len(tx.Args) != 1 {
		return nil
	}
	var d credit.RegionMember
	if json.Unmarshal([]byte(tx.Args[0]), &d) != nil || d.MSPID != tx.Caller || len(d.PubKey) != ed25519.PublicKeySize {
		return nil
	}
	return ed25519.PublicKey(d.PubKey)
}

// registerAccepted registers, in the transaction that accepts it, the
// ledger identity of a region that joined by a vote: its MSP id with the
// key of its descriptor, as a bootstrapped member's is registered. An MSP
// id registered already keeps its key: the registry, not the record, is
// the identity (a rotated region's record names its new node key).
func registerAccepted(txn *badger.Txn, ev *TxEvent) error {
	if ev == nil || ev.Name != chaincode.EventMemberChanged {
		return nil
	}
	var p chaincode.EventPayload
	if err := json.Unmarshal(ev.Payload, &p); err != nil {
		return err
	}
	if p.Proposal == nil || p.Region == nil || p.Proposal.Kind != credit.ProposalJoin || p.Region.Status != credit.StatusActive {
		return nil
	}
	_, err := txn.Get([]byte(keyIdentity + p.Region.MSPID))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return txn.Set([]byte(keyIdentity+p.Region.MSPID), p.Region.PubKey)
	}
	return err
}

// txCtx is the contract's view of one transaction: reads see the
// committed state plus this transaction's own writes.
type txCtx struct {
	s      *Server
	txn    *badger.Txn
	msp    string
	id     string
	at     time.Time
	writes map[string][]byte
	order  []string
	event  *TxEvent
}

func (c *txCtx) MSPID() (string, error)     { return c.msp, nil }
func (c *txCtx) TxID() string               { return c.id }
func (c *txCtx) TxTime() (time.Time, error) { return c.at, nil }

func (c *txCtx) GetState(key string) ([]byte, error) {
	if v, ok := c.writes[key]; ok {
		return v, nil
	}
	item, err := c.txn.Get([]byte(keyState + key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

func (c *txCtx) PutState(key string, v []byte) error {
	if c.writes == nil {
		c.writes = map[string][]byte{}
	}
	if _, ok := c.writes[key]; !ok {
		c.order = append(c.order, key)
	}
	c.writes[key] = append([]byte(nil), v...)
	return nil
}

func (c *txCtx) GetStateRange(start, end string) ([]chaincode.KV, error) {
	// The contract reads ranges before it writes them, so committed state
	// is what it needs; pending writes in the range are merged for safety.
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	it := c.txn.NewIterator(opts)
	defer it.Close()
	seen := map[string]bool{}
	var out []chaincode.KV
	for it.Seek([]byte(keyState + start)); it.Valid(); it.Next() {
		k := string(it.Item().Key()[len(keyState):])
		if k >= end {
			break
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return nil, err
		}
		if w, ok := c.writes[k]; ok {
			v = w
		}
		seen[k] = true
		out = append(out, chaincode.KV{Key: k, Value: v})
	}
	for _, k := range c.order {
		if k >= start && k < end && !seen[k] {
			out = append(out, chaincode.KV{Key: k, Value: c.writes[k]})
		}
	}
	slices.SortFunc(out, func(a, b chaincode.KV) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

func (c *txCtx) History(key string) ([]chaincode.HistoryEntry, error) {
	prefix := []byte(keyHistory + key + "/")
	it := c.txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	var out []chaincode.HistoryEntry
	for it.Rewind(); it.Valid(); it.Next() {
		var h historyValue
		if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &h) }); err != nil {
			return nil, err
		}
		out = append(out, chaincode.HistoryEntry{TxID: h.TxID, Time: h.Time, Value: h.Value, IsDelete: h.Value == nil})
	}
	return out, nil
}

func (c *txCtx) SetEvent(name string, payload []byte) error {
	c.event = &TxEvent{Name: name, Payload: append([]byte(nil), payload...)}
	return nil
}

func newTxID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// evaluate runs a read-only contract function against committed state.
func (s *Server) evaluate(tx credit.LedgerTx, fn func(*txCtx) error) error {
	if err := s.authenticate(tx); err != nil {
		return err
	}
	return s.view(func(txn *badger.Txn) error {
		return fn(&txCtx{s: s, txn: txn, msp: tx.Caller, id: newTxID(), at: s.now().UTC()})
	})
}

// submit runs a contract function as a transaction: it is authenticated,
// executed alone, and its writes, history, block and event commit in one
// Badger transaction — or nothing does.
func (s *Server) submit(tx credit.LedgerTx, fn func(*txCtx) error) (string, error) {
	if err := s.authenticate(tx); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", &network.Error{Op: tx.Function, Kind: network.ErrUnavailable, Msg: "ledger closed"}
	}
	at := s.now().UTC()
	if !at.After(s.lastTime) {
		// Block times strictly increase, so history is ordered by time.
		at = s.lastTime.Add(time.Microsecond)
	}
	id := newTxID()
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	if err := s.checkNonce(txn, tx, s.now()); err != nil {
		return "", err
	}
	c := &txCtx{s: s, txn: txn, msp: tx.Caller, id: id, at: at}
	if err := fn(c); err != nil {
		return "", err
	}
	if err := registerAccepted(txn, c.event); err != nil {
		return "", err
	}
	b := Block{Number: s.height + 1, PrevHash: s.lastHash, TxID: id, Time: at, Caller: tx.Caller,
		Function: tx.Function, ArgsDigest: argsDigest(tx.Args), Event: c.event}
	for _, k := range c.order {
		b.Writes = append(b.Writes, Write{Key: k, Value: c.writes[k]})
		if err := txn.Set([]byte(keyState+k), c.writes[k]); err != nil {
			return "", err
		}
		hk, hv := historyEntry(b, k, c.writes[k])
		if err := txn.Set(hk, hv); err != nil {
			return "", err
		}
	}
	b.Hash = b.computeHash()
	raw, err := json.Marshal(b)
	if err != nil {
		return "", err
	}
	if err := txn.Set(blockKey(b.Number), raw); err != nil {
		return "", err
	}
	if err := txn.Set([]byte(keyHeight), binary.BigEndian.AppendUint64(nil, b.Number)); err != nil {
		return "", err
	}
	if err := txn.Commit(); err != nil {
		return "", &network.Error{Op: tx.Function, Kind: network.ErrUnavailable, Msg: err.Error()}
	}
	s.height, s.lastHash, s.lastTime = b.Number, b.Hash, b.Time
	close(s.changed)
	s.changed = make(chan struct{})
	return id, nil
}

// historyEntry is the history record block b keeps for its write of key.
func historyEntry(b Block, key string, value []byte) (k, v []byte) {
	v, _ = json.Marshal(historyValue{TxID: b.TxID, Time: b.Time, Value: value})
	k = append([]byte(keyHistory+key+"/"), binary.BigEndian.AppendUint64(nil, b.Number)...)
	return k, v
}

func argsDigest(args []string) []byte {
	if args == nil {
		args = []string{}
	}
	raw, _ := json.Marshal(args)
	h := sha256.Sum256(raw)
	return h[:]
}

// ErrChainBroken is wrapped by VerifyChain's errors.
var ErrChainBroken = errors.New("embedded ledger: chain does not verify")

// VerifyChain recomputes every block's hash and link, checks the recorded
// height names the last block, and that the current state is exactly what
// the blocks' write-sets produce — so a block, the state or the head changed
// behind the ledger's back is found. It names the first mismatch.
func (s *Server) VerifyChain() error {
	return s.view(func(txn *badger.Txn) error {
		broken := func(format string, args ...any) error {
			return fmt.Errorf("%w: %s", ErrChainBroken, fmt.Sprintf(format, args...))
		}
		var prev []byte
		replayed := map[string][]byte{}
		history := map[string][]byte{}
		n := uint64(1)
		for ; ; n++ {
			b, err := readBlock(txn, n)
			if errors.Is(err, badger.ErrKeyNotFound) {
				break
			}
			if err != nil {
				return fmt.Errorf("block %d: %w", n, err)
			}
			if b.Number != n {
				return broken("block %d carries number %d", n, b.Number)
			}
			if string(b.PrevHash) != string(prev) {
				return broken("block %d: previous-hash link broken", n)
			}
			if string(b.computeHash()) != string(b.Hash) {
				return broken("block %d: contents do not match its hash", n)
			}
			for _, w := range b.Writes {
				replayed[w.Key] = w.Value
				hk, hv := historyEntry(b, w.Key, w.Value)
				history[string(hk)] = hv
			}
			prev = b.Hash
		}
		var height uint64
		if item, err := txn.Get([]byte(keyHeight)); err == nil {
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if height, err = decodeHeight(v); err != nil {
				return broken("%v", err)
			}
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if height != n-1 {
			return broken("recorded height %d, but the chain ends at block %d", height, n-1)
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(keyState), PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		seen := 0
		for it.Rewind(); it.Valid(); it.Next() {
			k := string(it.Item().Key()[len(keyState):])
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			want, ok := replayed[k]
			if !ok {
				return broken("state key %q was written by no block", k)
			}
			if string(v) != string(want) {
				return broken("state key %q differs from the last block that wrote it", k)
			}
			seen++
		}
		if seen != len(replayed) {
			return broken("%d keys written by blocks are missing from the state", len(replayed)-seen)
		}
		// Key history answers "what held at time t": a changed entry could
		// back-date a revocation, so it is checked like the state.
		hit := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(keyHistory), PrefetchValues: true, PrefetchSize: 100})
		defer hit.Close()
		seen = 0
		for hit.Rewind(); hit.Valid(); hit.Next() {
			v, err := hit.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			want, ok := history[string(hit.Item().Key())]
			if !ok || string(v) != string(want) {
				return broken("key history entry %q is not what its block wrote", hit.Item().Key())
			}
			seen++
		}
		if seen != len(history) {
			return broken("%d key history entries are missing", len(history)-seen)
		}
		return nil
	})
}

// Block reads a committed block.
func (s *Server) Block(n uint64) (Block, error) {
	var b Block
	err := s.view(func(txn *badger.Txn) error {
		var err error
		b, err = readBlock(txn, n)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return b, &network.Error{Op: "Block", Kind: network.ErrNotFound, Msg: fmt.Sprintf("block %d", n)}
	}
	return b, err
}

// events returns the events of blocks after `after`, in order.
func (s *Server) events(after network.Position, limit int) ([]network.Event, uint64, error) {
	var out []network.Event
	var last uint64
	err := s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(keyBlock)})
		defer it.Close()
		for it.Seek(blockKey(after.Block + 1)); it.Valid() && len(out) < limit; it.Next() {
			var b Block
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &b) }); err != nil {
				return err
			}
			last = b.Number
			if b.Event == nil {
				continue
			}
			evs, err := toEvents(b)
			if err != nil {
				return err
			}
			out = append(out, evs...)
		}
		return nil
	})
	return out, last, err
}

// toEvents maps a block's contract event to network.Events: one per member
// for the bootstrap's, which lists every member it wrote, as the Fabric
// backend maps it; the events of one block share its Position.
func toEvents(b Block) ([]network.Event, error) {
	var p chaincode.EventPayload
	if err := json.Unmarshal(b.Event.Payload, &p); err != nil {
		return nil, fmt.Errorf("block %d event: %w", b.Number, err)
	}
	pos, kind := network.Position{Block: b.Number, TxID: b.TxID}, network.EventKind(b.Event.Name)
	if kind == network.EventMemberChanged && (len(p.Regions) > 0 || len(p.Banks) > 0) {
		out := make([]network.Event, 0, len(p.Regions)+len(p.Banks))
		for i := range p.Regions {
			out = append(out, network.Event{Position: pos, Kind: kind, Time: b.Time, Region: &p.Regions[i]})
		}
		for i := range p.Banks {
			out = append(out, network.Event{Position: pos, Kind: kind, Time: b.Time, Bank: &p.Banks[i]})
		}
		return out, nil
	}
	return []network.Event{{
		Position: pos, Kind: kind, Time: b.Time,
		Region: p.Region, Bank: p.Bank, Consent: p.Consent, Checkpoint: p.Checkpoint,
		Authority: p.Authority, Revocation: p.Revocation, Proposal: p.Proposal,
	}}, nil
}

// subscribe streams events after from until ctx ends or the server closes.
func (s *Server) subscribe(ctx context.Context, from network.Position) (<-chan network.Event, error) {
	ch := make(chan network.Event, 64)
	go func() {
		defer close(ch)
		pos := from
		for {
			s.mu.Lock()
			wait, closed := s.changed, s.closed
			s.mu.Unlock()
			if closed {
				return
			}
			evs, last, err := s.events(pos, 256)
			if err != nil {
				s.log.Warn("embedded ledger: reading events", "err", err)
				return
			}
			for _, ev := range evs {
				select {
				case ch <- ev:
				case <-ctx.Done():
					return
				}
			}
			if last > pos.Block {
				pos = network.Position{Block: last}
				continue // there may be more than one page
			}
			select {
			case <-wait:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}
