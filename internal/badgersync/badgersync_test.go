package badgersync

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// memIDs lists the memtable ids whose files are in dir.
func memIDs(t *testing.T, dir string) []int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	for _, e := range ents {
		if id, ok := memID(e.Name()); ok {
			ids = append(ids, id)
		}
	}
	return ids
}

// The files a real Badger database rotates out are the ones synced: after
// every Sync the Syncer's highest id is the active memtable's, and every
// memtable file that was there before the Sync, other than that one, is
// kept for syncing or was flushed and removed.
func TestSyncFollowsBadgersMemtables(t *testing.T) {
	dir := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(1 << 20).WithValueThreshold(1 << 10))
	if err != nil {
		t.Fatal(err)
	}
	s := New(db)
	t.Cleanup(func() { s.Close(); db.Close() })
	v := make([]byte, 1000)
	first, synced := 0, 0
	for batch := range 80 {
		err := db.Update(func(txn *badger.Txn) error {
			for i := range 100 {
				if err := txn.Set(fmt.Appendf(nil, "k%03d-%03d", batch, i), v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		before := memIDs(t, dir)
		if err := s.Sync(); err != nil {
			t.Fatalf("sync after batch %d: %v", batch, err)
		}
		if got, want := s.max, slices.Max(before); got < want {
			t.Fatalf("after batch %d the syncer knows memtables up to %d; the folder held %v", batch, got, before)
		}
		if first == 0 {
			first = s.max
		}
		synced += len(s.rotated)
		for _, id := range before {
			if id == s.max {
				continue
			}
			_, kept := s.rotated[id]
			if _, err := os.Stat(s.path(id)); !kept && !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("after batch %d: memtable %d was rotated out and is neither synced nor flushed (kept %v)", batch, id, slices.Sorted(maps.Keys(s.rotated)))
			}
		}
	}
	if s.max-first < 3 {
		t.Fatalf("memtables %d to %d: the test wrote too little to rotate any", first, s.max)
	}
	t.Logf("memtables %d to %d; %d syncs of a memtable rotated out and not yet flushed", first, s.max, synced)
}

// The bookkeeping on files alone: new ids make their predecessors rotated,
// a removed file is forgotten once synced, and the first Sync takes every
// file but the highest as rotated.
func TestSyncRotatedFiles(t *testing.T) {
	dir := t.TempDir()
	touch := func(ids ...int) {
		for _, id := range ids {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%05d.mem", id)), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := &Syncer{dir: dir, rotated: map[int]*os.File{}}
	t.Cleanup(func() { s.Close() })
	check := func(step string, max int, rotated ...int) {
		t.Helper()
		if err := s.syncRotated(); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if got := slices.Sorted(maps.Keys(s.rotated)); s.max != max || !slices.Equal(got, rotated) {
			t.Fatalf("%s: active %d, rotated %v; want %d, %v", step, s.max, got, max, rotated)
		}
	}
	touch(3, 4)
	check("start with a memtable waiting for its flush", 4, 3)
	check("nothing new", 4, 3)
	touch(5, 6)
	check("two rotations", 6, 3, 4, 5)
	os.Remove(filepath.Join(dir, "00003.mem"))
	os.Remove(filepath.Join(dir, "00005.mem"))
	check("two flushed", 6, 4)
}
