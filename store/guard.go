package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/dgraph-io/ristretto/v2/z"
)

// readGuard makes a block that fails its checksum an error of the read
// that met it. Badger v4.9.6's table iterator keeps such an error to
// itself: it reports "no more keys", the merged iterator moves on to the
// other tables, and a report comes back short instead of failing. After a
// report's scan, the guard walks the same key range in every table file
// that holds part of it, through its own read-only handle that checks
// every block, and fails unless each table's walk ended where the table
// or the range ends. Checking after the scan means any byte the scan
// decoded altered is still altered when the guard reads it.
type readGuard struct {
	dir string
	bo  badger.Options // the store's: block size, compression level, manifest magic

	mu     sync.RWMutex
	stamp  manifestStamp
	tables []*guardTable // by table id

	quit chan struct{} // closed by close: stops follow
	wg   sync.WaitGroup
}

type guardTable struct {
	id          uint64
	level       int
	path, name  string // the file; its base name
	first, last []byte // user keys (no version)
	mf          *z.MmapFile
	t           *table.Table
}

// manifestStamp tells when Badger's set of tables may have changed: every
// change is appended to MANIFEST (or the file is rewritten) before the
// tables are used.
type manifestStamp struct {
	size  int64
	mtime int64
}

func newReadGuard(dir string, bo badger.Options) *readGuard {
	return &readGuard{dir: dir, bo: bo, quit: make(chan struct{})}
}

// guardRefreshEvery: how often the guard follows the manifest when no
// report does, so that the tables a compaction removed are unmapped and
// their disk space returned.
const guardRefreshEvery = 10 * time.Second

// follow refreshes the table list every guardRefreshEvery until close.
func (g *readGuard) follow(log *slog.Logger) {
	g.wg.Go(func() {
		t := time.NewTicker(guardRefreshEvery)
		defer t.Stop()
		for {
			select {
			case <-g.quit:
				return
			case <-t.C:
				if err := g.refresh(g.bo); err != nil {
					log.Warn("read guard: following the store's tables", "err", err)
				}
			}
		}
	})
}

// check verifies the blocks of the key range [from, to) in every table
// that overlaps it. The error wraps ErrCorrupt and names the table.
func (g *readGuard) check(from, to []byte) error {
	bo := g.bo
	if err := g.refresh(bo); err != nil {
		return err
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, gt := range g.tables {
		if bytes.Compare(gt.last, from) < 0 || bytes.Compare(gt.first, to) >= 0 {
			continue
		}
		if gt.walk(from, to) {
			continue
		}
		detail := "a block in the range read fails its checksum"
		if err := verifyTable(gt.path, badger.TableManifest{Level: uint8(gt.level), Compression: gt.t.CompressionType()}, bo); err != nil {
			detail = err.Error()
		}
		return fmt.Errorf("%w: level %d table %s: %s", ErrCorrupt, gt.level, gt.name, detail)
	}
	return nil
}

// walk reads the table's keys in [from, to) and reports whether the walk
// ended where it should: at a key past the range, or at the table's last
// key. A table iterator that stops anywhere else met a block it could not
// read.
func (gt *guardTable) walk(from, to []byte) bool {
	it := gt.t.NewIterator(table.NOCACHE)
	defer it.Close() // back to the handle's own reference: never zero, which deletes the file
	var last []byte
	for it.Seek(y.KeyWithTs(from, math.MaxUint64)); it.Valid(); it.Next() {
		k := it.Key()
		if bytes.Compare(y.ParseKey(k), to) >= 0 {
			return true
		}
		last = k
	}
	return last != nil && bytes.Equal(last, gt.t.Biggest())
}

// refresh reopens the table list when the manifest changed.
func (g *readGuard) refresh(bo badger.Options) error {
	st, err := stampOf(filepath.Join(g.dir, badger.ManifestFilename))
	if err != nil {
		return err
	}
	g.mu.RLock()
	same := st == g.stamp
	g.mu.RUnlock()
	if same {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if st == g.stamp {
		return nil
	}
	f, err := os.Open(filepath.Join(g.dir, badger.ManifestFilename))
	if err != nil {
		return fmt.Errorf("store: read guard: %w", err)
	}
	m, _, err := badger.ReplayManifestFile(f, bo.ExternalMagicVersion, bo)
	f.Close()
	if err != nil {
		return fmt.Errorf("%w: %s: manifest: %v", ErrCorrupt, g.dir, err)
	}
	old := make(map[uint64]*guardTable, len(g.tables))
	for _, gt := range g.tables {
		old[gt.id] = gt
	}
	tables := make([]*guardTable, 0, len(m.Tables))
	for id, tm := range m.Tables {
		if gt, ok := old[id]; ok {
			gt.level = int(tm.Level)
			tables = append(tables, gt)
			delete(old, id)
			continue
		}
		gt, err := openGuardTable(id, tm, g.dir, bo)
		if errors.Is(err, fs.ErrNotExist) {
			continue // compacted away since the manifest was written
		}
		if err != nil {
			for _, t := range tables {
				if _, kept := m.Tables[t.id]; !kept {
					t.close()
				}
			}
			return fmt.Errorf("%w: level %d table %s: %v", ErrCorrupt, tm.Level, table.NewFilename(id, g.dir), err)
		}
		tables = append(tables, gt)
	}
	for _, gt := range old {
		gt.close()
	}
	g.tables, g.stamp = tables, st
	return nil
}

func openGuardTable(id uint64, tm badger.TableManifest, dir string, bo badger.Options) (*guardTable, error) {
	if tm.KeyID != 0 {
		return nil, fmt.Errorf("encrypted table (key %d): not read", tm.KeyID)
	}
	name := table.NewFilename(id, dir)
	mf, err := z.OpenMmapFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	t, err := table.OpenTable(mf, table.Options{
		Compression: tm.Compression, BlockSize: bo.BlockSize, ZSTDCompressionLevel: bo.ZSTDCompressionLevel,
		ChkMode: options.OnBlockRead,
	})
	if err != nil {
		return nil, err // OpenTable closed mf
	}
	return &guardTable{
		id: id, level: int(tm.Level), path: name, name: filepath.Base(name),
		first: bytes.Clone(y.ParseKey(t.Smallest())), last: bytes.Clone(y.ParseKey(t.Biggest())),
		mf: mf, t: t,
	}, nil
}

// close unmaps the file; never t.DecrRef, which at zero deletes it.
func (gt *guardTable) close() { gt.mf.Close(-1) }

// close stops following and releases every handle.
func (g *readGuard) close() {
	close(g.quit)
	g.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, gt := range g.tables {
		gt.close()
	}
	g.tables, g.stamp = nil, manifestStamp{}
}

func stampOf(path string) (manifestStamp, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return manifestStamp{}, nil
	}
	if err != nil {
		return manifestStamp{}, fmt.Errorf("store: read guard: %w", err)
	}
	return manifestStamp{size: fi.Size(), mtime: fi.ModTime().UnixNano()}, nil
}
