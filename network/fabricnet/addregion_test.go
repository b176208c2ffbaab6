package fabricnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/prdcredit/ccnode/credit"
)

// Three regions, then Dongguan joins through a channel configuration
// update: its gateway submits and evaluates, the channel's policies read
// back from the orderer are the majority of four, and the other regions'
// gateways still commit under the new Endorsement policy.
func TestAddRegion(t *testing.T) {
	SkipUnlessFabric(t)
	RequireBinaries(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	n, err := Up(ctx, testConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Down(dir); err != nil {
			t.Error(err)
		}
	})
	t.Logf("up in %s", time.Since(start).Round(time.Millisecond))

	before, err := n.ChannelPolicies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantPolicies(t, "before", before, 2, "SZMSP", "GZMSP", "ZHMSP")

	server := filepath.Join(dir, "bin", "ccserver") // the chaincode server Up built
	dongguan := Region{ID: "441900", Name: "dongguan", MSPID: "DGMSP"}
	if rs, err := ParseRegions("441900"); err != nil || !reflect.DeepEqual(rs, []Region{dongguan}) {
		t.Fatalf("ParseRegions(441900) = %v, %v; want Dongguan as DGMSP", rs, err)
	}
	if _, err := AddRegion(ctx, dir, n.Regions[1], AddRegionConfig{Server: server}); !errors.Is(err, ErrRegionExists) {
		t.Errorf("adding Guangzhou again: %v, want ErrRegionExists", err)
	}
	if _, err := AddRegion(ctx, dir, Region{ID: "441900", Name: "dongguan", MSPID: "ZHMSP"}, AddRegionConfig{Server: server}); !errors.Is(err, ErrRegionExists) {
		t.Errorf("a region with Zhuhai's MSP id: %v, want ErrRegionExists", err)
	}

	start = time.Now()
	n, err = AddRegion(ctx, dir, dongguan, AddRegionConfig{Server: server, StopWithParent: true, Logger: testConfig(t, dir).Logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("region added in %s", time.Since(start).Round(time.Millisecond))

	after, err := n.ChannelPolicies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantPolicies(t, "after", after, 3, "SZMSP", "GZMSP", "ZHMSP", "DGMSP")

	g, err := n.Gateway(dongguan.ID)
	if err != nil {
		t.Fatal(err)
	}
	// AddRegion returned after a submit through Dongguan committed; an
	// evaluate runs on Dongguan's own peer and chaincode server.
	if err := g.ProbeEvaluate(ctx); err != nil {
		t.Errorf("evaluate through Dongguan: %v", err)
	}
	// 3 of 4 must now endorse; the first regions' gateways find them.
	if err := n.Gateways[n.Regions[0].ID].ProbeSubmit(ctx); err != nil {
		t.Errorf("submit through Shenzhen under the new policy: %v", err)
	}
	out, err := n.PeerCLI(ctx, dongguan.ID, "lifecycle", "chaincode", "querycommitted", "-C", n.Channel, "-n", n.Chaincode)
	if err != nil || !strings.Contains(string(out), "DGMSP: true") {
		t.Errorf("Dongguan has not approved the committed definition: %s %v", out, err)
	}

	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded.Regions) != 4 || loaded.Regions[3] != dongguan || !reflect.DeepEqual(loaded.Gateways[dongguan.ID], g) {
		t.Errorf("network.json: regions %v, Dongguan's gateway %+v", loaded.Regions, loaded.Gateways[dongguan.ID])
	}
	file := filepath.Join(ConnectionDir(dir), "441900.yaml")
	if len(loaded.GatewayFiles) != 4 || loaded.GatewayFiles[3] != file {
		t.Errorf("connection files %v, want %s last", loaded.GatewayFiles, file)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var fromFile Gateway
	if err := yaml.Unmarshal(b, &fromFile); err != nil || !reflect.DeepEqual(fromFile, g) {
		t.Errorf("%s = %+v (%v), want %+v", file, fromFile, err, g)
	}
	if _, err := AddRegion(ctx, dir, dongguan, AddRegionConfig{Server: server}); !errors.Is(err, ErrRegionExists) {
		t.Errorf("adding Dongguan twice: %v, want ErrRegionExists", err)
	}

	// With Zhuhai's peer gone only Shenzhen, Guangzhou and Dongguan can
	// endorse: a commit now needs Dongguan's endorsement to count.
	if err := n.Kill(PeerProcess("zhuhai", 0)); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	sctx, scancel := context.WithTimeout(ctx, time.Minute)
	defer scancel()
	if err := WaitReady(sctx, g.ProbeSubmit); err != nil {
		t.Errorf("without Zhuhai's peer, a submit through Dongguan never committed: %v", err)
	}
	t.Logf("committed with Shenzhen, Guangzhou and Dongguan endorsing after %s", time.Since(start).Round(time.Millisecond))

	if err := Down(dir); err != nil {
		t.Fatal(err)
	}
	foshan := KnownRegions()[3]
	if _, err := AddRegion(ctx, dir, foshan, AddRegionConfig{Server: server}); !errors.Is(err, ErrNotRunning) {
		t.Errorf("adding Foshan to a stopped network: %v, want ErrNotRunning", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "crypto", "peerOrganizations", foshan.Name+".ccnode.local")); err == nil {
		t.Error("a refused add-region generated crypto material")
	}
}

// wantPolicies: Admins is OutOf(k) of the regions' admins, both
// endorsement policies OutOf(k) of their peers.
func wantPolicies(t *testing.T, when string, got []Policy, k int, msps ...string) {
	t.Helper()
	rule := func(role string) string {
		s := fmt.Sprintf("OutOf(%d", k)
		for _, m := range msps {
			s += fmt.Sprintf(", '%s.%s'", m, role)
		}
		return s + ")"
	}
	want := []Policy{{"Admins", rule("admin")}, {"LifecycleEndorsement", rule("peer")}, {"Endorsement", rule("peer")}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: channel policies\n%v\nwant\n%v", when, got, want)
	}
	t.Logf("%s: %v", when, got)
}

// AddRegion refuses, before touching anything, a region that clashes with
// the network's, a missing chaincode server and a network that is not
// running; each error says which.
func TestAddRegionRefuses(t *testing.T) {
	dir := t.TempDir()
	n := &Network{Dir: dir, Channel: DefaultChannel, Chaincode: DefaultChaincode, Regions: DefaultRegions(),
		Orderer: OrdererNode{Endpoint: "127.0.0.1:7050"}, Peers: map[credit.RegionID]Peer{}}
	for i, r := range n.Regions {
		n.Peers[r.ID] = Peer{Endpoint: fmt.Sprintf("127.0.0.1:%d", 7051+i)}
	}
	if err := n.save(); err != nil {
		t.Fatal(err)
	}
	dongguan := KnownRegions()[7]
	for _, tt := range []struct {
		name   string
		r      Region
		server string
		want   error
		says   string
	}{
		{"existing id", Region{ID: "440100", Name: "dongguan", MSPID: "DGMSP"}, "ccserver", ErrRegionExists, "440100 (guangzhou, GZMSP)"},
		{"existing msp", Region{ID: "441900", Name: "dongguan", MSPID: "SZMSP"}, "ccserver", ErrRegionExists, "440300 (shenzhen, SZMSP)"},
		{"bad name", Region{ID: "441900", Name: "Dong Guan", MSPID: "DGMSP"}, "ccserver", ErrConfig, "Regions[3].Name"},
		{"no server", dongguan, "", ErrConfig, "no chaincode server"},
		{"not running", dongguan, "ccserver", ErrNotRunning, "no orderer recorded in " + dir},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := AddRegion(context.Background(), dir, tt.r, AddRegionConfig{Server: tt.server})
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("AddRegion = %v, want %v saying %q", err, tt.want, tt.says)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "add-region")); err == nil {
		t.Error("a refused AddRegion left files behind")
	}
	if _, err := AddRegion(context.Background(), filepath.Join(dir, "none"), dongguan, AddRegionConfig{Server: "x"}); err == nil ||
		!strings.Contains(err.Error(), "no network in") {
		t.Errorf("AddRegion on an empty folder: %v", err)
	}
}

// formatPolicy writes configtxlator's JSON of the channel's policies in
// configtx.yaml's notation, which the operator and the test compare.
func TestFormatPolicy(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`{"type": 1, "value": {"identities": [
			{"principal": {"msp_identifier": "SZMSP", "role": "PEER"}, "principal_classification": "ROLE"},
			{"principal": {"msp_identifier": "GZMSP", "role": "PEER"}, "principal_classification": "ROLE"},
			{"principal": {"msp_identifier": "DGMSP", "role": "PEER"}, "principal_classification": "ROLE"}],
			"rule": {"n_out_of": {"n": 2, "rules": [{"signed_by": 0}, {"signed_by": 1}, {"signed_by": 2}]}}, "version": 0}}`,
			"OutOf(2, 'SZMSP.peer', 'GZMSP.peer', 'DGMSP.peer')"},
		// protobuf's JSON may leave out zeros: signed_by 0.
		{`{"type": 1, "value": {"identities": [{"principal": {"msp_identifier": "SZMSP", "role": "ADMIN"}}],
			"rule": {"n_out_of": {"n": 1, "rules": [{}]}}}}`, "OutOf(1, 'SZMSP.admin')"},
		{`{"type": 3, "value": {"rule": "MAJORITY", "sub_policy": "Admins"}}`, "MAJORITY Admins"},
	} {
		pol, err := decodeJSON([]byte(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := formatPolicy(pol); err != nil || got != tt.want {
			t.Errorf("formatPolicy(%s) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{
		`{"type": 1, "value": {"identities": [], "rule": {"signed_by": 0}}}`,
		`{"type": 2, "value": {}}`,
		`{"type": 1}`,
	} {
		pol, _ := decodeJSON([]byte(bad))
		if _, err := formatPolicy(pol); !errors.Is(err, ErrChannelConfig) {
			t.Errorf("formatPolicy(%s) = %v, want ErrChannelConfig", bad, err)
		}
	}
}
