package store

import (
	"os"
	"syscall"
)

// adviseHugePages asks for transparent huge pages on the sort buffer: first
// touching a 4 KiB page costs tens of µs of CPU on a virtual machine under
// load, and an import touches gigabytes. Only a hint: without huge pages
// the buffer works the same.
func adviseHugePages(mem []byte) {
	_ = syscall.Madvise(mem, syscall.MADV_HUGEPAGE)
}

// syncFileRangeWrite is SYNC_FILE_RANGE_WRITE of sync_file_range(2): start
// writeback of the range without waiting for it.
const syncFileRangeWrite = 2

// startWriteback starts writing n bytes of f from off to disk without
// waiting, so that the final fsync of a large file has little left to do.
// Only a hint: errors (a file system without it) change nothing.
func startWriteback(f *os.File, off, n int64) {
	_ = syscall.SyncFileRange(int(f.Fd()), off, n, syncFileRangeWrite)
}
