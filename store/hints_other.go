//go:build !linux

package store

import "os"

// adviseHugePages has no portable equivalent outside Linux; the sort buffer
// works the same without it.
func adviseHugePages([]byte) {}

// startWriteback has no portable equivalent outside Linux; the final fsync
// then writes the whole file.
func startWriteback(*os.File, int64, int64) {}
