//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network/fabric"
	"github.com/prdcredit/ccnode/network/fabricnet"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/audit"
	"github.com/prdcredit/ccnode/node/faults"
	"github.com/prdcredit/ccnode/store/receipts"
)

// TestFabricE2E runs the node scenario against a real local Fabric network:
// `ccnode fabric up`, three `ccnode run` processes (Shenzhen, Guangzhou,
// Zhuhai) on the connection files and node keys it wrote, a bank
// registered at Shenzhen, a consent granted, a consolidated query every
// region answers with a verified receipt, the consent revoked and the next
// query refused for that reason, every receipt anchored on Fabric, then
// `ccnode receipts export` and `ccnode audit` against Fabric: no finding.
//
// It skips under -short or with CCNODE_SKIP_FABRIC=1. The first run builds
// Fabric's binaries (minutes); afterwards the whole test takes about a
// minute, most of it `fabric up`.
func TestFabricE2E(t *testing.T) {
	fabricnet.SkipUnlessFabric(t)
	steps := newSteps(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()

	steps.begin()
	bin := faults.Bin(testkit.CCNode(t))
	steps.done("build ccnode")
	cli := func(args ...string) (string, string, int) {
		t.Helper()
		r := bin.Run(t, args...)
		return r.Stdout, r.Stderr, r.Code
	}
	mustCLI := func(args ...string) string {
		t.Helper()
		return bin.Must(t, args...)
	}

	// The network: `ccnode fabric up`, and `ccnode fabric down` (exactly
	// the pids up recorded) when the test ends, with the Fabric logs'
	// tails if it failed.
	root := t.TempDir()
	steps.begin()
	fab := faults.StartFabric(t, bin, filepath.Join(root, "fabric"))
	steps.done("fabric up")
	fdir := fab.Dir

	type region struct {
		id      credit.RegionID
		gateway string
		*faults.Node
	}
	want := []credit.RegionID{"440300", "440100", "440400"} // Shenzhen, Guangzhou, Zhuhai
	var regions []*region
	for _, id := range want {
		_, gw := fab.Member(t, id)
		if _, err := os.Stat(fab.KeyFile(id)); err != nil {
			t.Fatalf("fabric up wrote no node key for %s: %v", id, err)
		}
		regions = append(regions, &region{id: id, gateway: gw})
	}
	sz := regions[0]

	// Per region: config on Fabric with the key whose peer id the
	// bootstrapped membership names, HTTP and libp2p on free ports, and
	// a small synthetic data set.
	steps.begin()
	var subject credit.USCC
	for _, r := range regions {
		r.Node = fab.Node(t, r.id, filepath.Join(root, "nodes", string(r.id)), func(c *node.Config) {
			c.Anchor.Interval = 500 * time.Millisecond
		})
		feed := filepath.Join(r.Dir, "feed.jsonl")
		mustCLI("gen", "--region", string(r.id), "--enterprises", "3", "--seed", "7", "--quiet", "-o", feed)
		if r == sz {
			subject = faults.FirstSubject(t, feed)
		} else {
			// The other regions hold a court record on the Shenzhen
			// subject, so the consolidated report has data from each.
			faults.AppendCourtRecord(t, feed, subject, r.id, "E2E")
		}
		mustCLI("import", "--data-dir", r.Dir, feed)
	}
	steps.done("configs, gen and import")

	// Start the three nodes; each prints its bank API address first.
	steps.begin()
	for _, r := range regions {
		r.Start(t)
	}
	for _, r := range regions {
		r.WaitReady(t, time.Minute)
	}
	steps.done("three nodes ready")

	// A bank at Shenzhen, and a consent its enterprise grants it.
	steps.begin()
	_, bankKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	bankKeyFile := filepath.Join(root, "bank-e2e.key")
	if err := node.WriteKeyFile(bankKeyFile, bankKey); err != nil {
		t.Fatal(err)
	}
	if err := sz.Client().RegisterBank(ctx, credit.BankMember{ID: "bank-e2e", Name: "E2E Bank", PubKey: bankKey.Public().(ed25519.PublicKey)}); err != nil {
		t.Fatalf("register bank at Shenzhen: %v", err)
	}
	steps.done("bank registered")
	steps.begin()
	// Shenzhen registers a development identity authority on Fabric; it
	// certifies the enterprise's key, which signs the consent.
	caDir, entDir := filepath.Join(root, "authority"), filepath.Join(root, "enterprise")
	mustCLI("authority", "create", "--name", "Shenzhen E2E Authority", "--out", caDir)
	mustCLI("authority", "issue", "--authority", caDir, "--uscc", string(subject), "--name", "E2E Enterprise", "--out", entDir)
	mustCLI("authority", "register", "--admin", sz.AdminURL(), "--operator-token-file", filepath.Join(sz.Dir, "operator.token"), "--authority", caDir)
	consentFile := filepath.Join(root, "consent.json")
	mustCLI("consent", "grant", "--admin", sz.AdminURL(), "--operator-token-file", filepath.Join(sz.Dir, "operator.token"),
		"--enterprise-key", filepath.Join(entDir, "enterprise.key"), "--enterprise-cert", filepath.Join(entDir, "enterprise.pem"),
		"--uscc", string(subject), "--bank", "bank-e2e",
		"--region", string(sz.id), "--categories", "registration,tax,judicial", "--out", consentFile)
	var grant credit.ConsentGrant
	if b, err := os.ReadFile(consentFile); err != nil || json.Unmarshal(b, &grant) != nil || len(grant.RegionSig) == 0 {
		t.Fatalf("countersigned consent %s: %v %s", consentFile, err, b)
	}
	steps.done("consent granted")
	// Every node learns the bank and the consent from Fabric's events.
	steps.begin()
	waitConsent := func(want credit.ConsentStatus) {
		t.Helper()
		for _, r := range regions {
			faults.WaitFor(t, time.Minute, fmt.Sprintf("consent %s at %s", want, r.id), func() (bool, string) {
				res, err := r.Client().ConsentStatus(ctx, grant.ID)
				if err != nil {
					return false, err.Error()
				}
				return res.Status == want, string(res.Status)
			})
		}
	}
	waitConsent(credit.ConsentActive)
	steps.done("consent seen by every node")

	// The consolidated query: every region answers with a receipt signed
	// by the key the membership on Fabric names, acknowledged by Shenzhen.
	// Only a region that has not applied the bank's registration event
	// yet (bank_unknown) is waited for; any other refusal or an
	// unreachable region fails at once.
	steps.begin()
	var res node.Consolidated
	issued := map[credit.RegionID]uint64{} // receipts each region issued, over attempts
	faults.WaitFor(t, 20*time.Second, "every region knows the bank", func() (bool, string) {
		out := mustCLI("query", "--node", sz.URL(), "--ca-file", sz.CAFile, "--bank", "bank-e2e", "--key", bankKeyFile, "--consent", consentFile, "--json")
		res = node.Consolidated{}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("query output: %v\n%s", err, out)
		}
		again := false
		for _, st := range res.Regions {
			if st.Receipt != nil {
				issued[st.Region]++
			}
			again = again || st.Reason == credit.CodeBankUnknown
		}
		return !again, out
	})
	steps.done("consolidated query")
	if len(res.Regions) != len(regions) {
		t.Fatalf("query answered by %d regions, want %d: %+v", len(res.Regions), len(regions), res.Regions)
	}
	answered := map[credit.RegionID]string{} // region -> receipt id
	for _, st := range res.Regions {
		if st.Status != node.StatusOK || st.Receipt == nil || st.Ack == nil || st.LeafIndex == nil {
			t.Fatalf("region %s: status %s %s %s (receipt %v, ack %v)", st.Region, st.Status, st.Reason, st.Message, st.Receipt != nil, st.Ack != nil)
		}
		key, err := node.LoadKeyFile(filepath.Join(fdir, "nodes", string(st.Region), "node.key"))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Receipt.Verify(key.Public().(ed25519.PublicKey)); err != nil {
			t.Fatalf("region %s's receipt does not verify under its node key: %v", st.Region, err)
		}
		if st.Receipt.Answerer != st.Region || st.Receipt.Requester != sz.id || st.Receipt.RecordCount != st.RecordCount {
			t.Fatalf("region %s's receipt names %s→%s, %d records (report %d)", st.Region, st.Receipt.Answerer, st.Receipt.Requester, st.Receipt.RecordCount, st.RecordCount)
		}
		if st.RecordCount == 0 {
			t.Fatalf("region %s answered no record on %s", st.Region, subject)
		}
		answered[st.Region] = st.Receipt.ID
	}
	for _, r := range regions {
		if answered[r.id] == "" {
			t.Fatalf("region %s did not answer: %+v", r.id, res.Regions)
		}
	}
	t.Logf("consolidated query: %d records from %d regions in %.1f ms at the node", res.RecordCount, len(res.Regions), res.Elapsed)

	// Revoke: once Shenzhen's view has the revocation, the same query is
	// refused for that reason.
	steps.begin()
	mustCLI("consent", "revoke", "--admin", sz.AdminURL(), "--operator-token-file", filepath.Join(sz.Dir, "operator.token"), "--id", grant.ID)
	faults.WaitFor(t, time.Minute, "query refused as revoked", func() (bool, string) {
		out, errOut, code := cli("query", "--node", sz.URL(), "--ca-file", sz.CAFile, "--bank", "bank-e2e", "--key", bankKeyFile, "--consent", consentFile, "--json")
		return code != 0 && strings.Contains(errOut, string(credit.CodeConsentRevoked)), fmt.Sprintf("exit %d: %s%s", code, out, errOut)
	})
	steps.done("revoked and refused")
	steps.begin()
	waitConsent(credit.ConsentRevoked)
	steps.done("revocation seen by every node")

	// Anchoring: each answering region's receipt gets an inclusion proof
	// under a checkpoint that is on Fabric and signed by the region.
	steps.begin()
	gw, err := fabric.LoadConfig(sz.gateway)
	if err != nil {
		t.Fatal(err)
	}
	led, err := fabric.Dial(ctx, gw, nil)
	if err != nil {
		t.Fatalf("dial Fabric as %s: %v", gw.MSPID, err)
	}
	defer led.Close()
	for _, r := range regions {
		var rp *node.ReceiptProof
		faults.WaitFor(t, time.Minute, "receipt of "+string(r.id)+" anchored", func() (bool, string) {
			var err error
			rp, err = r.Client().Receipt(ctx, "bank-e2e", bankKey, answered[r.id])
			if err != nil {
				return false, err.Error()
			}
			return rp.Checkpoint != nil, "no checkpoint covers it yet"
		})
		m, err := led.Region(ctx, r.id)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Addrs) == 0 {
			t.Errorf("region %s published no p2p address on Fabric", r.id)
		}
		if err := rp.Checkpoint.Verify(m.PubKey); err != nil {
			t.Fatalf("region %s's checkpoint: %v", r.id, err)
		}
		hist, err := led.CheckpointHistory(ctx, r.id)
		if err != nil {
			t.Fatal(err)
		}
		onLedger := false
		for _, h := range hist {
			onLedger = onLedger || (h.Size == rp.TreeSize && bytes.Equal(h.Root, rp.Root) && h.TxID == rp.Checkpoint.TxID)
		}
		if !onLedger {
			t.Fatalf("region %s: checkpoint size %d tx %s is not in its history on Fabric (%d entries)", r.id, rp.TreeSize, rp.Checkpoint.TxID, len(hist))
		}
		leaf, err := rp.Receipt.LeafBytes()
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(receipts.Hasher, rp.LeafIndex, rp.TreeSize, receipts.Hasher.HashLeaf(leaf), rp.Proof, rp.Root); err != nil {
			t.Fatalf("region %s: inclusion proof: %v", r.id, err)
		}
	}
	steps.done("receipts anchored on Fabric")

	// Stop the nodes (Badger allows one process), export, audit against
	// Fabric through a connection file.
	steps.begin()
	for _, r := range regions {
		r.Stop(t)
	}
	steps.done("nodes stopped")
	steps.begin()
	var exports []string
	for _, r := range regions {
		for _, kind := range []credit.ExportKind{credit.ExportAnswered, credit.ExportReceived} {
			p := filepath.Join(root, fmt.Sprintf("%s-%s.jsonl", r.id, kind))
			r.Export(t, kind, p)
			exports = append(exports, p)
		}
	}
	consents := filepath.Join(root, "consents.json")
	b, _ := json.Marshal([]credit.ConsentGrant{grant})
	if err := os.WriteFile(consents, b, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"audit", "--fabric-config", sz.gateway, "--consents", consents, "--json", "--no-progress"}, exports...)
	out, errOut, code := cli(args...)
	steps.done("export and audit")
	var rep audit.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("audit exit %d, output not a report: %v\n%s%s", code, err, out, errOut)
	}
	if code != 0 || rep.Total != 0 {
		t.Fatalf("audit exit %d, %d findings:\n%s%s", code, rep.Total, out, errOut)
	}
	var received uint64
	for _, n := range issued {
		received += n
	}
	if len(rep.Regions) != len(regions) || rep.Received != received {
		t.Fatalf("audit saw %d regions and %d received receipts, want %d and %d:\n%s", len(rep.Regions), rep.Received, len(regions), received, out)
	}
	for _, rs := range rep.Regions {
		if rs.Receipts != issued[rs.Region] || rs.Verified != rs.Receipts {
			t.Fatalf("audit of %s: %d receipts (%d issued), %d verified under anchored roots:\n%s", rs.Region, rs.Receipts, issued[rs.Region], rs.Verified, out)
		}
	}
	t.Logf("audit against Fabric: %d regions, %d received receipts cross-checked, no findings; total %.1fs", len(rep.Regions), rep.Received, time.Since(steps.start).Seconds())

	// The auditor's identity `fabric up` made (AuditorMSP, no peer): its
	// snapshot is the one a region takes, and the audit on it is clean.
	steps.begin()
	if st := mustCLI("fabric", "status", "--dir", fdir); !strings.Contains(st, fab.Net.AuditorFile) {
		t.Errorf("fabric status does not name the auditor's connection file %s:\n%s", fab.Net.AuditorFile, st)
	}
	snaps := map[string]string{"auditor": fab.Net.AuditorFile, "shenzhen": sz.gateway}
	decoded := map[string]map[string]any{}
	for who, conn := range snaps {
		p := filepath.Join(root, "snapshot-"+who+".json")
		mustCLI("audit", "snapshot", "--fabric-config", conn, "-o", p)
		var m map[string]any
		if b, err := os.ReadFile(p); err != nil || json.Unmarshal(b, &m) != nil {
			t.Fatalf("snapshot as %s: %v", who, err)
		}
		delete(m, "taken_at") // the only field that may differ
		decoded[who] = m
		snaps[who] = p
	}
	if a, s := mustJSON(t, decoded["auditor"]), mustJSON(t, decoded["shenzhen"]); a != s {
		t.Fatalf("the auditor's snapshot differs from Shenzhen's:\nauditor  %.2000s\nshenzhen %.2000s", a, s)
	}
	args = append([]string{"audit", "--snapshot", snaps["auditor"], "--consents", consents, "--json", "--no-progress"}, exports...)
	out, errOut, code = cli(args...)
	var audRep audit.Report
	if err := json.Unmarshal([]byte(out), &audRep); err != nil || code != 0 || audRep.Total != 0 || audRep.Received != rep.Received {
		t.Fatalf("audit on the auditor's snapshot: exit %d, %d findings, %d received (want %d): %v\n%s%s", code, audRep.Total, audRep.Received, rep.Received, err, out, errOut)
	}
	steps.done("auditor snapshot and audit")
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
