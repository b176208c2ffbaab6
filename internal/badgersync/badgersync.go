// Package badgersync makes every write committed to a Badger database
// durable, including the writes Badger's own DB.Sync leaves out.
//
// DB.Sync syncs the value log and the active memtable's write-ahead file
// (NNNNN.mem). A full memtable is rotated out by the write that finds it
// full and stays in its own file until a flush makes it a synced table, a
// second or so later. A write committed to it before the rotation is then
// in a file DB.Sync no longer syncs: a crash before the flush loses it
// although a DB.Sync after the commit returned. Under an import, which
// fills a memtable every few seconds, a receipt logged "durably" could be
// lost that way.
package badgersync

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// memExt is Badger's memtable file extension; its files are named by id,
// %05d.mem, each new memtable the next id (badger.DB.mtFilePath).
const memExt = ".mem"

// Syncer syncs one database. Its zero value is not usable: call New.
type Syncer struct {
	db    *badger.DB
	dir   string
	inMem bool // nothing to sync

	mu      sync.Mutex
	started bool
	max     int              // the highest memtable id seen
	rotated map[int]*os.File // memtables rotated out, their files still there
}

// New returns the Syncer of db.
func New(db *badger.DB) *Syncer {
	o := db.Opts()
	return &Syncer{db: db, dir: o.Dir, inMem: o.InMemory, rotated: map[int]*os.File{}}
}

// Sync returns once every write committed to the database before the call
// is durable: DB.Sync, then the file of every memtable rotated out and not
// yet flushed. A database in memory has nothing to sync.
func (s *Syncer) Sync() error {
	if s.inMem {
		return nil
	}
	if err := s.db.Sync(); err != nil {
		return err
	}
	return s.syncRotated()
}

// syncRotated syncs the files of the memtables rotated out. A memtable
// rotated out before DB.Sync ran has a successor whose file existed by
// then, so looking for new files after DB.Sync finds every one.
func (s *Syncer) syncRotated() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		if err := s.scan(); err != nil {
			return err
		}
		s.started = true
	}
	for {
		_, err := os.Stat(s.path(s.max + 1))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return fmt.Errorf("badger sync: %w", err)
		}
		if s.max > 0 {
			if err := s.open(s.max); err != nil {
				return err
			}
		}
		s.max++
	}
	for id, f := range s.rotated {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("badger sync: memtable %s: %w", f.Name(), err)
		}
		// A flushed memtable's file is removed: its entries are in a
		// synced table, and the file needs syncing no more.
		if _, err := os.Stat(f.Name()); errors.Is(err, fs.ErrNotExist) {
			f.Close()
			delete(s.rotated, id)
		}
	}
	return nil
}

// scan finds the memtable files there are: the highest id is the active
// memtable, every other one was rotated out.
func (s *Syncer) scan() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("badger sync: %w", err)
	}
	var ids []int
	for _, e := range ents {
		if id, ok := memID(e.Name()); ok {
			ids = append(ids, id)
			s.max = max(s.max, id)
		}
	}
	for _, id := range ids {
		if id != s.max {
			if err := s.open(id); err != nil {
				return err
			}
		}
	}
	return nil
}

// open keeps memtable id's file for syncing; a file already removed was
// flushed.
func (s *Syncer) open(id int) error {
	f, err := os.Open(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("badger sync: %w", err)
	}
	s.rotated[id] = f
	return nil
}

func (s *Syncer) path(id int) string {
	return filepath.Join(s.dir, fmt.Sprintf("%05d%s", id, memExt))
}

// memID is the id of a memtable file's name.
func memID(name string) (int, bool) {
	digits, ok := strings.CutSuffix(name, memExt)
	if !ok {
		return 0, false
	}
	id, err := strconv.Atoi(digits)
	return id, err == nil && id > 0
}

// Close releases the files kept open. Sync may not be called after.
func (s *Syncer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, f := range s.rotated {
		f.Close()
		delete(s.rotated, id)
	}
	return nil
}
