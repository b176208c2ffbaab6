package store

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/prometheus/procfs"
)

// dropTablePages releases this process's mapping of the pages of the
// store's table files, leaving them in the page cache.
//
// Badger maps every table file (shared, read-only once written) and writes
// new tables through such mappings. Every page an import writes or reads
// stays mapped, and counted in the process's resident set, for as long as
// the table is open, so a large Load's RSS grew with the tables it had
// written (`ccbench import`, peak RSS). Dropping a shared file
// mapping's pages loses nothing (the data is in the page cache, dirty
// pages included, and goes to disk as usual); a later read maps the page
// again from the cache.
func (db *DB) dropTablePages() error {
	if db.inMem {
		return nil
	}
	if db.absDir == "" {
		d, err := filepath.Abs(db.dir)
		if err == nil {
			d, err = filepath.EvalSymlinks(d)
		}
		if err != nil {
			return fmt.Errorf("store: data directory: %w", err)
		}
		db.absDir = d
	}
	self, err := procfs.Self()
	var maps []*procfs.ProcMap
	if err == nil {
		maps, err = self.ProcMaps()
	}
	if errors.Is(err, fs.ErrNotExist) {
		// Not Linux (or no /proc): releasing pages is only a way to keep
		// the resident set small, so the import goes on without it.
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: release table pages: %w", err)
	}
	prefix := db.absDir + string(filepath.Separator)
	for _, m := range maps {
		if !strings.HasPrefix(m.Pathname, prefix) || !strings.HasSuffix(m.Pathname, ".sst") || m.EndAddr <= m.StartAddr {
			continue
		}
		// Only a hint to the kernel: a failure changes nothing stored.
		syscall.Syscall(syscall.SYS_MADVISE, m.StartAddr, m.EndAddr-m.StartAddr, syscall.MADV_DONTNEED)
	}
	return nil
}
