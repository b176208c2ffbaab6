//go:build linux

package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/network/fabric"
	"github.com/prdcredit/ccnode/network/fabricnet"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/faults"
)

// TestFabricGatewayFailoverMutualTLS: a local Fabric network whose regions
// run two peers each and whose peers require client TLS (`ccnode fabric up
// --peers-per-region 2 --client-tls`, through its environment variables).
// Three nodes run on the connection files it wrote, which name both peers
// of the region and the client TLS pair. With bank queries answered and
// receipts anchored, the process of Shenzhen's first peer (the gateway its
// node uses) is killed by the pid fabricnet recorded: every later query
// still succeeds, and Shenzhen's node anchors its new receipts through its
// second peer. A client without the TLS certificate is refused by the
// peers. Before the kill, `ccnode fabric upgrade` moves the contract to
// sequence 2 while queries run, and none fails.
func TestFabricGatewayFailoverMutualTLS(t *testing.T) {
	fabricnet.SkipUnlessFabric(t)
	steps := newSteps(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	t.Setenv("CCNODE_FABRIC_PEERS_PER_REGION", "2")
	t.Setenv("CCNODE_FABRIC_CLIENT_TLS", "true")

	bin := faults.Bin(testkit.CCNode(t))
	mustCLI := func(args ...string) string { t.Helper(); return bin.Must(t, args...) }
	root := t.TempDir()
	steps.begin()
	fab := faults.StartFabric(t, bin, filepath.Join(root, "fabric"))
	steps.done("fabric up (2 peers/region, mTLS)")

	const szID = credit.RegionID("440300")
	_, szGateway := fab.Member(t, szID)
	gw, err := fabric.LoadConfig(szGateway)
	if err != nil {
		t.Fatal(err)
	}
	if eps := gw.AllEndpoints(); len(eps) != 2 || gw.TLSClientCertPath == "" {
		t.Fatalf("Shenzhen's connection file: endpoints %v, client cert %q; want two peers and a client cert", eps, gw.TLSClientCertPath)
	}
	extra := fab.Net.ExtraPeers[szID]
	if len(extra) != 1 || extra[0].Endpoint != gw.AllEndpoints()[1] {
		t.Fatalf("network.json extra peers of Shenzhen: %+v", extra)
	}

	// The peers require client TLS: without the certificate the handshake
	// is refused; with it the same identity reads.
	noCert := gw
	noCert.TLSClientCertPath, noCert.TLSClientKeyPath, noCert.MaxAttempts = "", "", 1
	refused, err := fabric.Dial(ctx, noCert, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := refused.Regions(ctx); !errors.Is(err, network.ErrUnavailable) {
		t.Fatalf("read without a client TLS certificate: %v, want refused (ErrUnavailable)", err)
	}
	refused.Close()
	led, err := fabric.Dial(ctx, gw, testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	if _, err := led.Regions(ctx); err != nil {
		t.Fatalf("read with the client TLS certificate: %v", err)
	}

	// Three nodes, a bank at Shenzhen, a consent, as in TestFabricE2E.
	steps.begin()
	ids := []credit.RegionID{szID, "440100", "440400"}
	nodes, subject := fab.NodesWithRecords(t, root, "FO", func(c *node.Config) { c.Anchor.Interval = 500 * time.Millisecond }, ids...)
	for _, n := range nodes {
		n.Start(t)
	}
	for _, n := range nodes {
		n.WaitReady(t, time.Minute)
	}
	sz := nodes[0]
	steps.done("three nodes ready")

	steps.begin()
	_, bankKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	bankKeyFile := filepath.Join(root, "bank.key")
	if err := node.WriteKeyFile(bankKeyFile, bankKey); err != nil {
		t.Fatal(err)
	}
	if err := sz.Client().RegisterBank(ctx, credit.BankMember{ID: "bank-fo", Name: "Failover Bank", PubKey: bankKey.Public().(ed25519.PublicKey)}); err != nil {
		t.Fatalf("register bank at Shenzhen: %v", err)
	}
	caDir, entDir := filepath.Join(root, "authority"), filepath.Join(root, "enterprise")
	token := filepath.Join(sz.Dir, "operator.token")
	mustCLI("authority", "create", "--name", "Shenzhen FO Authority", "--out", caDir)
	mustCLI("authority", "issue", "--authority", caDir, "--uscc", string(subject), "--name", "FO Enterprise", "--out", entDir)
	mustCLI("authority", "register", "--admin", sz.AdminURL(), "--operator-token-file", token, "--authority", caDir)
	consentFile := filepath.Join(root, "consent.json")
	mustCLI("consent", "grant", "--admin", sz.AdminURL(), "--operator-token-file", token,
		"--enterprise-key", filepath.Join(entDir, "enterprise.key"), "--enterprise-cert", filepath.Join(entDir, "enterprise.pem"),
		"--uscc", string(subject), "--bank", "bank-fo",
		"--region", string(szID), "--categories", "registration,tax,judicial", "--out", consentFile)
	var grant credit.ConsentGrant
	if b, err := os.ReadFile(consentFile); err != nil || json.Unmarshal(b, &grant) != nil {
		t.Fatalf("consent %s: %v %s", consentFile, err, b)
	}
	for _, n := range nodes {
		faults.WaitFor(t, time.Minute, "consent active at "+string(n.Region), func() (bool, string) {
			res, err := n.Client().ConsentStatus(ctx, grant.ID)
			if err != nil {
				return false, err.Error()
			}
			return res.Status == credit.ConsentActive, string(res.Status)
		})
	}
	steps.done("bank and consent on Fabric")

	// query runs one consolidated query at Shenzhen; ok when every region
	// answered with a receipt.
	query := func() (bool, string) {
		r := bin.Run(t, "query", "--node", sz.URL(), "--ca-file", sz.CAFile, "--bank", "bank-fo", "--key", bankKeyFile, "--consent", consentFile, "--json")
		if r.Code != 0 {
			return false, fmt.Sprintf("exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
		}
		var res node.Consolidated
		if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
			return false, err.Error()
		}
		if len(res.Regions) != len(nodes) {
			return false, r.Stdout
		}
		for _, st := range res.Regions {
			if st.Status != node.StatusOK || st.Receipt == nil {
				return false, fmt.Sprintf("region %s: %s %s %s", st.Region, st.Status, st.Reason, st.Message)
			}
		}
		return true, ""
	}
	steps.begin()
	faults.WaitFor(t, time.Minute, "every region answers", query)
	sz.WaitAnchored(t, time.Minute)
	before, err := led.LatestCheckpoint(ctx, szID)
	if err != nil {
		t.Fatal(err)
	}
	steps.done("queries answered and anchored")

	// Contract upgrade while queries run: `ccnode fabric upgrade` installs
	// a new package per region, every region approves sequence 2 and the
	// commit is endorsed by a majority. No query fails meanwhile, and
	// Shenzhen anchors on the new definition.
	steps.begin()
	var (
		mu       sync.Mutex
		answered int
		failures []string
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			ok, why := query()
			mu.Lock()
			answered++
			if !ok {
				failures = append(failures, why)
			}
			mu.Unlock()
		}
	}()
	out := mustCLI("fabric", "upgrade", "--dir", fab.Dir)
	close(stop)
	<-done
	if len(failures) > 0 {
		t.Fatalf("%d of %d queries failed during the upgrade; first: %s", len(failures), answered, failures[0])
	}
	if answered == 0 {
		t.Fatal("no query ran during the upgrade")
	}
	seq, err := fab.Net.Sequence(ctx)
	if err != nil || seq != 2 {
		t.Fatalf("committed sequence after upgrade: %d, %v; want 2\n%s", seq, err, out)
	}
	if ok, why := query(); !ok {
		t.Fatalf("query after the upgrade: %s", why)
	}
	sz.WaitAnchored(t, time.Minute)
	upgraded, err := led.LatestCheckpoint(ctx, szID)
	if err != nil {
		t.Fatal(err)
	}
	if upgraded.Size <= before.Size {
		t.Fatalf("no anchoring on the upgraded contract: checkpoint size %d, before %d", upgraded.Size, before.Size)
	}
	before = upgraded
	steps.done(fmt.Sprintf("upgrade with %d queries running", answered))

	// Kill Shenzhen's first peer, the gateway its node uses.
	steps.begin()
	if err := fab.Net.Kill(fabricnet.PeerProcess("shenzhen", 0)); err != nil {
		t.Fatal(err)
	}
	steps.done("peer-shenzhen killed")

	steps.begin()
	for i := range 5 {
		if ok, why := query(); !ok {
			t.Fatalf("query %d after Shenzhen's first peer died: %s\nShenzhen's node log:\n%s", i, why, tailLines(sz.Logs(), 30))
		}
	}
	steps.done("5 queries after the kill")
	steps.begin()
	sz.WaitAnchored(t, 2*time.Minute)
	after, err := led.LatestCheckpoint(ctx, szID)
	if err != nil {
		t.Fatalf("reading Shenzhen's checkpoint through the surviving peer: %v", err)
	}
	if after.Size <= before.Size {
		t.Fatalf("Shenzhen's anchored checkpoint stayed at size %d (before the kill %d)", after.Size, before.Size)
	}
	steps.done("anchored through the second peer")
	second := gw.AllEndpoints()[1]
	if logs := sz.Logs(); !strings.Contains(logs, "fabric gateway endpoint changed") || !strings.Contains(logs, second) {
		t.Errorf("Shenzhen's node log does not say it moved to %s:\n%s", second, tailLines(logs, 30))
	}
}
