package fabricnet

import "syscall"

// dieWithParent has the kernel kill the child when the thread that started
// it ends, so a test binary killed by its timeout leaves no Fabric process
// behind. Pdeathsig follows the starting thread, not the process, hence
// startOnLockedThread.
func dieWithParent(a *syscall.SysProcAttr) {
	a.Pdeathsig = syscall.SIGKILL
}
