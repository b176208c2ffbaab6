//go:build linux

package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/faults"
)

// readyz reads a node's /readyz: its HTTP status and error body.
func readyz(ctx context.Context, n *faults.Node) (int, node.APIError, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.URL()+"/readyz", nil)
	if err != nil {
		return 0, node.APIError{}, err
	}
	resp, err := n.HTTPClient().Do(req)
	if err != nil {
		return 0, node.APIError{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e node.APIError
	json.Unmarshal(b, &e)
	return resp.StatusCode, e, nil
}

// TestNodeKeyMismatchIsNotReady: a node whose key is not the one its
// region's ledger record names is not ready, /readyz says which keys and
// what to run, and bank queries are refused with node_key_mismatch —
// before, it stayed ready and every consent it countersigned was refused
// everywhere as consent_signature_invalid. Here a second node for the
// same region (another key, acting as the region's ledger identity)
// starts on the served embedded ledger and publishes its key, as `run`
// does with a new key; the first node must notice from the ledger events.
func TestNodeKeyMismatchIsNotReady(t *testing.T) {
	bin := faults.Bin(testkit.CCNode(t))
	root := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	a := faults.InitEmbedded(t, bin, "440300", filepath.Join(root, "a"), func(c *node.Config) {
		c.Ledger.ServeAddr = "127.0.0.1:0"
		c.Ledger.GracePeriod = 2 * time.Second // the view refreshes every grace/4 besides events
	})
	a.Start(t)
	a.WaitReady(t, time.Minute)
	var ledgerURL string
	served := regexp.MustCompile(`embedded ledger served on (http://\S+)`)
	testkit.Eventually(t, 30*time.Second, func() error {
		m := served.FindStringSubmatch(a.Logs())
		if m == nil {
			return errors.New("no 'embedded ledger served on' line yet")
		}
		ledgerURL = m[1]
		return nil
	})

	// The second node: its own new key, the region's ledger identity
	// (the first node's key) to act on the ledger with.
	b := faults.InitEmbedded(t, bin, "440300", filepath.Join(root, "b"), func(c *node.Config) {
		c.Ledger.EmbeddedDir, c.Ledger.EmbeddedURL = "", ledgerURL
		c.Ledger.KeyFile = filepath.Join(root, "a", "node.key")
	})
	// b's key takes over as a rotation does: the change signed by a's key
	// (the contract takes no unsigned one).
	{
		aKey, err := node.LoadKeyFile(filepath.Join(root, "a", "node.key"))
		if err != nil {
			t.Fatal(err)
		}
		bKey, err := node.LoadKeyFile(filepath.Join(root, "b", "node.key"))
		if err != nil {
			t.Fatal(err)
		}
		k, err := credit.SignKeyChange(aKey, "440300", bKey.Public().(ed25519.PublicKey), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := json.Marshal(k)
		if err := os.WriteFile(node.KeyChangeFile(node.DefaultConfig("440300", filepath.Join(root, "b"))), kb, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b.Start(t)
	b.WaitReady(t, time.Minute)

	aKey, err := node.LoadKeyFile(filepath.Join(root, "a", "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	bKey, err := node.LoadKeyFile(filepath.Join(root, "b", "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	aFP, bFP := node.KeyFingerprint(aKey.Public().(ed25519.PublicKey)), node.KeyFingerprint(bKey.Public().(ed25519.PublicKey))
	var msg string
	testkit.Eventually(t, 30*time.Second, func() error {
		status, e, err := readyz(ctx, a)
		if err != nil {
			return err
		}
		if status != http.StatusServiceUnavailable || e.Code != string(credit.CodeNodeKeyMismatch) {
			return fmt.Errorf("/readyz of the node whose key the ledger no longer names: %d %s %s", status, e.Code, e.Message)
		}
		msg = e.Message
		return nil
	})
	for _, want := range []string{"node key " + aFP, "is not the key the ledger records for region 440300 (" + bFP, "ccnode keys show"} {
		if !strings.Contains(msg, want) {
			t.Errorf("/readyz says %q, want it to name %q", msg, want)
		}
	}
	// A bank query is refused for that reason, whatever else it holds.
	_, bankKey, _ := ed25519.GenerateKey(rand.Reader)
	q := &credit.Query{Version: 1, Bank: "bank-x", Subject: testkit.USCC(t, "440300", 1), Categories: []credit.Category{credit.Tax},
		Purpose: credit.PurposeCreditReview, ConsentID: "c1", Nonce: "n-1", Time: time.Now()}
	if err := q.Sign(bankKey); err != nil {
		t.Fatal(err)
	}
	_, err = a.Client().Query(ctx, q)
	var se *node.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable || se.Code != credit.CodeNodeKeyMismatch {
		t.Fatalf("query at the node with the unrecorded key: %v, want 503 %s", err, credit.CodeNodeKeyMismatch)
	}
	// The node whose key the record names is ready.
	if status, e, err := readyz(ctx, b); err != nil || status != http.StatusOK {
		t.Fatalf("/readyz of the node with the recorded key: %d %s %s %v", status, e.Code, e.Message, err)
	}
}
