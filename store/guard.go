package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/fb"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/dgraph-io/ristretto/v2/z"
	"google.golang.org/protobuf/encoding/protowire"
)

// readGuard makes a block that fails its checksum an error of the read
// that met it. Badger v4.9.6's table iterator keeps such an error to
// itself: it reports "no more keys", the merged iterator moves on to the
// other tables, and a report comes back short instead of failing. After a
// report's scan, the guard checks again every block of the same key range
// in every table file that holds part of it, through its own read-only
// mapping, and fails naming the table if one does not match its checksum.
// Checking after the scan means any byte the scan decoded altered is
// still altered when the guard reads it.
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
	// index is the table's block index in the mapped file, for tables
	// whose blocks are stored as they were checksummed (no compression);
	// nil: the guard walks the table's keys instead (walk).
	index *fb.TableIndex
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
		if gt.index != nil && gt.blocksSound(from, to) || gt.index == nil && gt.walk(from, to) {
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

// blocksSound checks the checksum of every block the table's iterator
// reads for the key range [from, to): from the block before the first
// one starting at from or later (a seek reads it) up to the first block
// starting at to or later (a scan reads it to see the range end). These
// are the blocks walk reads, checked without decoding their keys again:
// a fifth of a report's CPU the walk took (BENCHMARKS.md, "Seventh set").
func (gt *guardTable) blocksSound(from, to []byte) bool {
	idx := gt.index
	n := idx.OffsetsLength()
	var bo fb.BlockOffset
	startsAtOrAfter := func(key []byte) int {
		return sort.Search(n, func(i int) bool {
			return idx.Offsets(&bo, i) && bytes.Compare(y.ParseKey(bo.KeyBytes()), key) >= 0
		})
	}
	first, last := max(startsAtOrAfter(from)-1, 0), min(startsAtOrAfter(to), n-1)
	data := gt.mf.Data
	for i := first; i <= last; i++ {
		if !idx.Offsets(&bo, i) {
			return false
		}
		off, size := int(bo.Offset()), int(bo.Len())
		if off < 0 || size < 8 || off+size > len(data) {
			return false
		}
		if !blockSound(data[off : off+size]) {
			return false
		}
	}
	return true
}

// blockSound tells whether an uncompressed table block matches the
// checksum it ends with. The layout is Badger's (table.Table.block): the
// entries, their offsets and count, then the checksum message and its
// length, the checksum covering what comes before the message.
func blockSound(b []byte) bool {
	pos := len(b) - 4
	chkLen := int(binary.BigEndian.Uint32(b[pos:]))
	if chkLen > pos-4 {
		return false
	}
	pos -= chkLen
	algo, sum, ok := decodeChecksum(b[pos : pos+chkLen])
	if !ok || algo != pb.Checksum_CRC32C && algo != pb.Checksum_XXHash64 {
		return false // CalculateChecksum panics on other algorithms
	}
	return y.CalculateChecksum(b[:pos], algo) == sum
}

// decodeChecksum reads a pb.Checksum message (algo = 1, sum = 2, both
// varints) without proto.Unmarshal's allocation per block.
func decodeChecksum(b []byte) (algo pb.Checksum_Algorithm, sum uint64, ok bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.VarintType {
			return 0, 0, false
		}
		b = b[n:]
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return 0, 0, false
		}
		b = b[n:]
		switch num {
		case 1:
			algo = pb.Checksum_Algorithm(v)
		case 2:
			sum = v
		}
	}
	return algo, sum, true
}

// tableIndex finds the block index at the end of a table file (the layout
// of table.Table.initIndex, whose checksum OpenTable verified): nil when
// the footer does not fit the file.
func tableIndex(d []byte) *fb.TableIndex {
	pos := len(d) - 4
	if pos < 0 {
		return nil
	}
	pos -= int(binary.BigEndian.Uint32(d[pos:]))
	pos -= 4
	if pos < 0 {
		return nil
	}
	n := int(binary.BigEndian.Uint32(d[pos:]))
	if n > pos {
		return nil
	}
	return fb.GetRootAsTableIndex(d[pos-n:pos], 0)
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
	gt := &guardTable{
		id: id, level: int(tm.Level), path: name, name: filepath.Base(name),
		first: bytes.Clone(y.ParseKey(t.Smallest())), last: bytes.Clone(y.ParseKey(t.Biggest())),
		mf: mf, t: t,
	}
	if tm.Compression == options.None {
		gt.index = tableIndex(mf.Data)
	}
	return gt, nil
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
