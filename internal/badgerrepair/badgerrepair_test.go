package badgerrepair

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// A store killed between creating a memtable file and sizing it: Badger
// refuses to open it; after EmptyMemtables it opens with every entry.
func TestEmptyMemtableLeftByAKill(t *testing.T) {
	dir, opts := storeWithEntry(t)
	if err := os.WriteFile(filepath.Join(dir, "00099.mem"), nil, 0o644); err != nil { // killed before sizing
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "00099.mem")
	if db, err := badger.Open(opts); err == nil {
		db.Close()
		t.Skip("this Badger opens a folder with an empty memtable file: the repair is no longer needed")
	}
	// That failed open sized the file; the kill's leftover is empty again.
	if err := os.Truncate(empty, 0); err != nil {
		t.Fatal(err)
	}
	removed, err := EmptyMemtables(dir)
	if err != nil || len(removed) != 1 || removed[0] != "00099.mem" {
		t.Fatalf("EmptyMemtables = %v, %v", removed, err)
	}
	opensWithEntry(t, opts)
	if removed, _ := EmptyMemtables(filepath.Join(dir, "none")); removed != nil {
		t.Fatal("a missing folder")
	}
}

// The same kill between creating a value-log file and writing its header.
func TestEmptyValueLogLeftByAKill(t *testing.T) {
	dir, opts := storeWithEntry(t)
	vlog := filepath.Join(dir, "000007.vlog")
	if err := os.WriteFile(vlog, nil, 0o644); err != nil { // killed before its header
		t.Fatal(err)
	}
	if db, err := badger.Open(opts); err == nil {
		db.Close()
		t.Skip("this Badger opens a folder with an empty value-log file: the repair is no longer needed")
	}
	if err := os.Truncate(vlog, 0); err != nil { // the failed open sized it
		t.Fatal(err)
	}
	if removed, err := EmptyMemtables(dir); err != nil || len(removed) != 1 || removed[0] != "000007.vlog" {
		t.Fatalf("EmptyMemtables = %v, %v", removed, err)
	}
	opensWithEntry(t, opts)
}

// storeWithEntry makes a closed Badger folder holding one entry, k.
func storeWithEntry(t *testing.T) (string, badger.Options) {
	t.Helper()
	dir := t.TempDir()
	opts := badger.DefaultOptions(dir).WithLogger(nil)
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, opts
}

// opensWithEntry opens the folder after the repair and finds k.
func opensWithEntry(t *testing.T, opts badger.Options) {
	t.Helper()
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatalf("open after the repair: %v", err)
	}
	defer db.Close()
	if err := db.View(func(txn *badger.Txn) error { _, err := txn.Get([]byte("k")); return err }); err != nil {
		t.Fatalf("the entry written before: %v", err)
	}
}
