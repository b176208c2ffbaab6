package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network/fabric"
	"github.com/prdcredit/ccnode/network/fabricnet"
	"github.com/prdcredit/ccnode/node"
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
	start := time.Now()
	step := func(name string, since time.Time) {
		t.Logf("step %-28s %6.1fs (at %5.1fs)", name, time.Since(since).Seconds(), time.Since(start).Seconds())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()

	t0 := time.Now()
	bin := filepath.Join(t.TempDir(), "ccnode")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	step("build ccnode", t0)

	// cli runs the binary to completion and returns stdout, stderr and
	// the exit code (-1 when it could not run).
	cli := func(args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("ccnode %s: %v", strings.Join(args, " "), err)
		}
		return stdout.String(), stderr.String(), code
	}
	mustCLI := func(args ...string) string {
		t.Helper()
		out, errOut, code := cli(args...)
		if code != 0 {
			t.Fatalf("ccnode %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}

	// The network. Down is registered first: it stops exactly the pids
	// `up` recorded, also after a failed up.
	root := t.TempDir()
	fdir := filepath.Join(root, "fabric")
	t.Cleanup(func() {
		if t.Failed() {
			logFabricTails(t, filepath.Join(fdir, "logs"))
		}
		out, err := exec.Command(bin, "fabric", "down", "--dir", fdir).CombinedOutput()
		if err != nil {
			t.Errorf("ccnode fabric down: %v\n%s", err, out)
		}
	})
	t0 = time.Now()
	// Run from this package's folder: up builds ./chaincode/server of the
	// module around the working directory.
	out := mustCLI("fabric", "up", "--dir", fdir, "--timeout", "30m")
	step("fabric up", t0)
	t.Logf("fabric up:\n%s", out)
	fnet, err := fabricnet.Load(fdir)
	if err != nil {
		t.Fatal(err)
	}

	type region struct {
		id      credit.RegionID
		msp     string
		gateway string
		keyFile string
		dir     string
		cfgPath string
		tokFile string
		cmd     *exec.Cmd
		exited  chan struct{}
		logs    *lockedBuffer
		url     string
		cl      *node.Client
	}
	want := []credit.RegionID{"440300", "440100", "440400"} // Shenzhen, Guangzhou, Zhuhai
	var regions []*region
	for _, id := range want {
		var r *region
		for i, fr := range fnet.Regions {
			if fr.ID == id {
				r = &region{id: id, msp: fr.MSPID, gateway: fnet.GatewayFiles[i],
					keyFile: filepath.Join(fdir, "nodes", string(id), "node.key")}
			}
		}
		if r == nil {
			t.Fatalf("fabric up made no organisation for region %s: %+v", id, fnet.Regions)
		}
		if _, err := os.Stat(r.keyFile); err != nil {
			t.Fatalf("fabric up wrote no node key for %s: %v", id, err)
		}
		regions = append(regions, r)
	}
	sz := regions[0]

	// Per region: config on Fabric with the key whose peer id the
	// bootstrapped membership names, HTTP and libp2p on free ports, and
	// a small synthetic data set.
	t0 = time.Now()
	var subject credit.USCC
	for _, r := range regions {
		r.dir = filepath.Join(root, "nodes", string(r.id))
		if err := os.MkdirAll(r.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		r.tokFile = filepath.Join(r.dir, "admin.token")
		if err := os.WriteFile(r.tokFile, []byte("e2e-admin-"+string(r.id)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r.cfgPath = filepath.Join(r.dir, "ccnode.yaml")
		cfg := fmt.Sprintf(`region: %q
data_dir: %q
key_file: %q
p2p:
  listen: ["/ip4/127.0.0.1/tcp/0"]
http:
  addr: "127.0.0.1:0"
  admin_token_file: %q
ledger:
  embedded_dir: ""
  fabric_gateway: %q
  msp_id: %q
anchor:
  interval: 500ms
`, r.id, r.dir, r.keyFile, r.tokFile, r.gateway, r.msp)
		if err := os.WriteFile(r.cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		feed := filepath.Join(r.dir, "feed.jsonl")
		mustCLI("gen", "--region", string(r.id), "--enterprises", "3", "--seed", "7", "--quiet", "-o", feed)
		if r == sz {
			b, err := os.ReadFile(feed)
			if err != nil {
				t.Fatal(err)
			}
			var first struct {
				USCC credit.USCC `json:"uscc"`
			}
			line, _, _ := bytes.Cut(b, []byte("\n"))
			if err := json.Unmarshal(line, &first); err != nil || first.USCC == "" {
				t.Fatalf("first generated line %q: %v", line, err)
			}
			subject = first.USCC
		} else {
			// The other regions hold a court record on the Shenzhen
			// subject, so the consolidated report has data from each.
			f, err := os.OpenFile(feed, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(f, `{"uscc":%q,"source":"court-%s","source_id":"E2E-%s-1","category":"judicial","date":"2024-03-01","attrs":{"case_no":"e2e"}}`+"\n", subject, r.id, r.id)
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
		mustCLI("import", "--data-dir", filepath.Join(r.dir, "db"), feed)
	}
	step("configs, gen and import", t0)

	// Start the three nodes; each prints its bank API address first.
	t0 = time.Now()
	for _, r := range regions {
		r.logs = &lockedBuffer{}
		r.cmd = exec.Command(bin, "run", "--config", r.cfgPath, "--log-level", "info")
		lines := make(chan string, 1)
		r.cmd.Stdout = &firstLine{w: r.logs, line: lines}
		r.cmd.Stderr = r.logs
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r.exited = make(chan struct{})
		go func() { r.cmd.Wait(); close(r.exited) }()
		t.Cleanup(func() {
			select {
			case <-r.exited:
			default:
				r.cmd.Process.Kill()
				<-r.exited
			}
			if t.Failed() {
				t.Logf("ccnode run %s output:\n%s", r.id, r.logs.String())
			}
		})
		select {
		case line := <-lines:
			_, url, ok := strings.Cut(strings.TrimSpace(line), "bank API on ")
			if !ok {
				t.Fatalf("ccnode run %s printed %q, not its address:\n%s", r.id, line, r.logs.String())
			}
			r.url = url
		case <-r.exited:
			t.Fatalf("ccnode run %s exited before serving:\n%s", r.id, r.logs.String())
		case <-time.After(2 * time.Minute):
			t.Fatalf("ccnode run %s printed no address in 2m:\n%s", r.id, r.logs.String())
		}
		r.cl = &node.Client{Base: r.url, AdminToken: "e2e-admin-" + string(r.id)}
	}
	for _, r := range regions {
		waitFor(t, time.Minute, "region "+string(r.id)+" ready", func() (bool, string) {
			select {
			case <-r.exited:
				t.Fatalf("ccnode run %s exited:\n%s", r.id, r.logs.String())
			default:
			}
			resp, err := http.Get(r.url + "/readyz")
			if err != nil {
				return false, err.Error()
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, fmt.Sprintf("%d %s", resp.StatusCode, b)
		})
	}
	step("three nodes ready", t0)

	// A bank at Shenzhen, and a consent its enterprise grants it.
	t0 = time.Now()
	_, bankKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	bankKeyFile := filepath.Join(root, "bank-e2e.key")
	if err := node.WriteKeyFile(bankKeyFile, bankKey); err != nil {
		t.Fatal(err)
	}
	if err := sz.cl.RegisterBank(ctx, credit.BankMember{ID: "bank-e2e", Name: "E2E Bank", PubKey: bankKey.Public().(ed25519.PublicKey)}); err != nil {
		t.Fatalf("register bank at Shenzhen: %v", err)
	}
	step("bank registered", t0)
	t0 = time.Now()
	consentFile := filepath.Join(root, "consent.json")
	mustCLI("consent", "grant", "--node", sz.url, "--admin-token-file", sz.tokFile,
		"--enterprise-key", filepath.Join(root, "enterprise.key"), "--uscc", string(subject), "--bank", "bank-e2e",
		"--region", string(sz.id), "--categories", "registration,tax,judicial", "--out", consentFile)
	var grant credit.ConsentGrant
	if b, err := os.ReadFile(consentFile); err != nil || json.Unmarshal(b, &grant) != nil || len(grant.RegionSig) == 0 {
		t.Fatalf("countersigned consent %s: %v %s", consentFile, err, b)
	}
	step("consent granted", t0)
	// Every node learns the bank and the consent from Fabric's events.
	t0 = time.Now()
	waitConsent := func(want credit.ConsentStatus) {
		t.Helper()
		for _, r := range regions {
			waitFor(t, time.Minute, fmt.Sprintf("consent %s at %s", want, r.id), func() (bool, string) {
				res, err := r.cl.ConsentStatus(ctx, grant.ID)
				if err != nil {
					return false, err.Error()
				}
				return res.Status == want, string(res.Status)
			})
		}
	}
	waitConsent(credit.ConsentActive)
	step("consent seen by every node", t0)

	// The consolidated query: every region answers with a receipt signed
	// by the key the membership on Fabric names, acknowledged by Shenzhen.
	// Only a region that has not applied the bank's registration event
	// yet (bank_unknown) is waited for; any other refusal or an
	// unreachable region fails at once.
	t0 = time.Now()
	var res node.Consolidated
	issued := map[credit.RegionID]uint64{} // receipts each region issued, over attempts
	waitFor(t, 20*time.Second, "every region knows the bank", func() (bool, string) {
		out := mustCLI("query", "--node", sz.url, "--bank", "bank-e2e", "--key", bankKeyFile, "--consent", consentFile, "--json")
		res = node.Consolidated{}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("query output: %v\n%s", err, out)
		}
		again := false
		for _, st := range res.Regions {
			if st.Receipt != nil {
				issued[st.Region]++
			}
			again = again || st.Reason == node.ReasonBankUnknown
		}
		return !again, out
	})
	step("consolidated query", t0)
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
	t0 = time.Now()
	mustCLI("consent", "revoke", "--node", sz.url, "--admin-token-file", sz.tokFile, "--id", grant.ID)
	waitFor(t, time.Minute, "query refused as revoked", func() (bool, string) {
		out, errOut, code := cli("query", "--node", sz.url, "--bank", "bank-e2e", "--key", bankKeyFile, "--consent", consentFile, "--json")
		return code != 0 && strings.Contains(errOut, string(node.ReasonConsentRevoked)), fmt.Sprintf("exit %d: %s%s", code, out, errOut)
	})
	step("revoked and refused", t0)
	t0 = time.Now()
	waitConsent(credit.ConsentRevoked)
	step("revocation seen by every node", t0)

	// Anchoring: each answering region's receipt gets an inclusion proof
	// under a checkpoint that is on Fabric and signed by the region.
	t0 = time.Now()
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
		waitFor(t, time.Minute, "receipt of "+string(r.id)+" anchored", func() (bool, string) {
			var err error
			rp, err = r.cl.Receipt(ctx, answered[r.id])
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
	step("receipts anchored on Fabric", t0)

	// Stop the nodes (Badger allows one process), export, audit against
	// Fabric through a connection file.
	t0 = time.Now()
	for _, r := range regions {
		r.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, r := range regions {
		select {
		case <-r.exited:
			if code := r.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("ccnode run %s exited %d after SIGTERM", r.id, code)
			}
		case <-time.After(time.Minute):
			t.Fatalf("ccnode run %s still running 1m after SIGTERM", r.id)
		}
	}
	step("nodes stopped", t0)
	t0 = time.Now()
	var exports []string
	for _, r := range regions {
		for _, kind := range []credit.ExportKind{credit.ExportAnswered, credit.ExportReceived} {
			p := filepath.Join(root, fmt.Sprintf("%s-%s.jsonl", r.id, kind))
			mustCLI("receipts", "export", "--config", r.cfgPath, "--kind", string(kind), "--out", p)
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
	step("export and audit", t0)
	var rep struct {
		Regions []struct {
			Region   credit.RegionID `json:"region"`
			Receipts uint64          `json:"receipts"`
			Verified uint64          `json:"verified"`
			Findings int             `json:"findings"`
		} `json:"regions"`
		Received uint64            `json:"received"`
		Findings []json.RawMessage `json:"findings"`
		Total    int               `json:"total"`
	}
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
	t.Logf("audit against Fabric: %d regions, %d received receipts cross-checked, no findings; total %.1fs", len(rep.Regions), rep.Received, time.Since(start).Seconds())
}

// waitFor polls cond every 50 ms until it holds, failing t with cond's
// last word after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s (last: %s)", what, d, last)
		}
		<-tick.C
	}
}

// logFabricTails logs the end of each Fabric process log.
func logFabricTails(t *testing.T, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if len(b) > 3000 {
			b = b[len(b)-3000:]
		}
		t.Logf("--- %s (tail) ---\n%s", f, b)
	}
}

// lockedBuffer collects a child's output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// firstLine copies a child's stdout to w and sends its first line on line.
type firstLine struct {
	w    io.Writer
	line chan<- string
	buf  []byte
	sent bool
}

func (f *firstLine) Write(p []byte) (int, error) {
	if !f.sent {
		f.buf = append(f.buf, p...)
		if i := bytes.IndexByte(f.buf, '\n'); i >= 0 {
			f.line <- string(f.buf[:i+1])
			f.sent = true
		}
	}
	return f.w.Write(p)
}
