package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// The independent Python client (node/bankclient/python), written from
// credit/SPEC.md alone, must reproduce the signing vectors and then sign a
// query, verify every receipt and an anchored inclusion proof of a live
// `ccnode run`. It is the check that the spec is enough to integrate.

const (
	pyClient  = "../../node/bankclient/python/ccnode_client.py"
	pyVectors = "../../credit/testdata/vectors.json"
)

// python3WithCryptography returns a python3 that imports cryptography. It
// skips when there is none, except in CI (CI=true), where .ci/run installs
// python3-cryptography and a missing one is a failure.
func python3WithCryptography(t *testing.T) string {
	t.Helper()
	// The python3 on PATH first; then Debian's, where .ci/run installs
	// python3-cryptography (a PATH may put another Python first).
	candidates := []string{"/usr/bin/python3"}
	if py, err := exec.LookPath("python3"); err == nil {
		candidates = append([]string{py}, candidates...)
	}
	var tried []string
	for _, py := range candidates {
		out, err := exec.Command(py, "-c", "import cryptography").CombinedOutput()
		if err == nil {
			return py
		}
		tried = append(tried, fmt.Sprintf("%s: %v %s", py, err, strings.TrimSpace(string(out))))
	}
	msg := "the Python bank client needs python3 with cryptography (Debian: python3-cryptography); tried " + strings.Join(tried, "; ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (.ci/run installs it)")
	}
	t.Skip("skipping: " + msg)
	return ""
}

func TestPythonClientVectors(t *testing.T) {
	py := python3WithCryptography(t)
	out, err := exec.Command(py, pyClient, "--vectors", pyVectors).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "checks passed") {
		t.Fatalf("python client --vectors: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func TestPythonClientAgainstNode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	py := python3WithCryptography(t)
	bin := testkit.CCNode(t)
	dir := t.TempDir()
	cli := mustCLI(t, bin)
	cli("init", "--region", "440300", "--dir", dir, "--tls", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
	cfgPath, caFile, adminTok := filepath.Join(dir, "ccnode.yaml"), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "operator.token")

	// The subject's records, imported before the node starts: numbers,
	// Chinese text and characters the canonical encoding escapes, so the
	// client's report digest exercises every rule of the spec's section 6.
	u := testkit.USCC(t, "440300", 7)
	feed := filepath.Join(dir, "feed.jsonl")
	var lines []string
	for i, r := range []struct{ cat, date, attrs string }{
		{"registration", "2016-05-04", `{"name":"深圳市测试有限公司","capital_cny":5000000}`},
		{"penalty", "2023-03-10", `{"amount_cny":3753.50,"status":"已履行","note":"a \"quoted\"\ttab <&> \u2028 x","z":{"b":1e3,"a":[1,-0.0,null]}}`},
		{"tax", "2024-04-15", `{"rating":"A","paid_cny":12000.00}`},
		{"judicial", "2022-01-01", `{"case":"outside the consent"}`},
	} {
		lines = append(lines, fmt.Sprintf(`{"uscc":%q,"source":"sz-test","source_id":"ID-%d","category":%q,"date":%q,"attrs":%s}`, u, i, r.cat, r.date, r.attrs))
	}
	if err := os.WriteFile(feed, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli("import", "--quiet", "--config", cfgPath, feed)

	_, url, adminURL := runNode(t, bin, "--config", cfgPath, "--anchor-interval", "150ms", "--log-level", "warn")
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(caFile); err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("CA file %s: %v", caFile, err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	testkit.Eventually(t, 15*time.Second, func() error {
		resp, err := hc.Get(url + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})

	// The bank: a key in the PEM file ccnode writes, registered by the
	// region's operator on the admin API.
	_, bankKey, _ := ed25519.GenerateKey(rand.Reader)
	bankKeyFile := filepath.Join(dir, "bank-py.key")
	if err := node.WriteKeyFile(bankKeyFile, bankKey); err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(adminTok)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"id": "bank-py", "pub_key": bankKey.Public().(ed25519.PublicKey)})
	req, _ := http.NewRequest("POST", adminURL+"/v1/banks", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("register bank: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// The enterprise's consent, certified by a registered authority.
	caDir, entDir := filepath.Join(dir, "authority"), filepath.Join(dir, "enterprise")
	cli("authority", "create", "--name", "Python Test Authority", "--out", caDir)
	cli("authority", "issue", "--authority", caDir, "--uscc", string(u), "--name", "Test Enterprise", "--out", entDir)
	cli("authority", "register", "--admin", adminURL, "--operator-token-file", adminTok, "--authority", caDir)
	consentFile := filepath.Join(dir, "consent.json")
	cli("consent", "grant", "--admin", adminURL, "--operator-token-file", adminTok,
		"--enterprise-key", filepath.Join(entDir, "enterprise.key"), "--enterprise-cert", filepath.Join(entDir, "enterprise.pem"),
		"--uscc", string(u), "--bank", "bank-py", "--region", "440300", "--categories", "tax,penalty,registration", "--out", consentFile)

	// What a bank is given out of band: the member regions' keys, here
	// from the region operator's `ccnode keys show`.
	var ki struct {
		PubKey string `json:"pub_key"`
	}
	if err := json.Unmarshal([]byte(cli("keys", "show", "--json", "--config", cfgPath)), &ki); err != nil || ki.PubKey == "" {
		t.Fatalf("keys show: %v", err)
	}
	writeRegionKeys := func(name, pub string) string {
		p := filepath.Join(dir, name)
		b, _ := json.Marshal(map[string]any{"regions": []map[string]string{{"id": "440300", "pub_key": pub}}})
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	regionKeys := writeRegionKeys("regions.json", ki.PubKey)

	client := func(keys string, extra ...string) (string, error) {
		args := append([]string{pyClient, "--node", url, "--ca-file", caFile, "--bank", "bank-py", "--key", bankKeyFile,
			"--consent", consentFile, "--region-keys", keys, "--network", node.DefaultNetworkID, "--proof-wait", "30"}, extra...)
		out, err := exec.Command(py, args...).CombinedOutput()
		return string(out), err
	}
	out, err := client(regionKeys)
	if err != nil || !strings.HasSuffix(strings.TrimSpace(out), "verified") {
		t.Fatalf("python client against the node: %v\n%s", err, out)
	}
	for _, want := range []string{"ok     3 records", "inclusion: receipt", "ccnode/" + node.DefaultNetworkID + "/440300"} {
		if !strings.Contains(out, want) {
			t.Errorf("python client output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("python client:\n%s", out)

	// It verifies, rather than trusts: under another key for the region
	// the consent's countersignature fails before anything is sent, and the
	// node's refusals come back with their code.
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	if out, err := client(writeRegionKeys("wrong.json", base64.StdEncoding.EncodeToString(otherKey.Public().(ed25519.PublicKey)))); err == nil ||
		!strings.Contains(out, "countersignature of region 440300: signature does not verify") {
		t.Fatalf("python client with a wrong region key: %v\n%s", err, out)
	}
	if out, err := client(regionKeys, "--categories", "customs"); err == nil || !strings.Contains(out, "category_out_of_scope") {
		t.Fatalf("python client, query outside the consent: %v\n%s", err, out)
	}
	// Neither was answered: the next query is leaf 1, proved with a
	// non-empty path.
	if out, err := client(regionKeys); err != nil || !strings.Contains(out, "is leaf 1 of") || strings.Contains(out, "(proof of 0 hashes)") {
		t.Fatalf("python client, third query: %v\n%s", err, out)
	} else {
		t.Logf("python client, third query:\n%s", out)
	}
	// past_keys: the node's key as the region's key until a time after
	// the query verifies everything; until a time before it, the receipt
	// is checked under the "current" other key and fails.
	other := base64.StdEncoding.EncodeToString(otherKey.Public().(ed25519.PublicKey))
	writePast := func(name, until string) string {
		p := filepath.Join(dir, name)
		b, _ := json.Marshal(map[string]any{"regions": []map[string]any{{"id": "440300", "pub_key": other,
			"past_keys": []map[string]string{{"pub_key": ki.PubKey, "until": until}}}}})
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if out, err := client(writePast("past-later.json", "2100-01-01T00:00:00Z")); err != nil || !strings.HasSuffix(strings.TrimSpace(out), "verified") {
		t.Fatalf("python client, the node's key past until 2100: %v\n%s", err, out)
	}
	if out, err := client(writePast("past-earlier.json", "2000-01-01T00:00:00.5Z")); err == nil || !strings.Contains(out, "signature does not verify") {
		t.Fatalf("python client, the node's key past since 2000: %v\n%s", err, out)
	}
}

// TestPythonClientAgainstDemo runs the Python client for each bank of the
// demo consortium (`ccnode demo --keep`: three regions answering over
// libp2p): receipts signed by other regions than the home one, each
// acknowledged by it, and receipts of regions with no records.
func TestPythonClientAgainstDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	py := python3WithCryptography(t)
	bin := testkit.CCNode(t)
	dir := filepath.Join(t.TempDir(), "demo")
	demo := exec.Command(bin, "demo", "--keep", "--data-dir", dir, "--enterprises", "20", "--log-level", "error")
	stderr, err := demo.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	demo.Stdout = io.Discard
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { demo.Process.Kill(); demo.Wait() })
	// The demo prints, once its consortium serves, a `ccnode query` line
	// per bank: the node, CA, bank, key and consent the client takes.
	tries := make(chan []string)
	go func() {
		defer close(tries)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if _, cmd, ok := strings.Cut(sc.Text(), "try: ccnode query "); ok {
				tries <- strings.Fields(cmd)
			}
		}
	}()
	var queries [][]string
	for len(queries) < 2 {
		select {
		case q, ok := <-tries:
			if !ok {
				t.Fatalf("the demo ended after %d query lines", len(queries))
			}
			queries = append(queries, q)
		case <-time.After(3 * time.Minute):
			t.Fatal("the demo printed no query lines within 3 minutes")
		}
	}
	var regions []map[string]string
	for _, r := range []string{"440100", "440300", "440400"} {
		var ki struct {
			PubKey string `json:"pub_key"`
		}
		out, err := exec.Command(bin, "keys", "show", "--json", "--key-file", filepath.Join(dir, r, "node.key")).Output()
		if err != nil || json.Unmarshal(out, &ki) != nil {
			t.Fatalf("keys show for %s: %v %s", r, err, out)
		}
		regions = append(regions, map[string]string{"id": r, "pub_key": ki.PubKey})
	}
	keys := filepath.Join(t.TempDir(), "regions.json")
	b, _ := json.Marshal(map[string]any{"regions": regions})
	if err := os.WriteFile(keys, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, q := range queries {
		args := append([]string{pyClient}, q...)
		args = append(args, "--region-keys", keys, "--network", node.DefaultNetworkID)
		out, err := exec.Command(py, args...).CombinedOutput()
		if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "verified") || strings.Count(string(out), "ack verified") != 3 {
			t.Fatalf("python client %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("python client:\n%s", out)
	}
}
