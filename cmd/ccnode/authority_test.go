package main

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
)

// runCLIErr runs the command in process and returns its error text.
func runCLIErr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	app := newApp()
	var out strings.Builder
	app.Writer = &out
	err := app.Run(append([]string{"ccnode"}, args...))
	return out.String(), err
}

func readPEMCerts(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*x509.Certificate
	for blk, rest := pem.Decode(b); blk != nil; blk, rest = pem.Decode(rest) {
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// TestAuthorityCreateIssue: a development authority's files, an
// enterprise certificate under it that credit's own chain check accepts
// for the USCC once the authority is registered, and refusals of bad
// input that say what was wrong.
func TestAuthorityCreateIssue(t *testing.T) {
	dir := t.TempDir()
	ca, ent := filepath.Join(dir, "ca"), filepath.Join(dir, "ent")
	u := testkit.USCC(t, "440300", 7)
	if out, err := runCLIErr(t, "authority", "create", "--name", "Shenzhen Test Authority", "--out", ca); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(out, "ccnode authority register --authority "+ca) {
		t.Errorf("create does not say how to register:\n%s", out)
	}
	if st, err := os.Stat(filepath.Join(ca, authorityKeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("authority key: %v %v, want mode 0600", st, err)
	}
	caCerts := readPEMCerts(t, filepath.Join(ca, authorityCertFile))
	if len(caCerts) != 1 || !caCerts[0].IsCA || caCerts[0].Subject.CommonName != "Shenzhen Test Authority" {
		t.Fatalf("authority certificate %+v", caCerts)
	}
	if _, err := runCLIErr(t, "authority", "issue", "--authority", ca, "--uscc", string(u), "--name", "Test Enterprise", "--out", ent); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(ent, enterpriseKeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("enterprise key: %v %v, want mode 0600", st, err)
	}
	leaf := readPEMCerts(t, filepath.Join(ent, enterpriseCert))
	if len(leaf) != 1 || leaf[0].Subject.SerialNumber != string(u) || leaf[0].IsCA {
		t.Fatalf("enterprise certificate %+v", leaf)
	}

	// A consent signed with these files is certified under the authority
	// as the node and the auditor check it.
	key, chain, err := enterpriseSigner(filepath.Join(ent, enterpriseKeyFile), filepath.Join(ent, enterpriseCert), u, leaf[0].NotBefore.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	g := credit.ConsentGrant{Version: credit.ConsentVersion, ID: "consent-x", Subject: u, Grantee: "bank-a",
		Categories: []credit.Category{credit.Tax}, Purpose: credit.PurposeCreditReview, Region: "440300",
		ValidFrom: leaf[0].NotBefore, ValidUntil: leaf[0].NotAfter}
	if err := g.SignEnterprise(key, chain, leaf[0].NotBefore.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	trust, err := credit.NewTrustSet([]credit.IdentityAuthority{{ID: credit.AuthorityID(caCerts[0].Raw), Cert: caCerts[0].Raw,
		Region: "440300", Divisions: []string{"4403"}, Status: credit.StatusActive}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ck := credit.VerifyEnterpriseChain(&g, trust); ck.Refusal != nil {
		t.Fatalf("the issued certificate does not certify the consent: %v", ck.Refusal)
	}

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"create over an existing authority", []string{"authority", "create", "--name", "X", "--out", ca}, "exists; not overwriting"},
		{"issue over an existing enterprise", []string{"authority", "issue", "--authority", ca, "--uscc", string(u), "--name", "E", "--out", ent}, "exists; not overwriting"},
		{"issue for a malformed USCC", []string{"authority", "issue", "--authority", ca, "--uscc", "91440300ABC", "--name", "E", "--out", filepath.Join(dir, "e2")}, "--uscc"},
		{"issue from a folder that is no authority", []string{"authority", "issue", "--authority", ent, "--uscc", string(u), "--name", "E", "--out", filepath.Join(dir, "e3")}, "authority.key"},
		{"issue beyond the authority's validity", []string{"authority", "issue", "--authority", ca, "--uscc", string(u), "--name", "E", "--valid-for", "200000h", "--out", filepath.Join(dir, "e4")}, "ends after the authority's certificate"},
		{"register an enterprise certificate", []string{"authority", "register", "--cert", filepath.Join(ent, enterpriseCert)}, "is not a CA certificate"},
		{"register a key as certificate", []string{"authority", "register", "--cert", filepath.Join(ca, authorityKeyFile)}, "holds a private key, not a certificate"},
		{"register without naming it", []string{"authority", "register"}, "name the authority"},
		{"revoke a CA certificate", []string{"authority", "revoke", "--cert", filepath.Join(ca, authorityCertFile)}, "is a CA certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runCLIErr(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// TestConsentGrantRefusesBadSigner: consent grant says what is wrong with
// the enterprise's key or certificate before it sends anything.
func TestConsentGrantRefusesBadSigner(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "must not be reached", http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	ca, ent, other := filepath.Join(dir, "ca"), filepath.Join(dir, "ent"), filepath.Join(dir, "other")
	u := testkit.USCC(t, "440300", 1)
	u2 := testkit.USCC(t, "440300", 2)
	for _, args := range [][]string{
		{"authority", "create", "--name", "A", "--out", ca},
		{"authority", "issue", "--authority", ca, "--uscc", string(u), "--name", "E", "--out", ent},
		{"authority", "issue", "--authority", ca, "--uscc", string(u2), "--name", "F", "--out", other},
	} {
		if _, err := runCLIErr(t, args...); err != nil {
			t.Fatal(err)
		}
	}
	key, cert := filepath.Join(ent, enterpriseKeyFile), filepath.Join(ent, enterpriseCert)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a PEM file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		key, cert string
		uscc      credit.USCC
		want      string
	}{
		{"certificate for another USCC", key, cert, u2, "is for USCC \"" + string(u) + "\", not " + string(u2)},
		{"key not matching the certificate", filepath.Join(other, enterpriseKeyFile), cert, u, "does not match certificate"},
		{"key file given as certificate", key, key, u, "holds a private key, not a certificate"},
		{"certificate given as key", cert, cert, u, "holds a certificate, not a private key"},
		{"not PEM", key, garbage, u, "no PEM CERTIFICATE block"},
		{"the authority's certificate", filepath.Join(ca, authorityKeyFile), filepath.Join(ca, authorityCertFile), u, "is a CA certificate"},
		{"missing key", filepath.Join(dir, "none.key"), cert, u, "ccnode authority issue"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runCLIErr(t, "consent", "grant", "--admin", srv.URL, "--enterprise-key", tc.key, "--enterprise-cert", tc.cert,
				"--uscc", string(tc.uscc), "--bank", "bank-a", "--region", "440300", "--categories", "tax", "--out", filepath.Join(dir, "c.json"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one saying %q", err, tc.want)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("consent grant reached the node %d times with a bad signer", n)
	}
}
