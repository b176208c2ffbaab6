package receipts

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/proof"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
)

// modes runs a test body on an in-memory and an on-disk database.
var modes = []struct {
	name   string
	memory bool
}{{"memory", true}, {"disk", false}}

func openDB(t testing.TB, memory bool, dir string) *badger.DB {
	t.Helper()
	opts := badger.DefaultOptions(dir).WithLogger(nil)
	if memory {
		opts = badger.DefaultOptions("").WithInMemory(true).WithLogger(nil)
	}
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func openLog(t testing.TB, db *badger.DB) *Log { t.Helper(); return openLogSyncing(t, db, nil) }

// openLogSyncing opens db's log with s as its Syncer.
func openLogSyncing(t testing.TB, db *badger.DB, s *Syncer) *Log {
	t.Helper()
	l, err := OpenLog(db, LogOptions{Syncer: s})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))

func receipt(t testing.TB, i int) *credit.Receipt {
	t.Helper()
	subject := testkit.USCC(t, "440300", i%10_000_000)
	r := &credit.Receipt{
		Version: 1, ID: fmt.Sprintf("receipt-%08d", i),
		Query: credit.Query{Version: 1, Bank: "bank-a", Subject: subject, Categories: []credit.Category{credit.Tax},
			Purpose: credit.PurposeCreditReview, ConsentID: "consent-0001", Nonce: fmt.Sprintf("nonce-%08d", i),
			Time: time.Unix(1_790_000_000+int64(i), 0)},
		Requester: "440100", Answerer: "440300",
		Categories:  []credit.Category{credit.Tax},
		RecordCount: i, Time: time.Unix(1_790_000_000+int64(i), 0),
	}
	if err := r.Sign(testKey); err != nil {
		t.Fatal(err)
	}
	return r
}

// refRoot is RFC 6962's recursive definition, independent of the compact
// range code under test.
func refRoot(leaves [][]byte) []byte {
	switch len(leaves) {
	case 0:
		return Hasher.EmptyRoot()
	case 1:
		return Hasher.HashLeaf(leaves[0])
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return Hasher.HashChildren(refRoot(leaves[:k]), refRoot(leaves[k:]))
}

func TestLogProofs(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			db := openDB(t, m.memory, t.TempDir())
			defer db.Close()
			l := openLog(t, db)
			defer l.Close()
			const n = 21
			var leaves [][]byte
			roots := [][]byte{Hasher.EmptyRoot()}
			for i := range n {
				r := receipt(t, i)
				idx, err := l.Append(context.Background(), r)
				if err != nil {
					t.Fatal(err)
				}
				if idx != uint64(i) {
					t.Fatalf("append %d: index %d", i, idx)
				}
				lb, _ := r.LeafBytes()
				leaves = append(leaves, lb)
				roots = append(roots, refRoot(leaves))
			}
			for size := uint64(0); size <= n; size++ {
				root, err := l.Root(size)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(root, roots[size]) {
					t.Fatalf("root at %d differs from RFC 6962 reference", size)
				}
				for idx := uint64(0); idx < size; idx++ {
					p, err := l.InclusionProof(idx, size)
					if err != nil {
						t.Fatal(err)
					}
					if err := proof.VerifyInclusion(Hasher, idx, size, Hasher.HashLeaf(leaves[idx]), p, root); err != nil {
						t.Fatalf("inclusion %d@%d: %v", idx, size, err)
					}
				}
				for s1 := uint64(0); s1 <= size; s1++ {
					p, err := l.ConsistencyProof(s1, size)
					if err != nil {
						t.Fatal(err)
					}
					if err := proof.VerifyConsistency(Hasher, s1, size, p, roots[s1], root); err != nil {
						t.Fatalf("consistency %d..%d: %v", s1, size, err)
					}
				}
			}
			if _, err := l.InclusionProof(3, n+1); !errors.Is(err, ErrOutOfRange) {
				t.Fatalf("proof beyond size: %v, want ErrOutOfRange", err)
			}
			if _, err := l.Root(n + 1); !errors.Is(err, ErrOutOfRange) {
				t.Fatalf("root beyond size: %v, want ErrOutOfRange", err)
			}
		})
	}
}

func TestLogLookup(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			db := openDB(t, m.memory, t.TempDir())
			defer db.Close()
			l := openLog(t, db)
			defer l.Close()
			ctx := context.Background()
			for i := range 3 {
				if _, err := l.Append(ctx, receipt(t, i)); err != nil {
					t.Fatal(err)
				}
			}
			r, e, err := l.Lookup("receipt-00000002")
			if err != nil || e.Index != 2 || r.RecordCount != 2 {
				t.Fatalf("lookup: %+v %+v %v", r, e, err)
			}
			if err := r.Verify(testKey.Public().(ed25519.PublicKey)); err != nil {
				t.Fatalf("stored receipt no longer verifies: %v", err)
			}
			if _, _, err := l.Lookup("receipt-missing"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("missing: %v", err)
			}
			var got []uint64
			if err := l.Scan(1, 100, func(e Entry) error { got = append(got, e.Index); return nil }); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != "[1 2]" {
				t.Fatalf("scan 1..: %v", got)
			}
		})
	}
}

func TestLogConcurrentAppendsAndReopen(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, false, dir)
	l := openLog(t, db)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := l.Append(context.Background(), receipt(t, w*each+i)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	size, root, err := l.Head()
	if err != nil || size != writers*each {
		t.Fatalf("head: %d %v", size, err)
	}
	var leaves [][]byte
	if err := l.Scan(0, size, func(e Entry) error { leaves = append(leaves, e.Leaf); return nil }); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(refRoot(leaves), root) {
		t.Fatal("root differs from the leaves' RFC 6962 root")
	}
	l.Close()
	if err := l.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := l.Append(context.Background(), receipt(t, 999)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	db.Close()

	db = openDB(t, false, dir)
	defer db.Close()
	l = openLog(t, db)
	defer l.Close()
	size2, root2, err := l.Head()
	if err != nil || size2 != size || !bytes.Equal(root2, root) {
		t.Fatalf("after reopen: size %d (want %d), same root %v, err %v", size2, size, bytes.Equal(root2, root), err)
	}
	if _, err := l.Append(context.Background(), receipt(t, 1000)); err != nil {
		t.Fatal(err)
	}
	leaves = append(leaves, must(receipt(t, 1000).LeafBytes()))
	if r, _ := l.Root(size + 1); !bytes.Equal(r, refRoot(leaves)) {
		t.Fatal("root after reopen and append differs")
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestAcksRequestedOutbox(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			db := openDB(t, m.memory, t.TempDir())
			defer db.Close()
			l := openLog(t, db)
			defer l.Close()
			r := receipt(t, 1)
			ack, err := credit.NewAck(r, "440100", time.Now(), testKey)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.PutAck(ack); !errors.Is(err, ErrNotFound) {
				t.Fatalf("ack of unlogged receipt: %v, want ErrNotFound", err)
			}
			if _, err := l.Append(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			if err := l.PutAck(ack); err != nil {
				t.Fatal(err)
			}
			acks, err := l.Acks(r.ID)
			if err != nil || len(acks) != 1 || acks[0].Verify(r, testKey.Public().(ed25519.PublicKey)) != nil {
				t.Fatalf("acks: %v %v", acks, err)
			}

			req := NewRequested(db, nil)
			if err := req.Put(Held{Receipt: *r, Ack: ack, ReceivedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			h, err := req.Get(r.ID)
			if err != nil || h.Receipt.Verify(testKey.Public().(ed25519.PublicKey)) != nil {
				t.Fatalf("held: %v", err)
			}
			if _, err := req.Get("nope-nope"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("missing held: %v", err)
			}

			ob := NewOutbox(db, nil)
			if _, ok, err := ob.Pending(); ok || err != nil {
				t.Fatalf("empty outbox: %v %v", ok, err)
			}
			p := Pending{Checkpoint: credit.Checkpoint{Region: "440300", Size: 1, Root: []byte{1}}}
			if err := ob.SetPending(p); err != nil {
				t.Fatal(err)
			}
			// An older anchored checkpoint must not clear a newer pending one.
			if err := ob.MarkAnchored(credit.AnchoredCheckpoint{Checkpoint: credit.Checkpoint{Size: 0}}); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := ob.Pending(); !ok {
				t.Fatal("pending cleared by an older anchor")
			}
			if err := ob.MarkAnchored(credit.AnchoredCheckpoint{Checkpoint: p.Checkpoint, TxID: "tx1"}); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := ob.Pending(); ok {
				t.Fatal("pending not cleared")
			}
			if ac, ok, err := ob.LastAnchored(); !ok || err != nil || ac.TxID != "tx1" {
				t.Fatalf("last anchored: %+v %v %v", ac, ok, err)
			}
			// Every checkpoint seen anchored stays readable by its size.
			if err := ob.MarkAnchored(credit.AnchoredCheckpoint{Checkpoint: credit.Checkpoint{Region: "440300", Size: 3}, TxID: "tx3"}); err != nil {
				t.Fatal(err)
			}
			for size, tx := range map[uint64]string{1: "tx1", 3: "tx3"} {
				if ac, ok, err := ob.AnchoredAt(size); !ok || err != nil || ac.TxID != tx || ac.Size != size {
					t.Fatalf("anchored at %d: %+v %v %v", size, ac, ok, err)
				}
			}
			if _, ok, err := ob.AnchoredAt(2); ok || err != nil {
				t.Fatalf("a size never anchored: %v %v", ok, err)
			}
		})
	}
}

func TestNonces(t *testing.T) {
	db := openDB(t, true, "")
	defer db.Close()
	n := NewNonces(db)
	if err := n.Use("bank-a", "nonce-0001", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := n.Use("bank-a", "nonce-0001", time.Hour); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v, want ErrReplay", err)
	}
	if err := n.Use("bank-b", "nonce-0001", time.Hour); err != nil {
		t.Fatalf("another bank's nonce: %v", err)
	}
	// Badger's TTL has one-second resolution: poll until it expires.
	if err := n.Use("bank-a", "nonce-0002", time.Second); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, func() error { return n.Use("bank-a", "nonce-0002", time.Second) })
}

func BenchmarkAppend(b *testing.B) {
	for _, par := range []int{1, 16} {
		for _, m := range modes {
			b.Run(fmt.Sprintf("%s/inflight=%d", m.name, par), func(b *testing.B) {
				db := openDB(b, m.memory, b.TempDir())
				defer db.Close()
				l := openLog(b, db)
				defer l.Close()
				rs := make([]*credit.Receipt, b.N)
				for i := range rs {
					rs[i] = receipt(b, i)
				}
				b.ResetTimer()
				var wg sync.WaitGroup
				next := make(chan int)
				for range par {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range next {
							if _, err := l.Append(context.Background(), rs[i]); err != nil {
								b.Error(err)
							}
						}
					}()
				}
				for i := range b.N {
					next <- i
				}
				close(next)
				wg.Wait()
			})
		}
	}
}

// A receipt id is issued once: appending a receipt whose id the log holds
// (a replayed query answered again, signed at another time) is refused
// with ErrDuplicateReceipt and adds nothing, whether the first is in an
// earlier batch, the same batch, or was logged before a restart.
func TestLogIssuesReceiptIDOnce(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			db := openDB(t, m.memory, dir)
			defer db.Close()
			l := openLog(t, db)
			defer l.Close()
			ctx := context.Background()
			for i := range 3 {
				if _, err := l.Append(ctx, receipt(t, i)); err != nil {
					t.Fatal(err)
				}
			}
			root, _ := l.Root(3)
			again := receipt(t, 1)
			again.Time = again.Time.Add(time.Minute)
			if err := again.Sign(testKey); err != nil {
				t.Fatal(err)
			}
			for _, r := range []*credit.Receipt{receipt(t, 1), again} {
				idx, err := l.Append(ctx, r)
				if !errors.Is(err, ErrDuplicateReceipt) {
					t.Fatalf("second append of %s: index %d, err %v; want ErrDuplicateReceipt", r.ID, idx, err)
				}
			}
			if got, _ := l.Root(3); l.Size() != 3 || !bytes.Equal(got, root) {
				t.Fatalf("a refused append changed the log: size %d", l.Size())
			}
			if r, err := l.Receipt(again.ID); err != nil || !r.Time.Equal(receipt(t, 1).Time) {
				t.Fatalf("logged receipt %s: %v, time %s; want the first one kept", again.ID, err, r.Time)
			}

			// Concurrent appends of one new id, batched together or not:
			// exactly one is logged.
			const n = 16
			errs := make(chan error, n)
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := l.Append(ctx, receipt(t, 7))
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			ok := 0
			for err := range errs {
				switch {
				case err == nil:
					ok++
				case !errors.Is(err, ErrDuplicateReceipt):
					t.Fatalf("concurrent append: %v", err)
				}
			}
			if ok != 1 || l.Size() != 4 {
				t.Fatalf("%d of %d concurrent appends of one id succeeded, log size %d; want 1 and 4", ok, n, l.Size())
			}

			if m.memory {
				return
			}
			l.Close()
			db.Close()
			db = openDB(t, false, dir)
			l = openLog(t, db)
			if _, err := l.Append(ctx, receipt(t, 2)); !errors.Is(err, ErrDuplicateReceipt) {
				t.Fatalf("append after reopen of a logged id: %v; want ErrDuplicateReceipt", err)
			}
		})
	}
}

// A nonce is remembered for its whole ttl, up to the instant: Badger keeps
// expiries in whole seconds, and truncating forgot a nonce up to a second
// early. The ttl here ends late in a second S, and the nonce is replayed
// after S has begun but before the ttl ends.
func TestNoncesKeptForTheWholeTTL(t *testing.T) {
	db := openDB(t, true, "")
	defer db.Close()
	n := NewNonces(db)
	for attempt := 0; ; attempt++ {
		nonce := fmt.Sprintf("nonce-edge-%d", attempt)
		now := time.Now()
		second := now.Truncate(time.Second).Add(time.Second)
		end := second.Add(950 * time.Millisecond)
		if err := n.Use("bank-a", nonce, end.Sub(now)); err != nil {
			t.Fatal(err)
		}
		// Badger reads its expiries off the wall clock, so the wait is
		// for the wall clock itself.
		<-time.After(time.Until(second.Add(20 * time.Millisecond)))
		err := n.Use("bank-a", nonce, time.Minute)
		if time.Now().After(end) {
			// The machine stalled past the ttl: this attempt proves
			// nothing either way.
			if attempt < 3 {
				continue
			}
			t.Skip("could not replay within the ttl's last second in 4 attempts")
		}
		if !errors.Is(err, ErrReplay) {
			t.Fatalf("nonce replayed %s before its ttl ended: %v; want ErrReplay", time.Until(end).Round(time.Millisecond), err)
		}
		return
	}
}
