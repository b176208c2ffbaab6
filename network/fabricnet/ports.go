package fabricnet

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
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

// socketInodes are the inodes of pid's open sockets (/proc/<pid>/fd links
// read "socket:[inode]").
func socketInodes(pid int) (map[string]bool, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("fabricnet: %w", err)
	}
	out := map[string]bool{}
	for _, e := range ents {
		link, err := os.Readlink(dir + "/" + e.Name())
		if err == nil && strings.HasPrefix(link, "socket:[") {
			out[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	return out, nil
}

// tcpListeners maps local ports to the inodes of sockets listening on them
// on 127.0.0.1 or any address, from /proc/net/tcp and /proc/net/tcp6.
func tcpListeners() (map[int][]string, error) {
	out := map[int][]string{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("fabricnet: %w", err)
		}
		lines := strings.Split(string(b), "\n")
		for _, line := range lines[1:] {
			fs := strings.Fields(line)
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
			if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
				continue
			}
			i := strings.LastIndexByte(fs[1], ':')
			if i < 0 {
				continue
			}
			port, err := strconv.ParseUint(fs[1][i+1:], 16, 16)
			if err != nil {
				continue
			}
			out[int(port)] = append(out[int(port)], fs[9])
		}
	}
	return out, nil
}
