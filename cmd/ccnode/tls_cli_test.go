package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// TestBankAPIOverTLS runs `ccnode init --tls` and `ccnode run`, and
// queries as a bank over TLS with `ccnode query --ca-file`; plain HTTP to
// the TLS listener and a client that does not trust the certificate fail
// saying why; with http.client_ca_file a bank without a client
// certificate is refused at the handshake and one with a certificate is
// answered.
func TestBankAPIOverTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := testkit.CCNode(t)
	dir := t.TempDir()
	cli := func(args ...string) (string, error) {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := cli(args...)
		if err != nil {
			t.Fatalf("ccnode %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	must("init", "--region", "440300", "--dir", dir, "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--tls")
	cfgPath, caFile := filepath.Join(dir, "ccnode.yaml"), filepath.Join(dir, "tls.crt")
	if fi, err := os.Stat(filepath.Join(dir, "tls.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("tls.key: %v, mode %v", err, fi.Mode())
	}

	start := func() (string, string, func()) {
		t.Helper()
		run, url, admin := runNode(t, bin, "--config", cfgPath, "--log-level", "warn")
		if !strings.HasPrefix(url, "https://") {
			t.Fatalf("run: bank API on %q, want https://", url)
		}
		return url, admin, func() { run.Process.Kill(); run.Wait() }
	}
	url, adminURL, stop := start()
	tc, err := node.ClientTLS(caFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	tokFile := filepath.Join(dir, "operator.token")
	tok, _ := os.ReadFile(tokFile)
	cl := &node.Client{Base: url, Admin: adminURL, OperatorToken: strings.TrimSpace(string(tok)), HTTP: &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}}
	waitServing(t, cl)

	_, bankKey, _ := ed25519.GenerateKey(rand.Reader)
	ctx := context.Background()
	if err := cl.RegisterBank(ctx, credit.BankMember{ID: "bank-a", PubKey: bankKey.Public().(ed25519.PublicKey)}); err != nil {
		t.Fatal(err)
	}
	bankKeyFile := filepath.Join(dir, "bank-a.key")
	if err := node.WriteKeyFile(bankKeyFile, bankKey); err != nil {
		t.Fatal(err)
	}
	consentFile := filepath.Join(dir, "consent.json")
	u := testkit.USCC(t, "440300", 1)
	caDir, entDir := filepath.Join(dir, "authority"), filepath.Join(dir, "enterprise")
	must("authority", "create", "--name", "Shenzhen Test Authority", "--out", caDir)
	must("authority", "issue", "--authority", caDir, "--uscc", string(u), "--name", "Test Enterprise", "--out", entDir)
	must("authority", "register", "--admin", adminURL, "--operator-token-file", tokFile, "--authority", caDir)
	must("consent", "grant", "--admin", adminURL, "--operator-token-file", tokFile,
		"--enterprise-key", filepath.Join(entDir, "enterprise.key"), "--enterprise-cert", filepath.Join(entDir, "enterprise.pem"),
		"--uscc", string(u), "--bank", "bank-a", "--region", "440300", "--categories", "tax,penalty", "--out", consentFile)
	query := func(url string, extra ...string) (string, error) {
		return cli(append([]string{"query", "--node", url, "--bank", "bank-a", "--key", bankKeyFile, "--consent", consentFile, "--json"}, extra...)...)
	}
	answered := func(t *testing.T, out string, err error) {
		t.Helper()
		var res node.Consolidated
		if err != nil || json.Unmarshal([]byte(out), &res) != nil || len(res.Regions) != 1 || res.Regions[0].Status != node.StatusOK {
			t.Fatalf("query over TLS: %v\n%s", err, out)
		}
	}

	t.Run("bank query over TLS", func(t *testing.T) {
		out, err := query(url, "--ca-file", caFile)
		answered(t, out, err)
	})
	t.Run("certificate not trusted", func(t *testing.T) {
		out, err := query(url)
		if err == nil || !strings.Contains(out, "certificate signed by unknown authority") {
			t.Fatalf("query without --ca-file: %v\n%s", err, out)
		}
	})
	t.Run("plain HTTP to the TLS listener", func(t *testing.T) {
		plain := "http://" + strings.TrimPrefix(url, "https://")
		out, err := query(plain)
		// Reset while the body is sent (with a hint), or the listener's 400.
		if err == nil || !strings.Contains(out, "use https://") && !strings.Contains(out, "HTTP request to an HTTPS server") {
			t.Fatalf("plain HTTP query: %v\n%s", err, out)
		}
		resp, err := http.Get(plain + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "HTTP request to an HTTPS server") {
			t.Fatalf("plain GET: HTTP %d %s", resp.StatusCode, b)
		}
	})

	t.Run("client certificate required", func(t *testing.T) {
		caCert, caKey := devCA(t, dir)
		bankCert, bankKeyPEM := issueClientCert(t, dir, caCert, caKey, "bank-a")
		editConfig(t, cfgPath, func(c *node.Config) { c.HTTP.ClientCAFile = filepath.Join(dir, "clients-ca.crt") })
		stop()
		url, _, _ := start()
		testkit.Eventually(t, 10*time.Second, func() error {
			_, err := query(url, "--ca-file", caFile, "--client-cert", bankCert, "--client-key", bankKeyPEM)
			return err
		})
		out, err := query(url, "--ca-file", caFile, "--client-cert", bankCert, "--client-key", bankKeyPEM)
		answered(t, out, err)
		out, err = query(url, "--ca-file", caFile)
		// In TLS 1.3 the server judges the client's certificate after the
		// client has finished its handshake: the client learns of the
		// refusal from the server's alert or, when it is still writing
		// its request, from the closed connection.
		refused := strings.Contains(out, "certificate required") || strings.Contains(out, "broken pipe") ||
			strings.Contains(out, "connection reset")
		if err == nil || !refused || strings.Contains(out, `"regions"`) {
			t.Fatalf("query without a client certificate: %v\n%s", err, out)
		}
	})
}

func editConfig(t *testing.T, path string, edit func(*node.Config)) {
	t.Helper()
	c, err := node.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	edit(&c)
	b, _ := yaml.Marshal(c)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// devCA writes a CA for banks' client certificates (dir/clients-ca.crt).
func devCA(t *testing.T, dir string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "banks CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "clients-ca.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func issueClientCert(t *testing.T, dir string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+"-tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600)
	return certFile, keyFile
}
