package fabricnet

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/prdcredit/ccnode/internal/testkit"
)

func TestValidate(t *testing.T) {
	ok := Config{Dir: "x"}.WithDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		name, field string
		edit        func(*Config)
	}{
		{"no dir", "Dir", func(c *Config) { c.Dir = "" }},
		{"bad region id", "Regions[0].ID", func(c *Config) { c.Regions[0].ID = "Shen Zhen" }},
		{"upper-case name", "Regions[1].Name", func(c *Config) { c.Regions[1].Name = "Guangzhou" }},
		{"orderer msp", "Regions[2].MSPID", func(c *Config) { c.Regions[2].MSPID = ordererMSP }},
		{"auditor msp", "Regions[0].MSPID", func(c *Config) { c.Regions[0].MSPID = AuditorMSP }},
		{"auditor's name", "Regions[2].Name", func(c *Config) { c.Regions[2].Name = auditorName }},
		{"repeated msp", "Regions[1]", func(c *Config) { c.Regions[1].MSPID = c.Regions[0].MSPID }},
		{"channel", "Channel", func(c *Config) { c.Channel = "CCNode" }},
		{"batch timeout", "BatchTimeout", func(c *Config) { c.BatchTimeout = time.Hour }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			c.Regions = slices.Clone(ok.Regions)
			tt.edit(&c)
			err := c.Validate()
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("Validate() = %v, want ErrConfig", err)
			}
			if !strings.HasPrefix(err.Error(), tt.field+":") {
				t.Errorf("error %q does not name %s first", err, tt.field)
			}
		})
	}
}

// The policies that need a majority count the regions only: the auditor's
// organisation is on the channel and never in the rule.
func TestRegionsRule(t *testing.T) {
	for _, tt := range []struct {
		regions int
		want    string
	}{
		{1, "OutOf(1, 'SZMSP.peer')"},
		{2, "OutOf(2, 'SZMSP.peer', 'GZMSP.peer')"},
		{3, "OutOf(2, 'SZMSP.peer', 'GZMSP.peer', 'ZHMSP.peer')"},
		{4, "OutOf(3, 'SZMSP.peer', 'GZMSP.peer', 'ZHMSP.peer', 'FSMSP.peer')"},
	} {
		p := &plan{Auditor: auditorPlan{MSPID: AuditorMSP}}
		for _, r := range KnownRegions()[:tt.regions] {
			p.Regions = append(p.Regions, regionPlan{Region: r})
		}
		if got := p.RegionsRule("peer"); got != tt.want {
			t.Errorf("%d regions: %s, want %s", tt.regions, got, tt.want)
		}
		b, err := render(configtxTmpl, p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "Endorsement: {Type: Signature, Rule: \""+tt.want+"\"}") ||
			!strings.Contains(string(b), "        - *"+AuditorMSP+"\n") || strings.Contains(string(b), "ImplicitMeta, Rule: \"MAJORITY Endorsement") {
			t.Errorf("%d regions: configtx.yaml lacks the auditor or the explicit majority:\n%s", tt.regions, b)
		}
	}
}

func TestParseRegions(t *testing.T) {
	tests := []struct {
		in   string
		want []string // MSP ids
		err  bool
	}{
		{in: "shenzhen,guangzhou,zhuhai", want: []string{"SZMSP", "GZMSP", "ZHMSP"}},
		{in: "440300, Foshan", want: []string{"SZMSP", "FSMSP"}},
		{in: "shenzhen,999999:lhasa:LSMSP", want: []string{"SZMSP", "LSMSP"}},
		{in: "atlantis", err: true},
		{in: "1:2", err: true},
		{in: " , ", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			rs, err := ParseRegions(tt.in)
			if tt.err {
				if !errors.Is(err, ErrConfig) {
					t.Fatalf("ParseRegions(%q) = %v, %v; want ErrConfig", tt.in, rs, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rs {
				got = append(got, r.MSPID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// The Go code and build-binaries.sh must build the same pin.
func TestToolsModulePin(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("tools", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nrequire github.com/hyperledger/fabric "+FabricVersion+"\n") {
		t.Errorf("tools/go.mod does not require github.com/hyperledger/fabric %s on a line of its own", FabricVersion)
	}
	src, err := os.ReadFile(filepath.Join("tools", "tools.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, bin := range Binaries {
		imp := `"github.com/hyperledger/fabric/cmd/` + bin + `"`
		if !strings.Contains(string(src), imp) || !strings.Contains(toolsGo, imp) {
			t.Errorf("%s missing from tools/tools.go or toolsGo", imp)
		}
	}
}

func TestEditCoreYAML(t *testing.T) {
	sample, err := BinDir(DefaultBinDir()).SampleConfig(context.Background())
	if err != nil {
		t.Skipf("no Fabric sample config here (%v)", err)
	}
	in, err := os.ReadFile(filepath.Join(sample, "core.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := editCoreYAML(in, "/opt/builder")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		VM struct {
			Endpoint *string `yaml:"endpoint"`
		} `yaml:"vm"`
		Chaincode struct {
			ExternalBuilders []map[string]any `yaml:"externalBuilders"`
		} `yaml:"chaincode"`
		Peer struct {
			ID string `yaml:"id"`
		} `yaml:"peer"`
	}
	if err := yaml.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if got.VM.Endpoint == nil || *got.VM.Endpoint != "" {
		t.Errorf("vm.endpoint = %v, want empty", got.VM.Endpoint)
	}
	if len(got.Chaincode.ExternalBuilders) != 1 || got.Chaincode.ExternalBuilders[0]["path"] != "/opt/builder" {
		t.Errorf("externalBuilders = %v", got.Chaincode.ExternalBuilders)
	}
	if got.Peer.ID == "" {
		t.Error("the rest of core.yaml was lost: peer.id is empty")
	}
}

func TestCCaaSPackage(t *testing.T) {
	conn := connection{Address: "127.0.0.1:7052", DialTimeout: "10s"}
	a, err := ccaasPackage("ccnode_1", conn)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ccaasPackage("ccnode_1", conn)
	if !bytes.Equal(a, b) {
		t.Error("the same inputs gave two packages (the package id would change)")
	}
	outer := untar(t, a)
	if got := string(outer["metadata.json"]); got != `{"label":"ccnode_1","type":"ccaas"}` {
		t.Errorf("metadata.json = %s", got)
	}
	inner := untar(t, outer["code.tar.gz"])
	if got := string(inner["connection.json"]); !strings.Contains(got, `"address":"127.0.0.1:7052"`) {
		t.Errorf("connection.json = %s", got)
	}
}

func untar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name], _ = io.ReadAll(tr)
	}
}

// Down stops exactly the recorded processes, by process group, escalating
// to SIGKILL for one that ignores SIGTERM, and leaves others alone.
func TestDownStopsRecordedProcesses(t *testing.T) {
	dir := t.TempDir()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	var ex exited
	// A child that forks a grandchild: the group signal must reach both.
	if _, err := launch(dir, "polite", sh, []string{"-c", "sleep 300 & wait"}, nil, true, &ex); err != nil {
		t.Fatal(err)
	}
	if _, err := launch(dir, "stubborn", sh, []string{"-c", `trap "" TERM; sleep 300 & wait; sleep 300`}, nil, true, &ex); err != nil {
		t.Fatal(err)
	}
	// A bystander running the same program, not recorded: must survive.
	bystander := exec.Command(sh, "-c", "sleep 300")
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bystander.Process.Kill(); bystander.Wait() })

	ps, err := Status(dir)
	if err != nil || len(ps) != 2 || !ps[0].Alive || !ps[1].Alive {
		t.Fatalf("Status = %+v, %v; want two running", ps, err)
	}
	start := time.Now()
	if err := down(dir, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	t.Logf("down took %s", time.Since(start))
	for _, p := range ps {
		if p.alive() {
			t.Errorf("%s (pid %d) still runs", p.Name, p.Pid)
		}
		// The grandchildren went with their group.
		if groupHasMembers(p.Pid) {
			t.Errorf("process group %d of %s still has members", p.Pid, p.Name)
		}
	}
	if bystander.ProcessState != nil {
		t.Error("the bystander was stopped")
	}
	after, err := Status(dir)
	if err != nil || len(after) != 2 || after[0].Alive || after[1].Alive {
		t.Errorf("Status after Down = %+v, %v; want both recorded, neither running", after, err)
	}
	// Down again: nothing to do.
	if err := Down(dir); err != nil {
		t.Errorf("second Down: %v", err)
	}
}

// A pid recorded in the file but now used by another program (or never
// ours) is not signalled: the start time differs.
func TestDownIgnoresRecycledPid(t *testing.T) {
	dir := t.TempDir()
	other := exec.Command("sleep", "300")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	st, err := startTime(other.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	line := "ghost " + strconv.Itoa(other.Process.Pid) + " " + strconv.FormatUint(st+1, 10) + " /bin/sleep\n"
	if err := os.WriteFile(filepath.Join(dir, pidsFile), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := down(dir, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the process with the recycled pid was stopped: %v", err)
	}
}

func TestPrepareDirRefusesForeignFolder(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := prepareDir(dir); !errors.Is(err, ErrNotNetworkDir) {
		t.Fatalf("prepareDir = %v, want ErrNotNetworkDir", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "precious.txt")); err != nil {
		t.Fatal("the foreign file was removed")
	}
}

// listening tells our process's port from another's.
func TestListening(t *testing.T) {
	held, ports, err := reservePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	defer held.releaseAll()
	ok, err := listening(os.Getpid(), ports)
	if !ok || err != nil {
		t.Errorf("listening(self) = %v, %v; want true", ok, err)
	}
	held.release(ports[1])
	if ok, err := listening(os.Getpid(), ports); ok || err != nil {
		t.Errorf("with one port let go: %v, %v; want false, nil", ok, err)
	}
	other := exec.Command("sleep", "300")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	if _, err := listening(other.Process.Pid, ports[:1]); !errors.Is(err, ErrPortTaken) {
		t.Errorf("another process on the port: %v, want ErrPortTaken", err)
	}
}

// With StopWithParent, a process outlives neither a crash nor a plain exit
// of the program that started it. The parent here is this test binary
// re-run as a helper that launches a process and exits without Down.
func TestStopWithParent(t *testing.T) {
	if dir := os.Getenv("FABRICNET_TEST_HELPER_DIR"); dir != "" {
		// Pdeathsig reaches the process itself, not what it forks; Fabric's
		// processes fork nothing.
		if _, err := launch(dir, "orphan", "/bin/sh", []string{"-c", "exec sleep 300"}, nil, true, nil); err != nil {
			os.Exit(2)
		}
		os.Exit(0) // no Down: the kernel must stop it
	}
	dir := t.TempDir()
	helper := exec.Command(os.Args[0], "-test.run=^TestStopWithParent$")
	helper.Env = append(os.Environ(), "FABRICNET_TEST_HELPER_DIR="+dir)
	if out, err := helper.CombinedOutput(); err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	ps, err := Status(dir)
	if err != nil || len(ps) != 1 {
		t.Fatalf("Status = %+v, %v", ps, err)
	}
	err = testkit.Poll(10*time.Second, func() error {
		if ps[0].running() {
			return fmt.Errorf("pid %d still running", ps[0].Pid)
		}
		return nil
	})
	if err != nil {
		t.Errorf("the process outlived its parent: %v", err)
		down(dir, 0)
	}
}
