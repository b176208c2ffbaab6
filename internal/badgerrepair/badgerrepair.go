// Package badgerrepair clears what a process killed at the wrong instant
// leaves in a Badger folder and Badger itself will not open past.
//
// Badger creates a memtable's write-ahead file and only then sizes it; a
// kill between the two leaves an empty NNNNN.mem file, and the next Open
// fails with "while opening memtables err: while opening fid: N err:
// Create a new file" (memtable.go treats the empty file as an error on
// reopen; that failed Open sizes the file, so the next one gets past it).
// An empty file holds no entry, so removing it loses nothing.
package badgerrepair

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// EmptyMemtables removes every empty *.mem file directly in dir and
// returns their names. A missing dir is not an error (a new store).
func EmptyMemtables(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".mem") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return removed, err
		}
		if fi.Size() != 0 {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Remove(p); err != nil {
			return removed, fmt.Errorf("removing the empty memtable file %s a killed process left: %w", p, err)
		}
		removed = append(removed, e.Name())
	}
	return removed, nil
}
