// Package badgerrepair clears what a process killed at the wrong instant
// leaves in a Badger folder and Badger itself will not open past.
//
// Badger creates a memtable's write-ahead file (NNNNN.mem) or a value-log
// file (NNNNNN.vlog) and only then sizes it and writes its header; a kill
// between the two leaves an empty file, and the next Open fails with
// "while opening fid: N err: Create a new file" or "During db.vlog.open
// err: Open existing file: … Create a new file" (Badger treats the empty
// file as an error on reopen; that failed Open sizes a memtable file, so
// the Open after it gets past). An empty file holds no entry and nothing
// points into it, so removing it loses nothing.
package badgerrepair

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// EmptyMemtables removes every empty *.mem and *.vlog file directly in dir
// and returns their names. A missing dir is not an error (a new store).
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
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".mem") && !strings.HasSuffix(e.Name(), ".vlog") {
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
			return removed, fmt.Errorf("removing the empty log file %s a killed process left: %w", p, err)
		}
		removed = append(removed, e.Name())
	}
	return removed, nil
}
