package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network/fabricnet"
)

// TestFabricUpOutsideSourceTree runs `ccnode fabric up` as an installed
// binary would be: from a folder outside any source tree, with no Fabric
// binaries and no go command. It must say in one line what it needs (the
// binaries' folder, or go to build them), not the internal "set
// Config.ChaincodeServer or Config.ModuleDir" it said before, which left
// an installed binary no way to start a network.
func TestFabricUpOutsideSourceTree(t *testing.T) {
	bin := testkit.CCNode(t)
	work, empty := t.TempDir(), t.TempDir()
	cmd := exec.Command(bin, "fabric", "up", "--dir", filepath.Join(work, "net"), "--bin-dir", filepath.Join(work, "fabric-bin"))
	cmd.Dir = work
	cmd.Env = []string{"PATH=" + empty, "HOME=" + work} // no go, no CCNODE_* from the caller
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("fabric up without Fabric's binaries or go: %v, want a non-zero exit\n%s", err, stderr.String())
	}
	msg := strings.TrimSpace(stderr.String())
	for _, want := range []string{"go command", "--bin-dir", "CCNODE_FABRIC_BIN", filepath.Join(work, "fabric-bin")} {
		if !strings.Contains(msg, want) {
			t.Errorf("fabric up's error does not name %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "Config.") || strings.Count(msg, "\n") > 1 {
		t.Errorf("fabric up's error is not one line for an operator:\n%s", msg)
	}
}

// TestServeChaincodeListens: the hidden command `fabric up` starts as each
// region's chaincode server serves the contract from the ccnode binary.
func TestServeChaincodeListens(t *testing.T) {
	bin := testkit.CCNode(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // free for the child; another process taking it meanwhile fails the test loudly, not wrongly
	cmd := exec.Command(bin, "fabric", serveChaincodeCommand)
	cmd.Env = append(os.Environ(), "CHAINCODE_SERVER_ADDRESS="+addr, "CHAINCODE_ID=ccnode_1:0000", "CHAINCODE_TLS_DISABLED=true")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	testkit.Eventually(t, 20*time.Second, func() error {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("chaincode server exited: %v: %s", err, stderr.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	// Without its environment it refuses to start and says what is missing.
	out, err := exec.Command(bin, "fabric", serveChaincodeCommand).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "CHAINCODE_SERVER_ADDRESS") {
		t.Fatalf("serve-chaincode without its environment: %v\n%s", err, out)
	}
}

// TestFabricAddRegionRefuses: `ccnode fabric add-region` says what is
// wrong in one line before it changes anything: no network in the folder,
// a network that is not running, a region it cannot read or one the
// network already has.
func TestFabricAddRegionRefuses(t *testing.T) {
	bin := testkit.CCNode(t)
	work := t.TempDir()
	stopped := filepath.Join(work, "stopped")
	if err := os.MkdirAll(stopped, 0o755); err != nil {
		t.Fatal(err)
	}
	n := fabricnet.Network{Dir: stopped, Channel: "ccnode", Chaincode: "ccnode", Regions: fabricnet.DefaultRegions(),
		Orderer: fabricnet.OrdererNode{Endpoint: "127.0.0.1:7050"}}
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stopped, "network.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		says []string
	}{
		{"no network", []string{"--dir", filepath.Join(work, "none"), "--region", "441900"}, []string{"no network in", "ccnode fabric up"}},
		{"not running", []string{"--dir", stopped, "--region", "441900"}, []string{"not running", "no orderer recorded in " + stopped}},
		{"unknown region", []string{"--dir", stopped, "--region", "atlantis"}, []string{"--region", "atlantis", "id:name:MSPID"}},
		{"two regions", []string{"--dir", stopped, "--region", "dongguan,foshan"}, []string{"one at a time"}},
		{"present region", []string{"--dir", stopped, "--region", "zhuhai"}, []string{"already in the network", "440400 (zhuhai, ZHMSP)"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"fabric", "add-region"}, tt.args...)...)
			cmd.Dir = work
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("exit %v, want non-zero\n%s", err, stderr.String())
			}
			msg := strings.TrimSpace(stderr.String())
			for _, want := range tt.says {
				if !strings.Contains(msg, want) {
					t.Errorf("error does not say %q:\n%s", want, msg)
				}
			}
			if strings.Count(msg, "\n") > 0 {
				t.Errorf("error is not one line:\n%s", msg)
			}
		})
	}
}
