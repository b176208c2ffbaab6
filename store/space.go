package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrNoSpace: the filesystem of the store has too little free space for
// what was asked. Badger writes its tables and logs through mapped
// files, and a write to a mapped page the filesystem cannot back kills
// the process (SIGBUS) instead of returning an error, so the store
// checks the free space before such writes and refuses with this error.
var ErrNoSpace = errors.New("not enough free disk space")

// SpaceError says where, for what, and how many bytes; it wraps
// ErrNoSpace.
type SpaceError struct {
	Dir  string // the folder written to
	What string // what needed the space
	Need uint64 // bytes needed (including any floor kept free)
	Free uint64 // bytes available to the process
}

func (e *SpaceError) Error() string {
	return fmt.Sprintf("%v in %s to %s: %d bytes needed, %d free (free space on that filesystem, then run it again)",
		ErrNoSpace, e.Dir, e.What, e.Need, e.Free)
}

func (e *SpaceError) Unwrap() error { return ErrNoSpace }

// OpenReserve is the free space a store must have to open: Badger writes
// its lock file and the first pages of a new memtable log, value log and
// discard file when it opens (each mapped; 4 KiB free was seen to kill
// `ccnode stats` with SIGBUS on open), and a store that closes flushes
// what it wrote.
const OpenReserve = 4 << 20

// FreeSpace is the bytes available to the process on the filesystem
// holding dir (or the nearest folder above it that exists, for a store
// not made yet); ok is false where it cannot be measured.
func FreeSpace(dir string) (avail, size uint64, ok bool) {
	d := filepath.Clean(dir)
	for {
		if _, err := os.Stat(d); err == nil {
			return diskSpace(d)
		}
		up := filepath.Dir(d)
		if up == d {
			return 0, 0, false
		}
		d = up
	}
}

// CheckSpace fails with a *SpaceError when the filesystem of dir has
// fewer than need bytes available; where the space cannot be measured it
// passes.
func CheckSpace(dir, what string, need uint64) error {
	avail, _, ok := FreeSpace(dir)
	if !ok || avail >= need {
		return nil
	}
	return &SpaceError{Dir: dir, What: what, Need: need, Free: avail}
}

// WriteReserve is the free space the store needs to keep logging writes
// durably for a while: a whole memtable's log and the table its flush
// writes, and what a reopen needs. Below it a node stops answering (each
// answer logs a receipt) rather than die on a write.
func (db *DB) WriteReserve() uint64 {
	return 2*uint64(db.bdb.Opts().MemTableSize) + OpenReserve
}

// Dir is the store's folder ("" in memory).
func (db *DB) Dir() string {
	if db.inMem {
		return ""
	}
	return db.dir
}

// tablesFor is the free space writing n bytes of entries as tables takes:
// the entries plus the tables' block index, bloom filters and checksums
// (measured about 3% over the entries on imported stores; a quarter
// leaves room for Badger's own bookkeeping) and OpenReserve.
func tablesFor(n uint64) uint64 { return n + n/4 + OpenReserve }
