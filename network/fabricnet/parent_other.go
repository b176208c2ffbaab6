//go:build !linux

package fabricnet

import "syscall"

// dieWithParent: only Linux can kill a child when its parent dies; on other
// systems a test network's processes outlive a test binary killed by its
// timeout, and Down (or the pids file) stops them.
func dieWithParent(*syscall.SysProcAttr) {}
