package main

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/bankclient"
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
	steps := readJourney(t, "../../README.md", threeNodesSection)
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
	j.stopNode(gzConfig)
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

	// The operator writes the region keys for banks: Guangzhou's new key,
	// its old one with the time it was replaced; the bank's query verifies
	// every receipt under them.
	keysArgs := j.substitute([]string{"consortium", "region-keys", "--admin", "http://127.0.0.1:9443",
		"--operator-token-file", "data/440300/operator.token", "--out", "data/region-keys.json"})
	if out, err := j.exec(keysArgs); err != nil {
		t.Fatalf("consortium region-keys: %v\n%s", err, out)
	}
	trust, err := bankclient.LoadTrust(filepath.Join(j.dir, "data", "region-keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	if past := trust.PastKeys[gz]; !newPub.Equal(trust.Regions[gz]) || len(past) != 1 || !oldKey.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(past[0].PubKey)) {
		t.Fatalf("region keys of Guangzhou: %x, past %+v; want the new key now and the old one past", trust.Regions[gz], past)
	}
	if out, err := j.exec(append(j.substitute(query[1:]), "--region-keys", "data/region-keys.json")); err != nil {
		t.Fatalf("query verified under the region keys: %v\n%s", err, out)
	}

	// The rest of the journey: wait for anchoring, stop, export, audit
	// (run asserts "result: no findings" with receipts of all three
	// regions, Guangzhou's under both keys).
	for _, st := range steps[i:] {
		j.step(st)
	}
	// The audited export of Guangzhou holds the answer under the old key,
	// then those under the new.
	b, err := os.ReadFile(filepath.Join(j.dir, "data", gz+"-answered.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")[1:]
	var signers []string
	var receipts []credit.Receipt
	for _, l := range lines {
		el, err := credit.DecodeExportLine([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		r, err := credit.DecodeReceipt(el.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		receipts = append(receipts, r)
		switch {
		case r.Verify(oldKey.Public().(ed25519.PublicKey)) == nil:
			signers = append(signers, "old")
		case r.Verify(newPub) == nil:
			signers = append(signers, "new")
		default:
			signers = append(signers, "neither")
		}
	}
	// The answer before the rotation, then the two after it (the bank's
	// query, and the one verified under the region-keys file).
	if !slices.Equal(signers, []string{"old", "new", "new"}) {
		t.Fatalf("Guangzhou's audited receipts signed by %v, want [old new new]", signers)
	}
	// The region-keys file verifies both, each under the key of its time.
	for _, r := range receipts {
		if err := trust.VerifyReceipt(&r); err != nil {
			t.Errorf("receipt %s of %s under the region keys: %v", r.ID, r.Time, err)
		}
	}
}
