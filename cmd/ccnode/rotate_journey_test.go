package main

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// TestKeyRotationThreeNodes runs the README's three-node journey as
// separate `ccnode run` processes up to the bank's query, then rotates
// Guangzhou's node key as its operator would (`keys rotate`, restart): the
// other two nodes follow the ledger's record and reach Guangzhou by its new
// peer id, the bank's next query gets Guangzhou's slice under a receipt
// signed by the new key, and the audit over every export and the ledger
// reports no findings (the journey's own audit step).
func TestKeyRotationThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three nodes")
	}
	j := newJourney(t)
	steps := readJourney(t, "../../README.md")
	query, i := j.runToQuery(steps)

	const gz, gzConfig = "440100", "configs/440100.yaml"
	keyFile := filepath.Join(j.dir, j.samples[gzConfig].KeyFile)
	oldKey, err := node.LoadKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	out, err := j.exec([]string{"keys", "rotate", "--config", gzConfig, "--json"})
	var rot rotateInfo
	if err != nil || json.Unmarshal([]byte(out), &rot) != nil || rot.LedgerKeyFile == "" {
		t.Fatalf("keys rotate: %v\n%s", err, out)
	}
	// Restart Guangzhou's node as its operator does (Ctrl-C, run again).
	k := slices.IndexFunc(j.nodes, func(n *journeyNode) bool { return n.config == gzConfig })
	n := j.nodes[k]
	n.cmd.Process.Signal(syscall.SIGINT)
	if err := <-n.done; err != nil {
		t.Fatalf("Guangzhou's node exited after Ctrl-C: %v", err)
	}
	n.done <- nil // for the cleanup
	j.nodes = slices.Delete(j.nodes, k, k+1)
	// Later commands reach the new process, not the old one's addresses.
	sample := j.samples[gzConfig]
	var subst []string
	for p := 0; p < len(j.subst); p += 2 {
		if old := j.subst[p]; old != sample.HTTP.Addr && old != "http://"+sample.Admin.Addr {
			subst = append(subst, j.subst[p], j.subst[p+1])
		}
	}
	j.subst = subst
	j.startNode(0, []string{"run", "--config", gzConfig})
	newKey, err := node.LoadKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	newPub := newKey.Public().(ed25519.PublicKey)
	if newPub.Equal(oldKey.Public()) {
		t.Fatal("keys rotate left Guangzhou's key as it was")
	}

	// The bank asks again at Shenzhen: Guangzhou's slice comes under its new key.
	testkit.Eventually(t, 60*time.Second, func() error {
		r, err := j.regionPart(j.substitute(query[1:]), gz)
		if err != nil {
			return err
		}
		if r.Status != node.StatusOK || r.Receipt == nil || r.RecordCount == 0 {
			return fmt.Errorf("Guangzhou's part after the rotation: %s %s %s", r.Status, r.Reason, r.Message)
		}
		if err := r.Receipt.Verify(newPub); err != nil {
			return fmt.Errorf("Guangzhou's receipt is not signed by its new key: %w", err)
		}
		return nil
	})

	// The rest of the journey: wait for anchoring, stop, export, audit
	// (run asserts "result: no findings" with receipts of all three
	// regions, Guangzhou's under both keys).
	for ; i < len(steps); i++ {
		switch steps[i].mark {
		case markWait:
			j.waitAnchored()
		case markStop:
			j.stopNodes()
		}
		for _, args := range steps[i].commands {
			j.run(steps[i].line, args)
		}
	}
	// The audited export of Guangzhou holds both: the answer under the
	// old key, then the one under the new.
	b, err := os.ReadFile(filepath.Join(j.dir, "data", gz+"-answered.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")[1:]
	var signers []string
	for _, l := range lines {
		el, err := credit.DecodeExportLine([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		r, err := credit.DecodeReceipt(el.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case r.Verify(oldKey.Public().(ed25519.PublicKey)) == nil:
			signers = append(signers, "old")
		case r.Verify(newPub) == nil:
			signers = append(signers, "new")
		default:
			signers = append(signers, "neither")
		}
	}
	if !slices.Equal(signers, []string{"old", "new"}) {
		t.Fatalf("Guangzhou's audited receipts signed by %v, want [old new]", signers)
	}
}
