//go:build linux

package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// Netns is a network namespace the test made, joined to the host's by a
// veth pair (HostIP on the host's end, NsIP inside), so that a region's
// traffic can be cut by taking the pair's link down. It exists only on
// this machine and is deleted when the test that made it ends.
type Netns struct {
	Name         string
	HostIf, NsIf string
	HostIP, NsIP string
	mu           sync.Mutex
	listeners    []net.Listener
}

// ErrNoNetns says network namespaces cannot be made on this machine; a
// test skips with it, and its message says why.
var ErrNoNetns = errors.New("network namespaces cannot be created here")

// NewNetns creates the namespace and its veth pair with iproute2, to be
// deleted when owner ends. It returns an error wrapping ErrNoNetns when
// namespaces cannot be made here (no `ip`, or not allowed: the suite
// needs root or CAP_NET_ADMIN), so the caller can skip saying why.
func NewNetns(owner testing.TB) (*Netns, error) {
	t := owner
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("%w: iproute2's ip is not installed (Debian package iproute2; .ci/run installs it)", ErrNoNetns)
	}
	id := rand.IntN(1 << 20)
	sub := rand.IntN(250) + 1
	ns := &Netns{
		Name:   fmt.Sprintf("ccnode-faults-%d-%d", os.Getpid(), id),
		HostIf: fmt.Sprintf("ccfh%05x", id), NsIf: fmt.Sprintf("ccfn%05x", id),
		HostIP: fmt.Sprintf("10.231.%d.1", sub), NsIP: fmt.Sprintf("10.231.%d.2", sub),
	}
	if out, err := exec.Command("ip", "netns", "add", ns.Name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%w (root or CAP_NET_ADMIN is needed): ip netns add: %v: %s", ErrNoNetns, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		ns.mu.Lock()
		for _, l := range ns.listeners {
			l.Close()
		}
		ns.mu.Unlock()
		exec.Command("ip", "link", "del", ns.HostIf).Run() // deletes both ends
		if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns.Name, err, out)
		}
	})
	for _, args := range [][]string{
		{"link", "add", ns.HostIf, "type", "veth", "peer", "name", ns.NsIf},
		{"link", "set", ns.NsIf, "netns", ns.Name},
		{"addr", "add", ns.HostIP + "/30", "dev", ns.HostIf},
		{"link", "set", ns.HostIf, "up"},
		{"netns", "exec", ns.Name, "ip", "addr", "add", ns.NsIP + "/30", "dev", ns.NsIf},
		{"netns", "exec", ns.Name, "ip", "link", "set", ns.NsIf, "up"},
		{"netns", "exec", ns.Name, "ip", "link", "set", "lo", "up"},
	} {
		ip(t, args...)
	}
	return ns, nil
}

func ip(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Exec is the command prefix that runs a program inside the namespace.
func (ns *Netns) Exec() []string { return []string{"ip", "netns", "exec", ns.Name} }

// Cut takes the veth pair's link down: every packet between the
// namespace and the host is dropped, and connections already open hang
// rather than fail (what a cut cable or a dead route looks like).
func (ns *Netns) Cut(t testing.TB) { ip(t, "link", "set", ns.HostIf, "down") }

// Restore brings the link back up.
func (ns *Netns) Restore(t testing.TB) { ip(t, "link", "set", ns.HostIf, "up") }

// Forward makes addr (host:port) inside the namespace reach the same
// addr on the host, through this test process, so a process inside can
// use a service that listens only on the host's loopback (a Fabric
// peer's gateway) while its traffic with the other regions goes through
// the veth pair that Cut cuts.
func (ns *Netns) Forward(t testing.TB, addr string) {
	t.Helper()
	ln, err := ns.listen(addr)
	if err != nil {
		t.Fatalf("listen on %s inside %s: %v", addr, ns.Name, err)
	}
	ns.mu.Lock()
	ns.listeners = append(ns.listeners, ln)
	ns.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", addr) // this thread is in the host's namespace
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				go func() { io.Copy(c, up); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				<-done
				<-done
			}()
		}
	}()
}

// listen opens a listening socket inside the namespace: a socket belongs
// to the namespace of the thread that made it, so one locked thread
// enters the namespace, listens and returns. If it cannot return, its
// goroutine ends still locked and Go retires the thread rather than let
// another goroutine run in the wrong namespace.
func (ns *Netns) listen(addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + ns.Name)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("setns: %w", err)}
			return
		}
		ln, lerr := (&net.ListenConfig{}).Listen(context.Background(), "tcp", addr)
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the thread dies with this goroutine.
			if ln != nil {
				ln.Close()
			}
			ch <- result{nil, errors.Join(lerr, fmt.Errorf("setns back: %w", err))}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{ln, lerr}
	}()
	r := <-ch
	return r.ln, r.err
}
