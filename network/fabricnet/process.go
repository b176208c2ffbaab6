package fabricnet

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
)

const (
	pidsFile   = "pids"
	logsDir    = "logs"
	markerFile = ".ccnode-fabricnet" // says Up made this folder, so Up may empty it
	stateFile  = "network.json"
)

// Process is one process Up started, as recorded in the network's pids file.
type Process struct {
	Name  string // orderer, peer-<region>, ccserver-<region>
	Pid   int    // also its process group id: each runs in a session of its own
	Start uint64 // start time in clock ticks since boot, which tells a recycled pid apart
	Bin   string
	Log   string // its stdout and stderr
	Alive bool
}

// exited collects the processes this Up started that have ended, so the
// waits of Up can fail at once with the process's log instead of timing out.
type exited struct {
	mu   sync.Mutex
	dead map[string]error
}

func (e *exited) record(name string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dead == nil {
		e.dead = map[string]error{}
	}
	e.dead[name] = err
}

// check names a process that ended, with the end of its log.
func (e *exited) check(dir string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for name, err := range e.dead {
		b, _ := os.ReadFile(filepath.Join(dir, logsDir, name+".log"))
		return fmt.Errorf("%w: %s (%v); end of %s:\n%s", ErrProcessExited, name, err,
			filepath.Join(dir, logsDir, name+".log"), tail(b, 15))
	}
	return nil
}

// ErrProcessExited is returned by Up when a process it started ended
// while it was being set up; the message carries the end of its log.
var ErrProcessExited = errors.New("fabricnet: a network process exited")

// launch starts a long-running process in a session of its own (so a
// terminal's signals do not reach it and Down can signal its whole group),
// logging to <dir>/logs/<name>.log, and appends it to the pids file before
// returning.
func launch(dir, name, bin string, args, env []string, withParent bool, ex *exited) (int, error) {
	logPath := filepath.Join(dir, logsDir, name+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return 0, fmt.Errorf("start %s: %w", name, err)
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", name, err)
	}
	defer f.Close() // the child has its own copy
	cmd := exec.Command(bin, args...)
	cmd.Env = append(childEnv(), env...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if withParent {
		dieWithParent(cmd.SysProcAttr)
		err = startOnLockedThread(cmd)
	} else {
		err = cmd.Start()
	}
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", name, err)
	}
	// Reap it whoever stops it, so a long-lived caller (a test binary)
	// keeps no zombies, and tell Up if it ends early.
	go func() {
		err := cmd.Wait()
		if ex != nil {
			ex.record(name, err)
		}
	}()
	start, _ := startTime(cmd.Process.Pid)
	pf, err := os.OpenFile(filepath.Join(dir, pidsFile), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return 0, fmt.Errorf("start %s: recording its pid: %w", name, err)
	}
	defer pf.Close()
	if _, err := fmt.Fprintf(pf, "%s %d %d %s\n", name, cmd.Process.Pid, start, bin); err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return 0, fmt.Errorf("start %s: recording its pid: %w", name, err)
	}
	return cmd.Process.Pid, nil
}

// Pdeathsig fires when the thread that forked the child exits, not the
// process; Go may retire threads, so children that must die with their
// parent are forked from one thread that is locked and never exits.
var (
	lockedStarterOnce sync.Once
	lockedStarter     chan startReq
)

type startReq struct {
	cmd  *exec.Cmd
	done chan error
}

func startOnLockedThread(cmd *exec.Cmd) error {
	lockedStarterOnce.Do(func() {
		lockedStarter = make(chan startReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range lockedStarter {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	lockedStarter <- startReq{cmd, done}
	return <-done
}

// childEnv is this process's environment without anything Fabric would
// read as its own configuration: Fabric maps CORE_* and ORDERER_* onto
// core.yaml and orderer.yaml keys, and FABRIC_CFG_PATH chooses the file.
// Each child gets exactly the variables Up gives it on top of this.
func childEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CORE_") || strings.HasPrefix(kv, "ORDERER_") || strings.HasPrefix(kv, "FABRIC_") ||
			strings.HasPrefix(kv, "CHAINCODE_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// startTime is when pid started, in clock ticks after boot: with the pid,
// it names one process.
func startTime(pid int) (uint64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.Stat()
	if err != nil {
		return 0, err
	}
	if gone(st) {
		return 0, fmt.Errorf("pid %d has exited", pid)
	}
	return st.Starttime, nil
}

// gone: a zombie or a dead process still in the table.
func gone(st procfs.ProcStat) bool { return st.State == "Z" || st.State == "X" }

// alive reports whether the recorded process still runs: same pid, same
// start time, not a zombie. A pid the kernel gave to another program since
// is never signalled.
func (p Process) alive() bool {
	st, err := startTime(p.Pid)
	if err != nil {
		return false
	}
	return p.Start == 0 || st == p.Start
}

// running reports whether the process or anything left in its process
// group still runs.
func (p Process) running() bool { return p.alive() || groupHasMembers(p.Pid) }

// groupHasMembers reports whether a process other than a zombie has
// process group pgid.
func groupHasMembers(pgid int) bool {
	procs, err := procfs.AllProcs()
	if err != nil {
		return false
	}
	for _, p := range procs {
		st, err := p.Stat()
		if err == nil && st.PGRP == pgid && !gone(st) {
			return true
		}
	}
	return false
}

func readPids(dir string) ([]Process, error) {
	b, err := os.ReadFile(filepath.Join(dir, pidsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fabricnet: %w", err)
	}
	var out []Process
	for n, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		f := strings.SplitN(line, " ", 4)
		if len(f) != 4 {
			return nil, fmt.Errorf("fabricnet: %s line %d: %q", filepath.Join(dir, pidsFile), n+1, line)
		}
		pid, err1 := strconv.Atoi(f[1])
		start, err2 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil || pid <= 1 {
			return nil, fmt.Errorf("fabricnet: %s line %d: %q", filepath.Join(dir, pidsFile), n+1, line)
		}
		p := Process{Name: f[0], Pid: pid, Start: start, Bin: f[3], Log: filepath.Join(dir, logsDir, f[0]+".log")}
		p.Alive = p.alive()
		out = append(out, p)
	}
	return out, nil
}

// Status lists the processes Up recorded in dir and whether each still runs.
func Status(dir string) ([]Process, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fabricnet: %w", err)
	}
	return readPids(abs)
}

// StopTimeout is how long Down lets processes exit after SIGTERM before it
// sends SIGKILL.
const StopTimeout = 10 * time.Second

// Down stops exactly the processes Up recorded in dir — by pid and process
// group, never by name — newest first: SIGTERM, then SIGKILL to those still
// running after StopTimeout. It returns once all have exited. It is safe on a
// network that is partly or wholly stopped, or that a failed Up left behind,
// and keeps the folder (logs, ledgers, pids) for inspection.
func Down(dir string) error { return down(dir, StopTimeout) }

func down(dir string, grace time.Duration) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("fabricnet: %w", err)
	}
	ps, err := readPids(abs)
	if err != nil {
		return err
	}
	return stop(ps, grace)
}

// stop stops ps newest first as Down does: SIGTERM, SIGKILL after grace.
func stop(ps []Process, grace time.Duration) error {
	var errs []error
	signal := func(p Process, sig syscall.Signal) {
		// Re-check just before signalling: the pid must still be ours, or
		// its group still have members (the kernel does not hand out a pid
		// that is the id of a live group, so that group is still ours).
		if !p.running() {
			return
		}
		if err := syscall.Kill(-p.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			// Not a group leader after all (should not happen): the pid alone.
			if err := syscall.Kill(p.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("fabricnet: %s (pid %d): %s: %w", p.Name, p.Pid, sig, err))
			}
		}
	}
	for i := len(ps) - 1; i >= 0; i-- {
		signal(ps[i], syscall.SIGTERM)
	}
	waitGone(ps, time.Now().Add(grace))
	for _, p := range ps {
		signal(p, syscall.SIGKILL)
	}
	waitGone(ps, time.Now().Add(5*time.Second))
	for _, p := range ps {
		if p.running() {
			errs = append(errs, fmt.Errorf("fabricnet: %s (pid %d) or a process it started still runs after SIGKILL", p.Name, p.Pid))
		}
	}
	// The pids file stays: Status then shows what ran and that it stopped,
	// and a second Down finds nothing to do.
	return errors.Join(errs...)
}

// waitGone polls until none of ps runs or the deadline passes. Another
// session's process cannot be waited on, only looked at.
func waitGone(ps []Process, deadline time.Time) {
	for time.Now().Before(deadline) {
		anyAlive := false
		for _, p := range ps {
			if p.running() {
				anyAlive = true
				break
			}
		}
		if !anyAlive {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL to the process Up recorded as name in n's folder (a
// peer's name is PeerProcess(region, index)), by its recorded pid and only
// while that pid is still the process Up started, and waits until it is
// gone. It is how a test takes a peer away without a clean shutdown.
func (n *Network) Kill(name string) error {
	ps, err := readPids(n.Dir)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p.Name != name {
			continue
		}
		if !p.alive() {
			return fmt.Errorf("fabricnet: %s (pid %d) is not running", name, p.Pid)
		}
		if err := syscall.Kill(p.Pid, syscall.SIGKILL); err != nil {
			return fmt.Errorf("fabricnet: kill %s (pid %d): %w", name, p.Pid, err)
		}
		waitGone([]Process{p}, time.Now().Add(StopTimeout))
		if p.alive() {
			return fmt.Errorf("fabricnet: %s (pid %d) still runs after SIGKILL", name, p.Pid)
		}
		return nil
	}
	return fmt.Errorf("fabricnet: no process %s recorded in %s", name, n.Dir)
}
