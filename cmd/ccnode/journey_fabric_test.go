//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network/fabric"
	"github.com/prdcredit/ccnode/network/fabricnet"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/audit"
	"github.com/prdcredit/ccnode/node/faults"
)

// fabricJourney runs ccnode as an operator does: each command a process of
// the built binary, in a work folder outside the source tree (so `fabric
// up` runs as an installed binary would), with no CCNODE_* variables from
// the caller but the Fabric binaries' folder.
type fabricJourney struct {
	t    *testing.T
	bin  faults.Bin
	work string
	env  []string
}

func (j *fabricJourney) run(args ...string) (stdout, stderr string, code int) {
	j.t.Helper()
	cmd := exec.Command(string(j.bin), args...)
	cmd.Dir, cmd.Env = j.work, j.env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return o.String(), e.String(), ee.ExitCode()
	}
	if err != nil {
		j.t.Fatalf("ccnode %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), 0
}

func (j *fabricJourney) must(args ...string) string {
	j.t.Helper()
	out, errOut, code := j.run(args...)
	if code != 0 {
		j.t.Fatalf("ccnode %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// TestThreeNodesJourneyFabric is the "three nodes on one machine" journey
// on the local Fabric network instead of the embedded ledger: `ccnode
// fabric up` from outside the source tree, `ccnode init --fabric-gateway`
// for three regions (each registering its new node key in its region's
// record), three `ccnode run`, import into the running nodes, a bank made
// and registered, a consent granted, a query with records from all three
// regions, a running node backed up and restored, export from the running
// nodes and an audit with zero findings. Then a fourth init for a region that is
// running registers yet another key, and that running node stops being
// ready with node_key_mismatch instead of answering with a key nobody can
// verify.
//
// Old failures it catches: init's config refused by run ("set exactly one
// of ledger.embedded_dir, ..."), msp_id Region<id>MSP instead of the
// network's, a key the ledger does not know (every query then refused as
// consent_signature_invalid), `fabric up` outside the source tree ("set
// Config.ChaincodeServer or Config.ModuleDir"), a node with an unrecorded
// key reporting ready.
//
// It skips like the other Fabric suites (-short, CCNODE_SKIP_FABRIC=1).
func TestThreeNodesJourneyFabric(t *testing.T) {
	fabricnet.SkipUnlessFabric(t)
	steps := newSteps(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	j := &fabricJourney{t: t, bin: faults.Bin(testkit.CCNode(t)), work: t.TempDir()}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "CCNODE_") || strings.HasPrefix(e, "CCNODE_FABRIC_BIN=") {
			j.env = append(j.env, e)
		}
	}

	// The network, stopped (exactly the pids up recorded) at the end.
	steps.begin()
	fdir := filepath.Join(j.work, "fabric-net")
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(fdir, "logs", "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", filepath.Base(l), tailLines(string(b), 15))
			}
		}
		if out, errOut, code := j.run("fabric", "down", "--dir", fdir); code != 0 {
			t.Errorf("ccnode fabric down: exit %d\n%s%s", code, out, errOut)
		}
	})
	up := j.must("fabric", "up", "--dir", "fabric-net", "--timeout", "30m")
	steps.done("fabric up")
	net, err := fabricnet.Load(fdir)
	if err != nil {
		t.Fatal(err)
	}
	// Its processes: the chaincode servers are this binary.
	for _, r := range net.Regions {
		if !strings.Contains(up, filepath.Join("fabric-net", "connection", string(r.ID)+".yaml")) {
			t.Errorf("fabric up does not print region %s's connection file:\n%s", r.ID, up)
		}
	}

	// init per region, from the connection file alone.
	steps.begin()
	type region struct {
		id   credit.RegionID
		msp  string
		conn string
		key  ed25519.PrivateKey
		*faults.Node
	}
	var regions []*region
	for i, r := range net.Regions {
		rg := &region{id: r.ID, msp: r.MSPID, conn: net.GatewayFiles[i]}
		dir := filepath.Join(j.work, "nodes", string(r.ID))
		out := j.must("init", "--region", string(r.ID), "--dir", filepath.Join("nodes", string(r.ID)), "--tls",
			"--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
			"--fabric-gateway", filepath.Join("fabric-net", "connection", string(r.ID)+".yaml"))
		if !strings.Contains(out, "registered this node key in region "+string(r.ID)+"'s record") {
			t.Errorf("init of %s does not say it registered the node key:\n%s", r.ID, out)
		}
		cfgPath := filepath.Join(dir, "ccnode.yaml")
		// The config is one run accepts, acting as the network's MSP.
		shown := j.must("config", "show", "--config", cfgPath)
		cfg, err := node.ParseConfig(node.Config{}, []byte(shown))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Ledger.MSPID != r.MSPID || cfg.Ledger.EmbeddedDir != "" || cfg.Ledger.FabricGateway != rg.conn {
			t.Fatalf("init of %s wrote ledger %+v, want msp_id %s and fabric_gateway %s only", r.ID, cfg.Ledger, r.MSPID, rg.conn)
		}
		if rg.key, err = node.LoadKeyFile(cfg.KeyFile); err != nil {
			t.Fatal(err)
		}
		tok, err := os.ReadFile(filepath.Join(dir, "operator.token"))
		if err != nil {
			t.Fatal(err)
		}
		rg.Node = &faults.Node{Bin: j.bin, Region: r.ID, Dir: dir, Config: cfgPath, Token: strings.TrimSpace(string(tok)), Owner: t,
			Args: []string{"--anchor-interval", "500ms"}}
		rg.TrustCA(t, filepath.Join(dir, "tls.crt"))
		regions = append(regions, rg)
	}
	sz := regions[0]
	// The ledger names each init's key: what the other regions verify.
	led := dialFabric(ctx, t, sz.conn)
	for _, rg := range regions {
		m, err := led.Region(ctx, rg.id)
		if err != nil {
			t.Fatal(err)
		}
		if !ed25519.PublicKey(m.PubKey).Equal(rg.key.Public()) || m.MSPID != rg.msp {
			t.Fatalf("region %s's record on Fabric: key %s, msp %s; want init's key %s and %s", rg.id,
				node.KeyFingerprint(m.PubKey), m.MSPID, node.KeyFingerprint(rg.key.Public().(ed25519.PublicKey)), rg.msp)
		}
	}
	steps.done("init three regions")

	steps.begin()
	for _, rg := range regions {
		rg.Start(t)
	}
	for _, rg := range regions {
		rg.WaitReady(t, 2*time.Minute)
	}
	steps.done("three nodes ready")

	// Records, imported into the running nodes (through their admin APIs,
	// init's operator token): Shenzhen's enterprises, and a court record
	// on one of them in each other region.
	steps.begin()
	var subject credit.USCC
	for _, rg := range regions {
		feed := filepath.Join(rg.Dir, "feed.jsonl")
		j.must("gen", "--region", string(rg.id), "--enterprises", "3", "--seed", "7", "--quiet", "-o", feed)
		if rg == sz {
			subject = faults.FirstSubject(t, feed)
		} else {
			faults.AppendCourtRecord(t, feed, subject, rg.id, "JF")
		}
		j.must("import", "--quiet", "--config", rg.Config, feed)
	}
	steps.done("gen and import into the running nodes")

	// A bank at Shenzhen, registered through its admin API; an identity
	// authority certifies the enterprise, whose consent Shenzhen records.
	steps.begin()
	tokFile := filepath.Join(sz.Dir, "operator.token")
	bankDir := filepath.Join(j.work, "bank-jf")
	j.must("bank", "keygen", "--out", bankDir)
	bankKeyFile := filepath.Join(bankDir, "bank.key")
	j.must("bank", "register", "--admin", sz.AdminURL(), "--operator-token-file", tokFile, "--id", "bank-jf", "--pub-key", filepath.Join(bankDir, "bank.pub"))
	caDir, entDir := filepath.Join(j.work, "authority"), filepath.Join(j.work, "enterprise")
	j.must("authority", "create", "--name", "Shenzhen Journey Authority", "--out", caDir)
	j.must("authority", "issue", "--authority", caDir, "--uscc", string(subject), "--name", "Journey Enterprise", "--out", entDir)
	j.must("authority", "register", "--admin", sz.AdminURL(), "--operator-token-file", tokFile, "--authority", caDir)
	consentFile := filepath.Join(j.work, "consent.json")
	j.must("consent", "grant", "--admin", sz.AdminURL(), "--operator-token-file", tokFile,
		"--enterprise-key", filepath.Join(entDir, "enterprise.key"), "--enterprise-cert", filepath.Join(entDir, "enterprise.pem"),
		"--uscc", string(subject), "--bank", "bank-jf", "--region", string(sz.id), "--categories", "registration,tax,judicial", "--out", consentFile)
	var grant credit.ConsentGrant
	if b, err := os.ReadFile(consentFile); err != nil || json.Unmarshal(b, &grant) != nil {
		t.Fatalf("consent %s: %v", consentFile, err)
	}
	steps.done("bank and consent")

	// The query: every region answers records with a receipt under the
	// key init registered. A region that has not seen the bank or the
	// consent yet is asked again; any other refusal fails at once.
	steps.begin()
	var res node.Consolidated
	issued := map[credit.RegionID]uint64{}
	faults.WaitFor(t, time.Minute, "every region answers", func() (bool, string) {
		out, errOut, code := j.run("query", "--node", sz.URL(), "--ca-file", sz.CAFile, "--bank", "bank-jf", "--key", bankKeyFile, "--consent", consentFile, "--json")
		if code != 0 {
			if strings.Contains(errOut, string(credit.CodeConsentNotFound)) || strings.Contains(errOut, string(credit.CodeBankUnknown)) {
				return false, errOut
			}
			t.Fatalf("query: exit %d\n%s%s", code, out, errOut)
		}
		res = node.Consolidated{}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("query output: %v\n%s", err, out)
		}
		again := false
		for _, st := range res.Regions {
			if st.Receipt != nil {
				issued[st.Region]++
			}
			switch {
			case st.Status == node.StatusOK:
			case st.Reason == credit.CodeBankUnknown || st.Reason == credit.CodeConsentNotFound:
				again = true
			default:
				t.Fatalf("region %s refused: %s %s", st.Region, st.Reason, st.Message)
			}
		}
		return !again, out
	})
	if len(res.Regions) != len(regions) {
		t.Fatalf("query answered by %d regions, want %d: %+v", len(res.Regions), len(regions), res.Regions)
	}
	keys := map[credit.RegionID]ed25519.PublicKey{}
	for _, rg := range regions {
		keys[rg.id] = rg.key.Public().(ed25519.PublicKey)
	}
	for _, st := range res.Regions {
		if st.Receipt == nil || st.RecordCount == 0 {
			t.Fatalf("region %s: %d records, receipt %v", st.Region, st.RecordCount, st.Receipt != nil)
		}
		if err := st.Receipt.Verify(keys[st.Region]); err != nil {
			t.Fatalf("region %s's receipt does not verify under the key init registered: %v", st.Region, err)
		}
	}
	steps.done("query, records from three regions")

	steps.begin()
	for _, rg := range regions {
		rg.WaitAnchored(t, 2*time.Minute)
	}
	steps.done("receipts anchored")

	// Zhuhai's running node backed up, and a node rebuilt from the backup
	// into an empty folder holds its records.
	steps.begin()
	zh := regions[2]
	backup := filepath.Join(j.work, "zh.backup")
	j.must("backup", "--config", zh.Config, "--out", backup)
	j.must("restore", "--from", backup, "--config", zh.Config, "--data-dir", filepath.Join(j.work, "zh-restored"))
	if out := j.must("stats", "--config", zh.Config, "--data-dir", filepath.Join(j.work, "zh-restored")); !strings.Contains(out, "records") {
		t.Fatalf("stats of the restored store:\n%s", out)
	}
	steps.done("backup of a running node, restored")

	// Export from the running nodes (through their admin APIs) and audit
	// against Fabric.
	steps.begin()
	var exports []string
	for _, rg := range regions {
		for _, kind := range []credit.ExportKind{credit.ExportAnswered, credit.ExportReceived} {
			p := filepath.Join(j.work, fmt.Sprintf("%s-%s.jsonl", rg.id, kind))
			j.must("receipts", "export", "--config", rg.Config, "--kind", string(kind), "--out", p)
			exports = append(exports, p)
		}
	}
	consents := filepath.Join(j.work, "consents.json")
	b, _ := json.Marshal([]credit.ConsentGrant{grant})
	if err := os.WriteFile(consents, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := j.run(append([]string{"audit", "--fabric-config", sz.conn, "--consents", consents, "--json", "--no-progress"}, exports...)...)
	var rep audit.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("audit exit %d, output not a report: %v\n%s%s", code, err, out, errOut)
	}
	if code != 0 || rep.Total != 0 {
		t.Fatalf("audit exit %d, %d findings:\n%s%s", code, rep.Total, out, errOut)
	}
	if len(rep.Regions) != len(regions) {
		t.Fatalf("audit saw %d regions, want %d:\n%s", len(rep.Regions), len(regions), out)
	}
	for _, rs := range rep.Regions {
		if rs.Receipts != issued[rs.Region] || rs.Verified != rs.Receipts || rs.Receipts == 0 {
			t.Fatalf("audit of %s: %d receipts (%d issued), %d verified:\n%s", rs.Region, rs.Receipts, issued[rs.Region], rs.Verified, out)
		}
	}
	steps.done("export and audit: no findings")
	for _, rg := range regions[:2] {
		rg.Stop(t)
	}

	// A second init for Zhuhai, still running, registers another key. The
	// running node must then say it is not ready, and why.
	steps.begin()
	out = j.must("init", "--region", string(zh.id), "--dir", filepath.Join("nodes", string(zh.id)+"-second"),
		"--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--fabric-gateway", zh.conn,
		"--current-key", filepath.Join(j.work, "nodes", string(zh.id), "node.key"))
	second, err := node.LoadKeyFile(filepath.Join(j.work, "nodes", string(zh.id)+"-second", "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	var e node.APIError
	faults.WaitFor(t, time.Minute, "Zhuhai not ready: its key is no longer the record's", func() (bool, string) {
		status, ae, err := readyz(ctx, zh.Node)
		if err != nil {
			return false, err.Error()
		}
		e = ae
		return status == http.StatusServiceUnavailable && ae.Code == string(credit.CodeNodeKeyMismatch), fmt.Sprintf("%d %s %s", status, ae.Code, ae.Message)
	})
	for _, want := range []string{
		"node key " + node.KeyFingerprint(zh.key.Public().(ed25519.PublicKey)),
		"is not the key the ledger records for region " + string(zh.id) + " (" + node.KeyFingerprint(second.Public().(ed25519.PublicKey)),
	} {
		if !strings.Contains(e.Message, want) {
			t.Errorf("/readyz says %q, want %q", e.Message, want)
		}
	}
	zh.Stop(t)
	steps.done("key mismatch: not ready")
	t.Logf("journey on Fabric: %.1fs", time.Since(steps.start).Seconds())
}

func dialFabric(ctx context.Context, t *testing.T, conn string) *fabric.Ledger {
	t.Helper()
	cfg, err := fabric.LoadConfig(conn)
	if err != nil {
		t.Fatal(err)
	}
	l, err := fabric.Dial(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("dial Fabric as %s: %v", cfg.MSPID, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
