package fabricnet

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/procfs"
)

// ErrPortTaken: another program listens on a port Up chose for one of its
// processes. Up retries with fresh ports when this happens.
var ErrPortTaken = errors.New("fabricnet: port taken by another program")

// ports holds the listeners of the ports Up chose. Fabric binds addresses,
// not inherited listeners, so each port stays held by this process until
// just before the process that uses it starts: the window in which another
// program (say, a second network starting at the same time) could take it
// is milliseconds, not the tens of seconds Up takes.
type ports struct {
	mu sync.Mutex
	ls map[int]net.Listener
}

func reservePorts(n int) (*ports, []int, error) {
	ps := &ports{ls: map[int]net.Listener{}}
	out := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			ps.releaseAll()
			return nil, nil, fmt.Errorf("fabricnet: picking a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		ps.ls[port] = l
		out = append(out, port)
	}
	return ps, out, nil
}

func (ps *ports) release(ports ...int) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ports {
		if l, ok := ps.ls[p]; ok {
			l.Close()
			delete(ps.ls, p)
		}
	}
}

func (ps *ports) releaseAll() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for p, l := range ps.ls {
		l.Close()
		delete(ps.ls, p)
	}
}

// listening reports whether pid listens on every port. It fails with
// ErrPortTaken when another process listens on one of them, which no wait
// will fix.
func listening(pid int, ports []int) (bool, error) {
	// The socket table first, then the process's sockets: read the other
	// way round, a socket opened in between would look like a stranger's.
	listeners, err := tcpListeners()
	if err != nil {
		return false, err
	}
	owned, err := socketInodes(pid)
	if err != nil {
		return false, err
	}
	all := true
	for _, port := range ports {
		inodes := listeners[port]
		if len(inodes) == 0 {
			all = false
			continue
		}
		ours := false
		for _, ino := range inodes {
			if owned[ino] {
				ours = true
			}
		}
		if !ours {
			return false, fmt.Errorf("%w: 127.0.0.1:%d", ErrPortTaken, port)
		}
	}
	return all, nil
}

// socketInodes are the inodes of pid's open sockets. procfs gives the
// /proc/<pid>/fd links; reading "socket:[inode]" in them is ours.
func socketInodes(pid int) (map[uint64]bool, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return nil, fmt.Errorf("fabricnet: %w", err)
	}
	links, err := p.FileDescriptorTargets()
	if err != nil {
		return nil, fmt.Errorf("fabricnet: %w", err)
	}
	out := map[uint64]bool{}
	for _, link := range links {
		ino, ok := strings.CutPrefix(link, "socket:[")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSuffix(ino, "]"), 10, 64); err == nil {
			out[n] = true
		}
	}
	return out, nil
}

// tcpListen is the state of a listening socket in /proc/net/tcp.
const tcpListen = 0x0A

// tcpListeners maps local ports to the inodes of sockets listening on them,
// from /proc/net/tcp and /proc/net/tcp6 (absent without IPv6).
func tcpListeners() (map[int][]uint64, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, fmt.Errorf("fabricnet: %w", err)
	}
	out := map[int][]uint64{}
	for _, read := range []func() (procfs.NetTCP, error){fs.NetTCP, fs.NetTCP6} {
		socks, err := read()
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("fabricnet: %w", err)
		}
		for _, s := range socks {
			if s.St == tcpListen {
				out[int(s.LocalPort)] = append(out[int(s.LocalPort)], s.Inode)
			}
		}
	}
	return out, nil
}
