//go:build linux || darwin || freebsd

package store

import "golang.org/x/sys/unix"

// diskSpace is the bytes available to unprivileged users and the total
// size of the filesystem holding dir.
func diskSpace(dir string) (avail, size uint64, ok bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), uint64(st.Blocks) * uint64(st.Bsize), true
}
