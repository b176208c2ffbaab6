package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/badgerrepair"
	"github.com/prdcredit/ccnode/internal/badgersync"
)

// Errors returned wrapped; test with errors.Is.
var (
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
	// ErrNotEmpty: a bulk load was asked of a store that already holds data.
	ErrNotEmpty = errors.New("store is not empty")
	// ErrIncompleteBulk: a bulk load into this store was interrupted; the
	// store holds part of it and no statistics. Run the bulk load again
	// (it starts over) or remove the data directory.
	ErrIncompleteBulk = errors.New("store holds an interrupted bulk load")
	// ErrNoCompactions: a write that needs Badger's compactors was asked
	// of a store opened with Options.NoCompactions. Open it without.
	ErrNoCompactions = errors.New("store opened without compactions")
)

// RecordWriter stores records idempotently: a record whose identity
// (subject, source, source id) is already stored replaces it if it differs
// and is a no-op if it does not.
type RecordWriter interface {
	Put(ctx context.Context, recs []credit.Record) (WriteResult, error)
}

// ReportReader reads one subject's records.
type ReportReader interface {
	Report(ctx context.Context, subject credit.USCC, f Filter) ([]credit.Record, error)
}

// StatsReader returns the store's counters.
type StatsReader interface {
	Stats(ctx context.Context) (Stats, error)
}

// Options configure Open. The zero value of every tuning field means the
// default named beside it. Compression saves disk at the same import CPU;
// without it warm reports are faster, because blocks are read straight
// from the mapped files instead of being decompressed on every block-cache
// miss (BENCHMARKS.md, "Compression"; BenchmarkReportDir).
type Options struct {
	Dir      string // data directory; ignored when InMemory
	InMemory bool
	Logger   *slog.Logger // nil: discard

	// MemTableSize bounds each of Badger's memtables (default 64 MiB). It
	// also bounds one write transaction to 15% of it.
	MemTableSize int64
	// NumCompactors (default 2, Badger's is 4): compactors beyond the
	// core count only compete with the import's parsers.
	NumCompactors int
	// Compression of tables (default snappy); values are inline in the
	// tables, so this is what saves disk. ccnode import, which writes
	// nearly all of a store's tables, asks for none unless told otherwise
	// (its --compression): reports then cost a third of the CPU.
	Compression options.CompressionType
	// NoCompression turns compression off (Compression's zero value is
	// already "none" in Badger, so a flag is needed to ask for it).
	NoCompression bool
	// BlockCacheSize (default 256 MiB) holds decompressed table blocks.
	// Negative: no block cache, which Badger allows only for uncompressed
	// tables (NoCompression); Open refuses it otherwise.
	//
	// When neither this nor the compression is set and every table of the
	// store is uncompressed (imported with --compression none), Open keeps
	// it so: no block cache, and new tables uncompressed too. Uncompressed
	// blocks are read straight from the mapped files; a cache in front of
	// them only adds its bookkeeping (BenchmarkReportDir; BENCHMARKS.md,
	// "Block cache and compression on the 20M store").
	BlockCacheSize int64
	// ReadConcurrency is how many reports may scan at once (default
	// GOMAXPROCS; negative: no limit); the others wait their turn in
	// arrival order. A report is a few hundred microseconds of CPU that
	// never blocks on a warm store, so scans beyond the core count only
	// share the cores in the Go scheduler's 10 ms slices: a report
	// preempted mid-scan waits tens of milliseconds for its turn, which
	// makes the tail of concurrent readers (`ccbench report`). Queued in
	// order, a report waits only for the reports ahead of it, and
	// throughput is the same. Raise it for stores much larger than the
	// page cache, whose scans wait on the disk.
	ReadConcurrency int
	// NoCompactions asks for a store without Badger's compactors, for a
	// process that only imports with Load or Bulk: their tables go to
	// levels of their own, and a compaction that starts meanwhile (moving
	// a Load's new level into the one below) is waited for at Close
	// (BenchmarkImportPaths). Open keeps the compactors
	// when the tree needs them: tables in level 0 (left by ordinary
	// writes, which would then fill it and stall with nothing to drain
	// it), or fewer than two empty levels above the data (the next Load
	// would land in level 0).
	NoCompactions bool
	// SyncWrites makes every commit wait for fsync. Off by default: the
	// import syncs once at the end and the receipt log syncs what it must.
	SyncWrites bool
	// VerifyTables checks every table's blocks against their checksums
	// when the store opens (reading all of it); Open then fails, wrapping
	// ErrCorrupt and naming the table, on a store that is corrupted at
	// rest. Blocks are checked on every read regardless, and a report
	// that meets one failing its checksum fails (readGuard).
	VerifyTables bool
}

// Defaults.
const (
	valueThreshold        = 32 << 10
	DefaultMemTableSize   = 64 << 20
	DefaultNumCompactors  = 2
	DefaultBlockCacheSize = 256 << 20
)

// DB is the record store. Its methods are safe for concurrent use.
type DB struct {
	bdb    *badger.DB
	syncer *badgersync.Syncer
	log    *slog.Logger
	inMem  bool
	dir    string
	absDir string // dir resolved, once dropTablePages needs it
	// noCompactors: opened with Options.NoCompactions granted; nothing
	// drains level 0, so ordinary write batches must not fill it.
	noCompactors bool
	wmu          sync.Mutex // serialises this package's writers: they all touch the stats keys
	closed       sync.Once
	cerr         error

	readSlots chan struct{} // see Options.ReadConcurrency; nil: no limit
	corrupt   corruption
	guard     *readGuard // nil in memory

	mu         sync.RWMutex
	isClosed   bool
	incomplete bool
}

// Open opens (creating if needed) the store.
func Open(ctx context.Context, o Options) (*DB, error) {
	if !o.InMemory && o.Dir == "" {
		return nil, errors.New("store: Options.Dir is empty and InMemory is false")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bo := badger.DefaultOptions(o.Dir)
	if o.InMemory {
		bo = badger.DefaultOptions("").WithInMemory(true)
	}
	bo = bo.WithLogger(badgerLogger{log}).
		WithMemTableSize(orDefault(o.MemTableSize, DefaultMemTableSize)).
		WithNumCompactors(int(orDefault(int64(o.NumCompactors), DefaultNumCompactors))).
		WithBlockCacheSize(blockCacheSize(o.BlockCacheSize)).
		WithSyncWrites(o.SyncWrites).
		// Every record value (attrs are at most 16 KiB) stays in the LSM
		// tables: a report is then one scan with no value-log reads.
		WithValueThreshold(valueThreshold).
		WithCompression(options.Snappy).
		// Every block is checked against its checksum when read from the
		// file, so a flipped byte is never decoded into a record (a report
		// or a signed receipt over altered data); BENCHMARKS.md, "Block
		// checksums". Value-log values (over 32 KiB) carry their own CRC.
		WithChecksumVerificationMode(options.OnBlockRead).
		WithVerifyValueChecksum(true)
	if o.Compression != options.None {
		bo = bo.WithCompression(o.Compression)
	}
	if o.NoCompression {
		bo = bo.WithCompression(options.None)
	}
	if !o.InMemory && o.BlockCacheSize == 0 && o.Compression == options.None && !o.NoCompression {
		plain, err := tablesUncompressed(o.Dir, bo)
		if err != nil {
			return nil, err
		}
		if plain {
			bo = bo.WithCompression(options.None).WithBlockCacheSize(0)
		}
	}
	if bo.BlockCacheSize == 0 && bo.Compression != options.None {
		// Badger panics on this combination rather than returning an error.
		return nil, errors.New("store: Options.BlockCacheSize is negative (no block cache), which needs NoCompression")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if o.NoCompactions && !o.InMemory {
		bo = bo.WithNumCompactors(0)
	}
	if !o.InMemory {
		// Below this, Badger's open itself may die on a mapped write.
		if err := CheckSpace(o.Dir, "open the store", OpenReserve); err != nil {
			return nil, fmt.Errorf("store: open %s: %w", o.Dir, err)
		}
		removed, err := badgerrepair.EmptyMemtables(o.Dir)
		if err != nil {
			return nil, fmt.Errorf("store: open %s: %w", o.Dir, err)
		}
		if len(removed) > 0 {
			log.Info("removed empty memtable files a killed process left (they held nothing)", "dir", o.Dir, "files", removed)
		}
	}
	if o.VerifyTables && !o.InMemory {
		// Not Badger's OnTableRead: its check panics on a bad block in a
		// goroutine of Open (verifyTables).
		if _, err := verifyTables(ctx, o.Dir, bo); err != nil {
			return nil, fmt.Errorf("store: open %s: %w", o.Dir, err)
		}
	}
	bdb, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", o.Dir, err)
	}
	if bo.NumCompactors == 0 && needsCompactors(bdb) {
		log.Info("the store's tree needs compactions; importing with compactors")
		if err := bdb.Close(); err != nil {
			return nil, fmt.Errorf("store: open %s: %w", o.Dir, err)
		}
		bo = bo.WithNumCompactors(int(orDefault(int64(o.NumCompactors), DefaultNumCompactors)))
		if bdb, err = badger.Open(bo); err != nil {
			return nil, fmt.Errorf("store: open %s: %w", o.Dir, err)
		}
	}
	db := &DB{bdb: bdb, syncer: badgersync.New(bdb), log: log, inMem: o.InMemory, dir: o.Dir, noCompactors: bo.NumCompactors == 0}
	if n := o.ReadConcurrency; n >= 0 {
		if n == 0 {
			n = runtime.GOMAXPROCS(0)
		}
		db.readSlots = make(chan struct{}, n)
	}
	if !o.InMemory {
		if err := db.resumeLoad(); err != nil {
			bdb.Close()
			return nil, err
		}
	}
	inc, err := db.checkIncomplete()
	if err != nil {
		bdb.Close()
		return nil, err
	}
	db.incomplete = inc
	if inc {
		log.Warn("store holds an interrupted bulk load", "dir", o.Dir)
	}
	if !o.InMemory {
		db.guard = newReadGuard(o.Dir, bo)
		db.guard.follow(log)
	}
	return db, nil
}

// tablesUncompressed reports whether the store in dir has tables and none
// of them compressed, from Badger's manifest (read only; Badger has not
// opened the directory yet).
func tablesUncompressed(dir string, bo badger.Options) (bool, error) {
	f, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: open %s: %w", dir, err)
	}
	defer f.Close()
	m, _, err := badger.ReplayManifestFile(f, bo.ExternalMagicVersion, bo)
	if err != nil {
		// Badger itself says what is wrong with its manifest, or repairs a
		// torn last entry; the defaults are safe for any tables.
		return false, nil
	}
	for _, t := range m.Tables {
		if t.Compression != options.None {
			return false, nil
		}
	}
	return len(m.Tables) > 0, nil
}

// blockCacheSize is Options.BlockCacheSize for Badger: zero is the
// default and negative is none (zero to Badger).
func blockCacheSize(n int64) int64 {
	if n < 0 {
		return 0
	}
	return orDefault(n, DefaultBlockCacheSize)
}

// needsCompactors: see Options.NoCompactions.
func needsCompactors(bdb *badger.DB) bool {
	for _, l := range bdb.Levels() {
		if l.NumTables > 0 {
			return l.Level < 2
		}
	}
	return false // empty
}

func orDefault(v, d int64) int64 {
	if v <= 0 {
		return d
	}
	return v
}

// checkIncomplete: a bulk load's marker file, or records without a totals
// counter, can only be the remains of a bulk load killed before its last
// step, because every ordinary write updates the totals in the transaction
// that adds records.
func (db *DB) checkIncomplete() (bool, error) {
	if !db.inMem {
		if _, err := os.Stat(filepath.Join(db.dir, bulkMarkerName)); err == nil {
			return true, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("store: bulk marker: %w", err)
		}
	}
	var hasRecords, hasTotals bool
	err := db.bdb.View(func(txn *badger.Txn) error {
		_, err := txn.Get(statsTotalsKey)
		switch {
		case err == nil:
			hasTotals = true
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		for _, p := range []byte{prefixRecord, prefixIdentity, prefixSubject} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{p}})
			it.Rewind()
			if it.Valid() {
				hasRecords = true
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	return hasRecords && !hasTotals, nil
}

// Badger is the underlying database, for sibling store packages that keep
// their own key prefixes in it (see the package doc).
func (db *DB) Badger() *badger.DB { return db.bdb }

// Sync makes every committed write durable, in the memtables Badger
// rotated out as well (badgersync).
func (db *DB) Sync() error {
	if err := db.syncer.Sync(); err != nil {
		return fmt.Errorf("store: sync: %w", err)
	}
	return nil
}

// Close closes the database. It is safe to call more than once.
func (db *DB) Close() error {
	db.closed.Do(func() {
		db.mu.Lock()
		db.isClosed = true
		db.mu.Unlock()
		if err := db.bdb.Close(); err != nil {
			db.cerr = fmt.Errorf("store: close: %w", err)
		}
		db.syncer.Close()
		if db.guard != nil {
			db.guard.close()
		}
	})
	return db.cerr
}

// usable is held (read-locked) by every operation so Close waits for them.
func (db *DB) acquire() (func(), error) {
	db.mu.RLock()
	if db.isClosed {
		db.mu.RUnlock()
		return nil, ErrClosed
	}
	if db.incomplete {
		db.mu.RUnlock()
		return nil, ErrIncompleteBulk
	}
	return db.mu.RUnlock, nil
}

// badgerLogger sends Badger's own messages to slog at debug level (its
// info messages are chatty) and warnings and errors at their level.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Infof(f string, a ...any)  { b.debug(f, a) }
func (b badgerLogger) Debugf(f string, a ...any) { b.debug(f, a) }

// debug formats only when debug is on: Badger calls Debugf on every write
// batch, and formatting its messages for nothing was 1.5% of a node's CPU
// answering one query at a time (BENCHMARKS.md).
func (b badgerLogger) debug(f string, a []any) {
	if b.l.Enabled(context.Background(), slog.LevelDebug) {
		b.l.Debug(fmt.Sprintf(f, a...), "component", "badger")
	}
}

var (
	_ RecordWriter = (*DB)(nil)
	_ ReportReader = (*DB)(nil)
	_ StatsReader  = (*DB)(nil)
)
