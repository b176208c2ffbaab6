package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// dropTablePages releases this process's mapping of the pages of the
// store's table files, leaving them in the page cache.
//
// Badger maps every table file (shared, read-only once written) and writes
// new tables through such mappings. Every page an import writes or reads
// stays mapped, and counted in the process's resident set, for as long as
// the table is open: a 20-million-record Load peaked at 3.8 GiB, most of
// it the 2.6 GB of tables it had just written. Dropping a shared file
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
	f, err := os.Open("/proc/self/maps")
	if errors.Is(err, fs.ErrNotExist) {
		// Not Linux (or no /proc): releasing pages is only a way to keep
		// the resident set small, so the import goes on without it.
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: release table pages: %w", err)
	}
	defer f.Close()
	prefix := []byte(db.absDir + string(filepath.Separator))
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		line := sc.Bytes()
		i := bytes.IndexByte(line, '/')
		if i < 0 {
			continue
		}
		path := line[i:]
		if !bytes.HasPrefix(path, prefix) || !bytes.HasSuffix(path, []byte(".sst")) {
			continue
		}
		rng, _, _ := bytes.Cut(line, []byte{' '})
		lo, hi, ok := bytes.Cut(rng, []byte{'-'})
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		// Only a hint to the kernel: a failure changes nothing stored.
		syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), syscall.MADV_DONTNEED)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("store: release table pages: %w", err)
	}
	return nil
}
