package store

import (
	"fmt"
	"os"
	"syscall"
)

// sortArena is the memory a bulk load or a Load sorts its records in: one
// anonymous mapping outside the Go heap, reused for every sorted run.
//
// Records used to be copied into fresh heap blocks for every run. On this
// project's virtual machines the first touch of a page costs far more than
// the copy into it, so page faults and the garbage collector's work on
// those blocks were a large part of an import's CPU; and a heap that grew
// by a run's size between collections held up to twice ChunkBytes. The
// mapping is touched once (in transparent huge pages where the system
// allows), is never scanned by the collector and bounds the sort buffer to
// ChunkBytes.
type sortArena struct {
	mem  []byte
	used int
}

func newSortArena(size int) (*sortArena, error) {
	page := os.Getpagesize()
	size = (max(size, page) + page - 1) / page * page
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil, fmt.Errorf("store: sort buffer of %d bytes: %w", size, err)
	}
	adviseHugePages(mem)
	return &sortArena{mem: mem}, nil
}

// alloc returns n bytes of the arena, or nil when fewer are free.
func (a *sortArena) alloc(n int) []byte {
	if len(a.mem)-a.used < n {
		return nil
	}
	b := a.mem[a.used : a.used+n : a.used+n]
	a.used += n
	return b
}

// reset makes the whole arena free again; what was allocated must no
// longer be used.
func (a *sortArena) reset() { a.used = 0 }

// free unmaps the arena. Nothing allocated from it may be touched after:
// that would crash the process, not panic.
func (a *sortArena) free() {
	if a.mem != nil {
		_ = syscall.Munmap(a.mem)
		a.mem, a.used = nil, 0
	}
}
