//go:build linux

package faults

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network/fabric"
	"github.com/prdcredit/ccnode/network/fabricnet"
	"github.com/prdcredit/ccnode/node"
)

// Fabric is a local Fabric network that `ccnode fabric up` started for a
// test, with the node key of every region it bootstrapped.
type Fabric struct {
	Dir string
	Net *fabricnet.Network
	bin Bin
	// owner is the test that started the network: processes Restart
	// starts are killed when it ends, not when a subtest does.
	owner testing.TB
}

// StartFabric runs `ccnode fabric up` in dir and registers `ccnode fabric
// down` (which stops exactly the pids up recorded) as a cleanup. It skips
// t under -short or with CCNODE_SKIP_FABRIC=1.
func StartFabric(t testing.TB, bin Bin, dir string) *Fabric {
	t.Helper()
	fabricnet.SkipUnlessFabric(t)
	t.Cleanup(func() {
		if t.Failed() {
			logTails(t, filepath.Join(dir, "logs"))
		}
		if r := bin.Run(t, "fabric", "down", "--dir", dir); r.Code != 0 {
			t.Errorf("ccnode fabric down: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
	})
	t0 := time.Now()
	bin.Must(t, "fabric", "up", "--dir", dir, "--timeout", "30m")
	n, err := fabricnet.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("local Fabric network up in %s", time.Since(t0).Round(100*time.Millisecond))
	return &Fabric{Dir: dir, Net: n, bin: bin, owner: t}
}

// Member returns the network's organisation of a region.
func (f *Fabric) Member(t testing.TB, id credit.RegionID) (fabricnet.Region, string) {
	t.Helper()
	for i, r := range f.Net.Regions {
		if r.ID == id {
			return r, f.Net.GatewayFiles[i]
		}
	}
	t.Fatalf("the Fabric network has no organisation for region %s", id)
	return fabricnet.Region{}, ""
}

// KeyFile is the node key `fabric up` made for a region (its peer id is
// the one the membership on the ledger names).
func (f *Fabric) KeyFile(id credit.RegionID) string {
	return filepath.Join(f.Dir, "nodes", string(id), "node.key")
}

// Node prepares a region's node on this network in dir with `ccnode init
// --tls` (an operator, "admin", its token in dir/operator.token, and the
// bank API's self-signed certificate) and a config: defaults for dir, the
// bank API (TLS) and libp2p on free loopback ports, the region's gateway
// and the node key `fabric up` made (the one the membership names, not
// init's), changed by edit when not nil.
func (f *Fabric) Node(t testing.TB, id credit.RegionID, dir string, edit func(*node.Config)) *Node {
	t.Helper()
	org, gw := f.Member(t, id)
	// --node-key: init checks the key against the region's record instead
	// of registering a new one.
	n := initNode(t, f.bin, id, dir, "--fabric-gateway", gw, "--node-key", f.KeyFile(id))
	cfg := node.DefaultConfig(id, dir)
	cfg.KeyFile = f.KeyFile(id)
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Admin.Addr = "127.0.0.1:0"
	n.serveTLS(&cfg)
	cfg.Ledger.EmbeddedDir = ""
	cfg.Ledger.FabricGateway = gw
	cfg.Ledger.MSPID = org.MSPID
	if edit != nil {
		edit(&cfg)
	}
	n.WriteConfig(t, cfg)
	return n
}

// NodesWithRecords prepares a node per region under root/nodes/<id>
// (Node, changed by edit) and imports `ccnode gen` records into each. The
// subject is the first region's first enterprise; every other region gets
// a court record on it (tag makes its id unique), so a report on it has a
// slice with records from every region.
func (f *Fabric) NodesWithRecords(t testing.TB, root, tag string, edit func(*node.Config), ids ...credit.RegionID) ([]*Node, credit.USCC) {
	t.Helper()
	var nodes []*Node
	var subject credit.USCC
	for i, id := range ids {
		n := f.Node(t, id, filepath.Join(root, "nodes", string(id)), edit)
		feed := filepath.Join(n.Dir, "feed.jsonl")
		f.bin.Must(t, "gen", "--region", string(id), "--enterprises", "3", "--seed", "7", "--quiet", "-o", feed)
		if i == 0 {
			subject = FirstSubject(t, feed)
		} else {
			AppendCourtRecord(t, feed, subject, id, tag)
		}
		// --data-dir is the node's data folder; its store is DIR/db.
		f.bin.Must(t, "import", "--quiet", "--data-dir", n.Dir, feed)
		nodes = append(nodes, n)
	}
	return nodes, subject
}

// Ledger dials the network as a region's organisation.
func (f *Fabric) Ledger(t testing.TB, id credit.RegionID) *fabric.Ledger {
	t.Helper()
	_, gw := f.Member(t, id)
	cfg, err := fabric.LoadConfig(gw)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := fabric.Dial(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("dial Fabric as %s: %v", cfg.MSPID, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// Stopped is a Fabric process the test killed, with what it takes to
// start it again exactly as `fabric up` did: command line, environment
// and working folder, read from /proc before the kill.
type Stopped struct {
	Name string
	args []string
	env  []string
	dir  string
	log  string
}

// KillFabric SIGKILLs the process `fabric up` recorded under name
// (orderer, peer-<region name>, ccserver-<region name>) and its process
// group, and waits until it is gone.
func (f *Fabric) KillFabric(t testing.TB, name string) *Stopped {
	t.Helper()
	ps, err := fabricnet.Status(f.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var p *fabricnet.Process
	for i := range ps {
		// A restarted process is not in the pids file: the newest record
		// of that name that still runs is the one.
		if ps[i].Name == name && ps[i].Alive {
			p = &ps[i]
		}
	}
	pid := 0
	if p != nil {
		pid = p.Pid
	} else if rp, ok := f.restarted(name); ok {
		pid = rp
	} else {
		t.Fatalf("no running Fabric process %q in %s", name, f.Dir)
	}
	s := &Stopped{Name: name, log: filepath.Join(f.Dir, "logs", name+".log")}
	pr, err := procfs.NewProc(pid)
	if err == nil {
		s.args, err = pr.CmdLine()
	}
	if err == nil {
		s.env, err = pr.Environ()
	}
	if err == nil {
		s.dir, err = pr.Cwd()
	}
	if err != nil {
		t.Fatalf("%s (pid %d): %v", name, pid, err)
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL %s (pid %d): %v", name, pid, err)
	}
	WaitFor(t, time.Minute, name+" gone", func() (bool, string) {
		st, err := pr.Stat()
		if err != nil {
			return true, "" // reaped
		}
		return st.State == "Z", "still running"
	})
	return s
}

// Restart starts the process again as it was, in a session of its own,
// appending to its log. A cleanup of the test that started the network
// kills it (before `fabric down`, which does not know its new pid).
func (f *Fabric) Restart(t testing.TB, s *Stopped) {
	t.Helper()
	lf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	cmd := exec.Command(s.args[0], s.args[1:]...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = s.env, s.dir, lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("restart %s: %v", s.Name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	f.setRestarted(s.Name, cmd.Process.Pid)
	f.owner.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
}

// The pids of processes Restart started, by name, in a file beside the
// network's own records so that KillFabric finds them again.
func (f *Fabric) restarted(name string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(f.Dir, "faults-restarted-"+name))
	if err != nil {
		return 0, false
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil {
		return 0, false
	}
	if _, err := procfs.NewProc(pid); err != nil {
		return 0, false
	}
	return pid, true
}

func (f *Fabric) setRestarted(name string, pid int) {
	os.WriteFile(filepath.Join(f.Dir, "faults-restarted-"+name), []byte(fmt.Sprint(pid)), 0o644)
}

// WaitHealthy polls an operations endpoint's /healthz until it says OK.
func WaitHealthy(t testing.TB, endpoint string, d time.Duration) {
	t.Helper()
	WaitFor(t, d, endpoint+" healthy", func() (bool, string) {
		resp, err := http.Get("http://" + endpoint + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

// logTails logs the end of each Fabric process log.
func logTails(t testing.TB, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		t.Logf("--- %s (tail) ---\n%s", f, tailString(string(b), 3000))
	}
}
