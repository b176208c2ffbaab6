package consortium

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// Every region's bank API serves TLS under the consortium's one
// development CA: the CA file alone (as `ccnode query --ca-file` loads
// it) trusts every node, a client without it is refused the handshake,
// and plain HTTP gets no answer. In a kept folder the files are where the
// demo tells users to find them, the keys owner-only.
func TestBankAPIsServeTLSUnderOneCA(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, err := Start(ctx, Options{Dir: dir, Logger: testkit.LoggerAt(t, slog.LevelWarn), Tune: fastTune, Mocknet: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if want := filepath.Join(dir, "tls", CAFileName); c.CAFile != want {
		t.Fatalf("CA file %s, want %s", c.CAFile, want)
	}
	tc, err := node.ClientTLS(c.CAFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	fromFile := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	defer fromFile.CloseIdleConnections()
	for _, r := range c.Regions {
		url := r.Node.HTTPURL()
		if !strings.HasPrefix(url, "https://127.0.0.1:") {
			t.Fatalf("region %s's bank API is %s, want https on loopback", r.ID, url)
		}
		if _, err := c.Client(r).ConsentStatus(ctx, "consent-none"); !isCode(err, credit.CodeNotFound) {
			t.Errorf("region %s through Consortium.Client: %v, want not_found", r.ID, err)
		}
		resp, err := fromFile.Get(url + "/healthz")
		if err != nil {
			t.Fatalf("region %s with the CA file: %v", r.ID, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("region %s /healthz: %s", r.ID, resp.Status)
		}
		// The system's roots do not know a development CA.
		var ua x509.UnknownAuthorityError
		if _, err := http.Get(url + "/healthz"); !errors.As(err, &ua) {
			t.Errorf("region %s without the CA file: %v, want an unknown authority", r.ID, err)
		}
		plain := &node.Client{Base: "http://" + r.Node.HTTPAddr()}
		if _, err := plain.ConsentStatus(ctx, "consent-none"); err == nil || isCode(err, credit.CodeNotFound) {
			t.Errorf("region %s over plain HTTP: %v, want no answer", r.ID, err)
		}
		key := filepath.Join(dir, "tls", string(r.ID)+".key")
		if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", key, fi, err)
		}
	}
}
