//go:build linux

package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network/fabricnet"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/audit"
	"github.com/prdcredit/ccnode/node/bankclient"
	"github.com/prdcredit/ccnode/node/faults"
)

// waitFor polls the recorded outcomes until one that started after since
// satisfies ok, and returns its start.
func (l *queryLoop) waitFor(t *testing.T, d time.Duration, what string, since time.Time, ok func(queryOutcome) bool) time.Time {
	t.Helper()
	var at time.Time
	faults.WaitFor(t, d, what, func() (bool, string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		last := "no query yet"
		for _, o := range l.outcomes {
			if o.start.After(since) {
				if ok(o) {
					at = o.start
					return true, ""
				}
				last = describeOutcome(o)
			}
		}
		return false, last
	})
	return at
}

// TestConsortiumChangesFabric is the consortium's life on the local
// Fabric network, each step a ccnode process, while a bank's queries run
// against Shenzhen without pause: three regions, `ccnode fabric
// add-region` for Dongguan (a channel update signed by a majority of the
// regions' admins), Guangzhou's key rotated and its node restarted, the
// contract upgraded, Zhuhai retired by a majority of region votes, and at
// the end the audit over every node's export against the auditor's
// ledger snapshot, every receipt required anchored, finds nothing. Every
// query is a 200 report whose parts are ok, except Guangzhou's
// `unavailable` inside its restart window and Zhuhai's `retired` after
// its retirement.
func TestConsortiumChangesFabric(t *testing.T) {
	fabricnet.SkipUnlessFabric(t)
	fabricnet.RequireBinaries(t)
	start := time.Now()
	step := func(name string, since time.Time) {
		t.Logf("step %-36s %6.1fs (at %5.1fs)", name, time.Since(since).Seconds(), time.Since(start).Seconds())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bin := faults.Bin(testkit.CCNode(t))
	mustCLI := func(args ...string) string { t.Helper(); return bin.Must(t, args...) }
	root := t.TempDir()

	t0 := time.Now()
	fab := faults.StartFabric(t, bin, filepath.Join(root, "fabric-net"))
	step("fabric up", t0)

	const szID, gzID, zhID, dgID = credit.RegionID("440300"), credit.RegionID("440100"), credit.RegionID("440400"), credit.RegionID("441900")
	t0 = time.Now()
	started, subject := fab.NodesWithRecords(t, root, "CC", func(c *node.Config) { c.Anchor.Interval = 500 * time.Millisecond },
		szID, gzID, zhID)
	nodes := map[credit.RegionID]*faults.Node{}
	for _, n := range started {
		n.Start(t)
		nodes[n.Region] = n
	}
	for _, n := range nodes {
		n.WaitReady(t, 2*time.Minute)
	}
	sz, gz, zh := nodes[szID], nodes[gzID], nodes[zhID]
	step("three nodes ready", t0)

	// The README's blocks, run in the work folder; its admin addresses are
	// the sample configs', these nodes listen on free ports.
	blocks := readMarkedBlocks(t, "../../README.md", fabricConsortiumSection, fabricConsortiumMark)
	admins := map[string]*faults.Node{"http://127.0.0.1:9443": sz, "http://127.0.0.1:9441": gz, "http://127.0.0.1:9444": zh}
	block := func(name string) readmeBlock {
		t.Helper()
		b, ok := blocks[name]
		if !ok {
			t.Fatalf("README.md %q has no block %s%s -->", fabricConsortiumSection, fabricConsortiumMark, name)
		}
		return b
	}
	readmeRun := &fabricJourney{t: t, bin: bin, work: root}
	runREADME := func(line int, args []string) string {
		t.Helper()
		if len(args) < 2 || args[0] != "./ccnode" {
			t.Fatalf("README.md:%d: %q: a block's command is ./ccnode ...", line, args)
		}
		args = slices.Clone(args[1:])
		for i, a := range args {
			if n, ok := admins[a]; ok {
				args[i] = n.AdminURL()
			}
			if i > 0 && (args[i-1] == "--http-addr" || args[i-1] == "--admin-addr") {
				args[i] = "127.0.0.1:0"
			}
		}
		t.Logf("README.md:%d: ccnode %s", line, strings.Join(args, " "))
		return readmeRun.must(args...)
	}
	// runBlock returns the output of the block's last command.
	runBlock := func(name string) string {
		t.Helper()
		b := block(name)
		var out string
		for _, args := range b.commands {
			out = runREADME(b.line, args)
		}
		return out
	}

	// A bank at Shenzhen and a consent, as an operator makes them.
	t0 = time.Now()
	token := filepath.Join(sz.Dir, "operator.token")
	bankDir := filepath.Join(root, "bank-cc")
	mustCLI("bank", "keygen", "--out", bankDir)
	mustCLI("bank", "register", "--admin", sz.AdminURL(), "--operator-token-file", token, "--id", "bank-cc", "--pub-key", filepath.Join(bankDir, "bank.pub"))
	entKey, entCert := sz.CertifiedEnterprise(t, bin, subject, root)
	consentFile := filepath.Join(root, "consent.json")
	mustCLI("consent", "grant", "--admin", sz.AdminURL(), "--operator-token-file", token,
		"--enterprise-key", entKey, "--enterprise-cert", entCert, "--uscc", string(subject), "--bank", "bank-cc", "--region", string(szID), "--categories", "registration,tax,judicial", "--out", consentFile)
	var grant credit.ConsentGrant
	if b, err := os.ReadFile(consentFile); err != nil || json.Unmarshal(b, &grant) != nil {
		t.Fatalf("consent %s: %v", consentFile, err)
	}
	bankKey, err := node.LoadKeyFile(filepath.Join(bankDir, "bank.key"))
	if err != nil {
		t.Fatal(err)
	}
	bank := bankclient.New(sz.URL(), bankclient.WithHTTPClient(sz.HTTPClient()), bankclient.WithBank("bank-cc", bankKey))
	// Every region knows the bank and the consent, and answers records,
	// before the loop starts: from then on anything but ok is a change's
	// doing.
	faults.WaitFor(t, time.Minute, "every region answers the bank", func() (bool, string) {
		_, res, err := bank.Query(ctx, bankclient.QueryRequest{Consent: &grant})
		if err != nil {
			return false, err.Error()
		}
		o := queryOutcome{parts: map[credit.RegionID]bankclient.RegionStatus{}}
		for _, st := range res.Regions {
			o.parts[st.Region] = st
			if st.Status != node.StatusOK || st.RecordCount == 0 {
				return false, describeOutcome(o)
			}
		}
		return len(res.Regions) == 3, describeOutcome(o)
	})
	step("bank and consent", t0)

	loop := startQueryLoop(ctx, bank, &grant)
	loopStopped := false
	defer func() {
		if !loopStopped {
			loop.Stop()
		}
	}()

	// Dongguan's organisation joins the channel: Fabric's governance.
	t0 = time.Now()
	out := runBlock("add-region")
	t.Logf("ccnode fabric add-region:\n%s", out)
	for _, want := range []string{
		"Endorsement           OutOf(2, 'SZMSP.peer', 'GZMSP.peer', 'ZHMSP.peer')",
		"Endorsement           OutOf(3, 'SZMSP.peer', 'GZMSP.peer', 'ZHMSP.peer', 'DGMSP.peer')",
		filepath.Join("connection", "441900.yaml"),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("fabric add-region does not print %q", want)
		}
	}
	step("fabric add-region 441900", t0)

	// Dongguan's node: a candidate until its proposal has a majority.
	t0 = time.Now()
	dgBlock := block("dongguan")
	var dg *faults.Node
	var dgApproved time.Time
	for i, args := range dgBlock.commands {
		switch {
		case len(args) > 1 && args[1] == "run":
			if dg == nil || !slices.Equal(args, []string{"./ccnode", "run", "--config", "nodes/441900/ccnode.yaml"}) {
				t.Fatalf("README.md:%d: %q: want Dongguan's run after its init", dgBlock.line, args)
			}
			dg.Start(t)
			waitCandidate(t, dg)
			continue
		case i == len(dgBlock.commands)-1:
			dgApproved = time.Now()
		}
		runREADME(dgBlock.line, args)
		if args[1] == "init" {
			dir := filepath.Join(root, "nodes", string(dgID))
			tok, err := os.ReadFile(filepath.Join(dir, "operator.token"))
			if err != nil {
				t.Fatal(err)
			}
			dg = &faults.Node{Bin: bin, Region: dgID, Dir: dir, Config: filepath.Join(dir, "ccnode.yaml"),
				Token: strings.TrimSpace(string(tok)), Owner: t, Args: []string{"--anchor-interval", "500ms"}}
			dg.TrustCA(t, filepath.Join(dir, "tls.crt"))
			admins["http://127.0.0.1:9449"] = dg
			nodes[dgID] = dg
		}
	}
	dg.WaitReady(t, time.Minute)
	dgIn := loop.waitFor(t, time.Minute, "Shenzhen's report has Dongguan's part", dgApproved, func(o queryOutcome) bool {
		st, ok := o.parts[dgID]
		return ok && st.Status == node.StatusOK
	})
	step("Dongguan a candidate, then accepted", t0)

	// Guangzhou's node key rotated by its operator, the node restarted.
	t0 = time.Now()
	runBlock("rotate")
	gzDown := time.Now()
	gz.Stop(t)
	gz.Start(t)
	gz.WaitReady(t, 2*time.Minute)
	newKey, err := node.LoadKeyFile(filepath.Join(fab.Dir, "nodes", string(gzID), "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	gzBack := loop.waitFor(t, 2*time.Minute, "Shenzhen's report has Guangzhou's part again, signed by its new key", gzDown, func(o queryOutcome) bool {
		st, ok := o.parts[gzID]
		return ok && st.Status == node.StatusOK && st.Receipt != nil && st.Receipt.Verify(newKey.Public().(ed25519.PublicKey)) == nil
	})
	step("Guangzhou key rotated and restarted", t0)

	// The contract upgraded with every region (Dongguan's peer included).
	t0 = time.Now()
	runBlock("upgrade")
	upgraded := time.Now()
	loop.waitFor(t, time.Minute, "a query after the upgrade", upgraded, func(o queryOutcome) bool { return o.err == nil })
	step("fabric upgrade", t0)

	// Zhuhai retired by a majority of the active regions while queries
	// run: an answer it gives as the deciding vote commits is still
	// acknowledged, and it still anchors the receipts it gave.
	t0 = time.Now()
	retire := block("retire")
	var retiredAt time.Time // the deciding vote began: a query from then on may find Zhuhai retired
	for i, args := range retire.commands {
		if i == len(retire.commands)-1 {
			retiredAt = time.Now()
		}
		runREADME(retire.line, args)
	}
	faults.WaitFor(t, time.Minute, "Zhuhai's node not ready: retired", func() (bool, string) {
		code, e := readyzOf(t, zh)
		return code == http.StatusServiceUnavailable && e.Code == string(credit.CodeNotMember) && strings.Contains(e.Message, "retired"),
			fmt.Sprintf("%d %s %s", code, e.Code, e.Message)
	})
	zhGone := loop.waitFor(t, time.Minute, "Shenzhen reports Zhuhai retired", retiredAt, func(o queryOutcome) bool {
		st, ok := o.parts[zhID]
		return ok && st.Status == node.StatusRetired
	})
	loop.waitFor(t, time.Minute, "another query after Zhuhai's retirement", zhGone, func(o queryOutcome) bool { return o.err == nil })
	step("Zhuhai retired", t0)

	outcomes := loop.Stop()
	loopStopped = true
	checkOutcomes(t, outcomes, windows{gzDown: gzDown, gzBack: gzBack, retiredAt: retiredAt, zhGone: zhGone, dgApproved: dgApproved, dgIn: dgIn})

	// Every node's receipts anchored, exported; the auditor's snapshot of
	// the ledger; the audit finds nothing.
	t0 = time.Now()
	for _, n := range []*faults.Node{sz, gz, zh, dg} {
		n.WaitAnchored(t, 2*time.Minute)
	}
	// The auditor holds the consent documents.
	b, _ := json.Marshal([]credit.ConsentGrant{grant})
	if err := os.WriteFile(filepath.Join(root, "consents.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	auditOut := runBlock("audit")
	var rep audit.Report
	if err := json.Unmarshal([]byte(auditOut), &rep); err != nil {
		t.Fatalf("the audit's output is no report: %v\n%s", err, auditOut)
	}
	if rep.Total != 0 || len(rep.Regions) != 4 {
		t.Fatalf("audit: %d findings, %d regions:\n%s", rep.Total, len(rep.Regions), auditOut)
	}
	step("exports and audit: no findings", t0)
	for _, n := range nodes {
		n.Stop(t)
	}
	t.Logf("consortium changes on Fabric: %d queries, %.1fs", len(outcomes), time.Since(start).Seconds())
}

// windows are the moments the changes happened, as the test saw them.
type windows struct {
	gzDown, gzBack    time.Time // Guangzhou stopping (a query then in flight counts); the first query after its restart with it back
	dgApproved, dgIn  time.Time // the deciding approval began; the first query with Dongguan's part
	retiredAt, zhGone time.Time // the deciding retire vote began; the first query reporting Zhuhai retired
}

// checkOutcomes holds every recorded query to the rule: a 200 report
// whose parts are ok, except Guangzhou unavailable while it restarted,
// Dongguan absent until the deciding approval and present from its first
// part on (in between unavailable, or refusing as a candidate until its
// node has seen the vote), and Zhuhai
// retired after the deciding vote and in every query from the first that
// said so (before that, its own node may refuse not_member naming the
// retirement, to a Shenzhen that has not seen it yet).
func checkOutcomes(t *testing.T, outcomes []queryOutcome, w windows) {
	t.Helper()
	const gz, zh, dg = credit.RegionID("440100"), credit.RegionID("440400"), credit.RegionID("441900")
	var gzUnavailable, zhRetired, zhRefused, dgJoining, dgParts int
	for i, o := range outcomes {
		at := fmt.Sprintf("query %d at %s", i, o.start.Format("15:04:05.000"))
		if o.err != nil {
			t.Errorf("%s failed: %v", at, o.err)
			continue
		}
		if _, ok := o.parts[dg]; !ok && !o.start.Before(w.dgIn) {
			t.Errorf("%s: no part of Dongguan after its first", at)
		}
		if st, ok := o.parts[zh]; ok && st.Status != node.StatusRetired && !o.start.Before(w.zhGone) {
			t.Errorf("%s: Zhuhai %s after it was reported retired", at, st.Status)
		}
		for id, st := range o.parts {
			switch {
			case id == dg && o.start.Before(w.dgApproved):
				t.Errorf("%s: Dongguan has a part (%s) before its deciding approval", at, st.Status)
			case st.Status == node.StatusOK:
				if id == dg {
					dgParts++
				} else if st.RecordCount == 0 || st.Receipt == nil {
					// Each of the first three holds records on the subject.
					t.Errorf("%s: region %s ok with %d records, receipt %v", at, id, st.RecordCount, st.Receipt != nil)
				}
			case id == gz && st.Status == node.StatusUnavailable && o.end.After(w.gzDown) && o.start.Before(w.gzBack):
				gzUnavailable++
			case id == dg && o.start.Before(w.dgIn) && (st.Status == node.StatusUnavailable ||
				st.Status == node.StatusDenied && st.Reason == credit.CodeNotMember && strings.Contains(st.Message, "candidate")):
				// Shenzhen saw the vote before Dongguan's node had
				// admitted itself: unreachable, or still a candidate.
				dgJoining++
			case id == zh && st.Status == node.StatusRetired && o.start.After(w.retiredAt):
				zhRetired++
			case id == zh && st.Status == node.StatusDenied && st.Reason == credit.CodeNotMember &&
				strings.Contains(st.Message, "retired") && o.start.After(w.retiredAt) && o.start.Before(w.zhGone):
				// Shenzhen asked before its view had the retirement;
				// Zhuhai's node, which had, refused naming it.
				zhRefused++
			default:
				t.Errorf("%s: region %s %s %s %s", at, id, st.Status, st.Reason, st.Message)
			}
		}
	}
	t.Logf("%d queries: Dongguan ok in %d (unavailable or still a candidate in %d while it joined), Guangzhou unavailable in %d (its restart), Zhuhai retired in %d (refused naming its retirement in %d)",
		len(outcomes), dgParts, dgJoining, gzUnavailable, zhRetired, zhRefused)
}

// waitCandidate waits until n's /readyz says it is a candidate.
func waitCandidate(t *testing.T, n *faults.Node) {
	t.Helper()
	faults.WaitFor(t, time.Minute, "region "+string(n.Region)+" a candidate", func() (bool, string) {
		code, e := readyzOf(t, n)
		return code == http.StatusServiceUnavailable && e.Code == string(credit.CodeNotMember) && strings.Contains(e.Message, "candidate"),
			fmt.Sprintf("%d %s %s", code, e.Code, e.Message)
	})
}

// readyzOf is n's /readyz status and error body (0 when unreachable).
func readyzOf(t *testing.T, n *faults.Node) (int, node.APIError) {
	t.Helper()
	var e node.APIError
	resp, err := n.HTTPClient().Get(n.URL() + "/readyz")
	if err != nil {
		e.Message = err.Error()
		return 0, e
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e
}

// The README's "On Fabric" subsection of "Changing the consortium": each
// sh block after a marker is a step this test runs verbatim.
const (
	fabricConsortiumSection = "#### On Fabric"
	fabricConsortiumMark    = "<!-- fabric-consortium: "
)

// readmeBlock is one marked block: its marker's line and its commands.
type readmeBlock struct {
	line     int
	commands [][]string
}

// readMarkedBlocks returns the sh blocks of a README section, by the name
// in the marker before each, split into commands as the three-node
// journey does (shellCommands).
func readMarkedBlocks(t *testing.T, readme, heading, mark string) map[string]readmeBlock {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	start := slices.Index(lines, heading)
	if start < 0 {
		t.Fatalf("%s has no section %q", readme, heading)
	}
	out := map[string]readmeBlock{}
	for i := start + 1; i < len(lines) && !strings.HasPrefix(lines[i], "#"); i++ {
		name, ok := strings.CutPrefix(strings.TrimSpace(lines[i]), mark)
		if !ok {
			continue
		}
		name = strings.TrimSuffix(name, " -->")
		if i+1 >= len(lines) || lines[i+1] != "```sh" {
			t.Fatalf("README.md:%d: %s is not followed by a ```sh block", i+1, lines[i])
		}
		blk := readmeBlock{line: i + 1}
		var body []string
		for i += 2; i < len(lines) && lines[i] != "```"; i++ {
			body = append(body, lines[i])
		}
		if blk.commands, err = shellCommands(strings.Join(body, "\n")); err != nil {
			t.Fatalf("README.md:%d: %v", blk.line, err)
		}
		out[name] = blk
	}
	return out
}
