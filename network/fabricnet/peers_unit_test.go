package fabricnet

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// Further peers get their own crypto (peer1...), ports, process names and
// connection-file endpoints; peer 0 keeps its old name.
func TestPeersPerRegionPlan(t *testing.T) {
	r := regionPlan{Region: KnownRegions()[0], Domain: KnownRegions()[0].domain(), PeerPort: 7051, CCPort: 7052, OpsPort: 9443,
		Extra: []peerPlan{{Index: 1, PeerPort: 8051, CCPort: 8052, OpsPort: 9444}}}
	p := &plan{Regions: []regionPlan{r}, Auditor: auditorPlan{MSPID: AuditorMSP, Domain: "auditor.ccnode.local"}, Crypto: "/c",
		cfg: Config{ClientTLS: true}, dir: "/n"}
	b, err := render(cryptoConfigTmpl, p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "- Hostname: peer0") || !strings.Contains(string(b), "- Hostname: peer1") {
		t.Fatalf("crypto-config.yaml lacks peer1:\n%s", b)
	}
	if got := []string{r.processName(r.peers()[0]), r.processName(r.peers()[1])}; !slices.Equal(got, []string{"peer-shenzhen", "peer-shenzhen-1"}) {
		t.Fatalf("process names %v", got)
	}
	if got := r.extraEndpoints(); !slices.Equal(got, []string{"127.0.0.1:8051"}) {
		t.Fatalf("extra endpoints %v", got)
	}
	env := strings.Join(p.peerEnv(r, r.Extra[0]), "\n")
	for _, want := range []string{"CORE_PEER_ID=peer1.shenzhen.ccnode.local", "CORE_PEER_ADDRESS=127.0.0.1:8051",
		"CORE_PEER_GOSSIP_BOOTSTRAP=127.0.0.1:7051", "CORE_PEER_TLS_CLIENTAUTHREQUIRED=true", "tlsca.auditor.ccnode.local-cert.pem"} {
		if !strings.Contains(env, want) {
			t.Errorf("peer1's environment lacks %s:\n%s", want, env)
		}
	}
	if cert, _ := p.clientTLS(r.Domain); !strings.HasSuffix(cert, "User1@shenzhen.ccnode.local/tls/client.crt") {
		t.Errorf("client TLS cert %s", cert)
	}
	p.cfg.ClientTLS = false
	if cert, key := p.clientTLS(r.Domain); cert != "" || key != "" {
		t.Error("client TLS pair named without ClientTLS")
	}
	if strings.Contains(strings.Join(p.peerEnv(r, r.peers()[0]), "\n"), "CLIENTAUTHREQUIRED") {
		t.Error("client auth required without ClientTLS")
	}
}

func TestValidatePeersPerRegion(t *testing.T) {
	for _, n := range []int{-1, 5} {
		c := Config{Dir: "x", PeersPerRegion: n}.WithDefaults()
		if err := c.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "PeersPerRegion") {
			t.Errorf("PeersPerRegion %d: %v", n, err)
		}
	}
	if err := (Config{Dir: "x", PeersPerRegion: 2}).WithDefaults().Validate(); err != nil {
		t.Errorf("PeersPerRegion 2: %v", err)
	}
}

// querycommitted's JSON comes after the CLI's log lines in its combined
// output.
func TestParseSequence(t *testing.T) {
	out := []byte("2026-12-06 INFO [grpc] original dial target is: \"127.0.0.1:1\" {\n  \"x\": 1\n}\n{\n\t\"sequence\": 3,\n\t\"version\": \"3.0\"\n}\n")
	if seq, err := parseSequence(out); err != nil || seq != 3 {
		t.Fatalf("parseSequence = %d, %v", seq, err)
	}
	if _, err := parseSequence([]byte("Error: query failed")); err == nil {
		t.Fatal("no error for output without a definition")
	}
}
