package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
)

// corruption is what the store knows is wrong with its files; once set, it
// stays until the store is reopened.
type corruption struct {
	err      atomic.Pointer[error]
	failures atomic.Int64
}

// Corruption returns the first checksum failure the store has seen (it
// wraps ErrCorrupt and names the table), or nil.
func (db *DB) Corruption() error {
	if p := db.corrupt.err.Load(); p != nil {
		return *p
	}
	return nil
}

// ChecksumFailures counts the checksum failures the store has seen.
func (db *DB) ChecksumFailures() int64 { return db.corrupt.failures.Load() }

// noteCorrupt records err when it is a checksum failure and returns it
// wrapping ErrCorrupt; other errors pass through. Badger's errors do not
// wrap (they format with %+v), so its checksum failures are known by the
// text of y.ErrChecksumMismatch.
func (db *DB) noteCorrupt(err error) error {
	if err == nil || errors.Is(err, ErrCorrupt) || !isChecksumError(err) {
		return err
	}
	err = fmt.Errorf("%w: %v", ErrCorrupt, err)
	db.markCorrupt(err)
	return err
}

// markCorrupt counts a checksum failure (err wraps ErrCorrupt) and keeps
// the first, after which reports are refused.
func (db *DB) markCorrupt(err error) {
	db.corrupt.failures.Add(1)
	db.corrupt.err.CompareAndSwap(nil, &err)
	db.log.Error("store checksum mismatch", "dir", db.dir, "err", err)
}

func isChecksumError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "checksum mismatch") || strings.Contains(s, "invalid checksum length")
}

// VerifyResult is what Verify read.
type VerifyResult struct {
	Tables int   `json:"tables"` // SSTables whose every block's checksum matched
	Keys   int64 `json:"keys"`   // live keys read, values included
	Bytes  int64 `json:"bytes"`  // value bytes read
}

// Verify checks every block of every table against its checksum
// (verifyTables) and then reads every live key and value:
// values kept in the value log carry a CRC of their own, which Badger
// checks on read (Options VerifyValueChecksum, set by Open). A failure
// wraps ErrCorrupt, names the table or value log position as Badger does,
// and makes the store refuse reports from then on (Corruption).
func (db *DB) Verify(ctx context.Context) (VerifyResult, error) {
	var res VerifyResult
	release, err := db.acquire()
	if err != nil {
		return res, err
	}
	defer release()
	if !db.inMem {
		n, err := verifyTables(ctx, db.dir, db.bdb.Opts())
		res.Tables = n
		if err != nil {
			if errors.Is(err, ErrCorrupt) {
				db.markCorrupt(err)
			}
			return res, fmt.Errorf("store: verify: %w", err)
		}
	}
	err = db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if res.Keys%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			item := it.Item()
			if err := item.Value(func(v []byte) error { res.Bytes += int64(len(v)); return nil }); err != nil {
				return fmt.Errorf("key %x: %w", item.Key(), err)
			}
			res.Keys++
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("store: verify %s: %w", db.dir, db.noteCorrupt(err))
	}
	return res, nil
}

// verifyTables checks every block of every table in dir's manifest against
// its checksum, opening each table file on its own, read only (a running
// store's too: the files are immutable, and one a compaction removed
// meanwhile is skipped). It returns how many tables it checked and an
// error wrapping ErrCorrupt that names every table that failed.
//
// Not Badger's DB.VerifyChecksum: in Badger v4.9.6 Table.VerifyChecksum
// dereferences a nil block when the block read itself fails, which is
// how a mismatch shows when tables are opened with OnBlockRead (as the
// store's are) or a compressed block no longer decodes; here tables are
// opened without read checks and a panic is still caught per table.
func verifyTables(ctx context.Context, dir string, bo badger.Options) (int, error) {
	f, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("verify %s: %w", dir, err)
	}
	m, _, err := badger.ReplayManifestFile(f, bo.ExternalMagicVersion, bo)
	f.Close()
	if err != nil {
		return 0, fmt.Errorf("%w: verify %s: manifest: %v", ErrCorrupt, dir, err)
	}
	ids := make([]uint64, 0, len(m.Tables))
	for id := range m.Tables {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var bad []string
	n := 0
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		tm := m.Tables[id]
		name := table.NewFilename(id, dir)
		err := verifyTable(name, tm, bo)
		if errors.Is(err, fs.ErrNotExist) {
			continue // compacted away since the manifest was read
		}
		n++
		if err != nil {
			bad = append(bad, fmt.Sprintf("level %d table %s: %v", tm.Level, filepath.Base(name), err))
		}
	}
	if len(bad) > 0 {
		return n, fmt.Errorf("%w: %d of %d tables in %s fail their checksums: %s", ErrCorrupt, len(bad), n, dir, strings.Join(bad, "; "))
	}
	return n, nil
}

func verifyTable(name string, tm badger.TableManifest, bo badger.Options) (err error) {
	if tm.KeyID != 0 {
		return fmt.Errorf("encrypted table (key %d): not verified", tm.KeyID)
	}
	mf, err := z.OpenMmapFile(name, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	t, err := table.OpenTable(mf, table.Options{
		Compression: tm.Compression, BlockSize: bo.BlockSize, ZSTDCompressionLevel: bo.ZSTDCompressionLevel,
		ChkMode: options.NoVerification,
	})
	if err != nil {
		return err // OpenTable closed mf
	}
	// Close the mapping, never t.DecrRef: at zero that deletes the file.
	defer mf.Close(-1)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("a block does not decode (%v)", p)
		}
	}()
	return t.VerifyChecksum()
}

// VerifyBadgerDir checks every block of every table of another Badger
// database in dir (the embedded ledger's) against its checksums, as
// Verify does for the store's own tables; a running database's too, since
// its table files are immutable. Values are not read. The error wraps
// ErrCorrupt and names every table that fails.
func VerifyBadgerDir(ctx context.Context, dir string) (VerifyResult, error) {
	n, err := verifyTables(ctx, dir, badger.DefaultOptions(dir))
	if errors.Is(err, ErrCorrupt) {
		// Not the record store: say what fails without its name.
		err = corruptDB{strings.TrimPrefix(err.Error(), ErrCorrupt.Error()+": ")}
	}
	if err != nil {
		return VerifyResult{Tables: n}, fmt.Errorf("verify %s: %w", dir, err)
	}
	return VerifyResult{Tables: n}, nil
}

// corruptDB is a checksum failure in a database other than the record
// store; it wraps ErrCorrupt.
type corruptDB struct{ msg string }

func (e corruptDB) Error() string { return "corrupt database: " + e.msg }
func (e corruptDB) Unwrap() error { return ErrCorrupt }
