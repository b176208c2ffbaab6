package fabricnet

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hyperledger/fabric-gateway/pkg/client"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
)

func testConfig(t *testing.T, dir string) Config {
	return Config{
		Dir:    dir,
		Logger: testkit.Logger(t),
		// The test binary may die; its network must not outlive it.
		StopWithParent: true,
	}
}

// Up, check, Down — twice in the same folder: the second Up must clear the
// first network's files and find its ports and processes gone.
func TestUpDownTwice(t *testing.T) {
	SkipUnlessFabric(t)
	dir := t.TempDir()
	for round := 1; round <= 2; round++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		var boots atomic.Int32
		cfg := testConfig(t, dir)
		cfg.Bootstrap = func(ctx context.Context, n *Network) error {
			boots.Add(1)
			// The network is ready when Bootstrap runs: a submit commits.
			g, err := n.Gateway(n.Regions[len(n.Regions)-1].ID)
			if err != nil {
				return err
			}
			return g.ProbeSubmit(ctx)
		}
		start := time.Now()
		n, err := Up(ctx, cfg)
		if err != nil {
			cancel()
			t.Fatalf("round %d: Up: %v", round, err)
		}
		t.Logf("round %d: up in %s", round, time.Since(start).Round(time.Millisecond))
		checkNetwork(t, ctx, n)
		checkAuditor(t, ctx, n)
		if round == 1 {
			checkMajorityEndorses(t, ctx, n)
		}
		if boots.Load() != 1 {
			t.Errorf("Bootstrap ran %d times, want once", boots.Load())
		}
		ps, _ := Status(dir)
		start = time.Now()
		if err := n.Down(); err != nil {
			t.Fatalf("round %d: Down: %v", round, err)
		}
		t.Logf("round %d: down in %s", round, time.Since(start).Round(time.Millisecond))
		for _, p := range ps {
			if p.running() {
				t.Errorf("%s (pid %d) still runs after Down", p.Name, p.Pid)
			}
		}
		// Its ports are free again.
		for _, g := range n.Gateways {
			l, err := net.Listen("tcp", g.Endpoint)
			if err != nil {
				t.Errorf("peer port %s still taken after Down: %v", g.Endpoint, err)
			} else {
				l.Close()
			}
		}
		cancel()
	}
}

// checkNetwork verifies what Up promises: every process runs, every peer
// joined the channel and has the contract committed with a majority policy,
// connection files load.
func checkNetwork(t *testing.T, ctx context.Context, n *Network) {
	t.Helper()
	ps, err := Status(n.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 + 2*len(n.Regions); len(ps) != want {
		t.Errorf("%d processes recorded, want %d", len(ps), want)
	}
	for _, p := range ps {
		if !p.Alive {
			t.Errorf("%s is not running", p.Name)
		}
	}
	if len(n.Regions) != 3 || n.Regions[0].MSPID != "SZMSP" {
		t.Errorf("regions = %+v, want the three default ones", n.Regions)
	}
	for i, r := range n.Regions {
		info, err := n.PeerCLI(ctx, r.ID, "channel", "getinfo", "-c", n.Channel)
		if err != nil {
			t.Errorf("%s: peer has not joined %s: %v", r.Name, n.Channel, err)
		} else if !strings.Contains(string(info), "Blockchain info") {
			t.Errorf("%s: channel getinfo: %s", r.Name, info)
		}
		out, err := n.PeerCLI(ctx, r.ID, "lifecycle", "chaincode", "querycommitted", "-C", n.Channel, "-n", n.Chaincode)
		if err != nil {
			t.Errorf("%s: contract not committed: %v", r.Name, err)
		} else {
			s := string(out)
			for _, want := range []string{"Version: 1.0, Sequence: 1", "SZMSP: true", "GZMSP: true", "ZHMSP: true"} {
				if !strings.Contains(s, want) {
					t.Errorf("%s: querycommitted says %q, missing %q", r.Name, s, want)
				}
			}
		}
		g := n.Gateways[r.ID]
		if g.MSPID != r.MSPID || g.Channel != DefaultChannel || g.Chaincode != DefaultChaincode {
			t.Errorf("%s: gateway %+v", r.Name, g)
		}
		for _, f := range []string{g.TLSCACert, g.CertPath, g.KeyPath} {
			if _, err := os.Stat(f); err != nil {
				t.Errorf("%s: %v", r.Name, err)
			}
		}
		if want := filepath.Join(ConnectionDir(n.Dir), string(r.ID)+".yaml"); n.GatewayFiles[i] != want {
			t.Errorf("connection file %s, want %s", n.GatewayFiles[i], want)
		}
	}
	loaded, err := Load(n.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(loaded.Gateways[credit.RegionID("440300")], n.Gateways["440300"]) {
		t.Errorf("network.json does not round-trip: %+v", loaded.Gateways)
	}
}

// checkAuditor: Up wrote the auditor's connection file, and through real
// peers and the orderer the auditor's client evaluates but cannot order a
// transaction, not even one whose endorsement succeeds.
func checkAuditor(t *testing.T, ctx context.Context, n *Network) {
	t.Helper()
	g := n.Auditor
	if g.MSPID != AuditorMSP || g.Endpoint != n.Gateways[n.Regions[0].ID].Endpoint || g.Channel != n.Channel || g.Chaincode != n.Chaincode {
		t.Errorf("auditor gateway %+v", g)
	}
	if want := filepath.Join(ConnectionDir(n.Dir), "auditor.yaml"); n.AuditorFile != want {
		t.Errorf("auditor connection file %s, want %s", n.AuditorFile, want)
	}
	for _, f := range []string{n.AuditorFile, g.TLSCACert, g.CertPath, g.KeyPath} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("auditor: %v", err)
		}
	}
	if loaded, err := Load(n.Dir); err != nil || !reflect.DeepEqual(loaded.Auditor, g) || loaded.AuditorFile != n.AuditorFile {
		t.Errorf("network.json does not round-trip the auditor: %+v, %v", loaded, err)
	}
	if err := g.ProbeEvaluate(ctx); err != nil {
		t.Errorf("the auditor cannot evaluate: %v", err)
	}
	// GetMetadata endorses for anyone allowed to propose; the orderer then
	// checks the channel's Writers, which the auditor's client never meets.
	err := g.ProbeSubmit(ctx)
	var se *client.SubmitError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "FORBIDDEN") {
		t.Errorf("the auditor's submit = %v, want the orderer's FORBIDDEN (a *client.SubmitError)", err)
	}
}

// checkMajorityEndorses stops one region's peer and submits through
// another region's gateway: the transaction commits, so endorsement needs
// a majority of the regions only, with the peer-less auditor on the
// channel (an ImplicitMeta MAJORITY over every organisation would need
// all three regions).
func checkMajorityEndorses(t *testing.T, ctx context.Context, n *Network) {
	t.Helper()
	last := n.Regions[len(n.Regions)-1]
	ps, err := Status(n.Dir)
	if err != nil {
		t.Fatal(err)
	}
	killed := false
	for _, p := range ps {
		if p.Name == "peer-"+last.Name && p.Alive {
			// Its own process group: the pid Up started and recorded.
			if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil {
				t.Fatalf("stopping %s (pid %d): %v", p.Name, p.Pid, err)
			}
			killed = true
		}
	}
	if !killed {
		t.Fatalf("no running peer-%s in %s", last.Name, n.Dir)
	}
	testkit.Eventually(t, 10*time.Second, func() error {
		ps, err := Status(n.Dir)
		for _, p := range ps {
			if p.Name == "peer-"+last.Name && p.Alive {
				return errors.New("peer of " + last.Name + " still runs")
			}
		}
		return err
	})
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	// The gateway may first try the dead peer; it then endorses elsewhere.
	if err := WaitReady(sctx, n.Gateways[n.Regions[0].ID].ProbeSubmit); err != nil {
		t.Fatalf("with %s's peer down, a submit through %s never committed: %v", last.Name, n.Regions[0].Name, err)
	}
}

// A failed Up stops what it had started and says which process failed.
func TestUpRollsBackOnFailure(t *testing.T) {
	SkipUnlessFabric(t)
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	// A chaincode server that exits at once: Up fails after the orderer
	// and peers are running.
	cfg.ChaincodeServer = filepath.Join(dir+"-bin", "false")
	if err := os.MkdirAll(filepath.Dir(cfg.ChaincodeServer), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(cfg.ChaincodeServer)) })
	if err := os.WriteFile(cfg.ChaincodeServer, []byte("#!/bin/sh\necho refusing to serve >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	_, err := Up(ctx, cfg)
	if !errors.Is(err, ErrProcessExited) {
		t.Fatalf("Up = %v, want ErrProcessExited", err)
	}
	if !strings.Contains(err.Error(), "refusing to serve") {
		t.Errorf("the error does not carry the process's log: %v", err)
	}
	ps, err := Status(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) < 2 {
		t.Errorf("only %d processes were recorded: the failure came too early to test the rollback", len(ps))
	}
	for _, p := range ps {
		if p.running() {
			t.Errorf("%s still runs after a failed Up", p.Name)
		}
	}
	// Up refuses nothing afterwards: the folder is ours and nothing runs.
	if err := prepareDir(dir); err != nil {
		t.Errorf("the folder of a failed Up cannot be reused: %v", err)
	}
}

// StartForTest shares one network between concurrent users and stops it
// after the last.
func TestStartForTest(t *testing.T) {
	var n1 *Network
	t.Run("first", func(t *testing.T) {
		n1 = StartForTest(t, Config{})
		n2 := StartForTest(t, Config{Dir: "ignored"})
		if n1 != n2 {
			t.Error("a second StartForTest started another network")
		}
		g, err := n1.Gateway("440100")
		if err != nil {
			t.Fatal(err)
		}
		if err := g.ProbeSubmit(context.Background()); err != nil {
			t.Errorf("submit through Guangzhou: %v", err)
		}
	})
	if n1 == nil {
		return
	}
	if ps, _ := Status(n1.Dir); len(ps) != 0 { // the folder is removed after a clean run
		for _, p := range ps {
			if p.running() {
				t.Errorf("%s still runs after the last user finished", p.Name)
			}
		}
	}
}
