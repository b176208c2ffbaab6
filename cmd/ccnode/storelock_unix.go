//go:build unix

package main

import (
	"errors"
	"os"
	"syscall"
)

// storeLocked reports whether a process holds the Badger directory lock
// of dir (Badger takes an exclusive flock on the folder itself). A folder
// that does not exist is not locked.
func storeLocked(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true
	}
	if err == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	}
	return false
}
