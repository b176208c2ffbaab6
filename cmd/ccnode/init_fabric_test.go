package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/node"
)

// writeConnectionFile writes a Fabric connection file for mspID whose
// endpoint nothing answers, with a real self-signed certificate and key
// so that it loads and dials like `ccnode fabric up`'s.
func writeConnectionFile(t *testing.T, mspID string) string {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "User1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert := filepath.Join(dir, "cert.pem")
	keyPath := filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	conn := filepath.Join(dir, "conn.yaml")
	body := fmt.Sprintf("endpoint: 127.0.0.1:1\ntls_ca_cert: %s\nmsp_id: %s\ncert_path: %s\nkey_path: %s\nchannel: ccnode\nchaincode: ccnode\n", cert, mspID, cert, keyPath)
	if err := os.WriteFile(conn, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestInitFabricUnreachableWritesNothing: init on Fabric reads the
// region's ledger record before it writes anything, so with the network
// down it fails, says so, and leaves no key, operators or config behind
// (a key written there would be one the ledger never learns).
func TestInitFabricUnreachableWritesNothing(t *testing.T) {
	bin := testkit.CCNode(t)
	dir := filepath.Join(t.TempDir(), "n")
	out, err := exec.Command(bin, "init", "--region", "440100", "--dir", dir, "--fabric-gateway", writeConnectionFile(t, "GZMSP"),
		"--ledger-timeout", "2s").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "reading region 440100's record on the ledger (is the network up?)") {
		t.Fatalf("init against an unreachable gateway: %v\n%s", err, out)
	}
	for _, f := range []string{"node.key", "operators", "ccnode.yaml", "operator.token"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("init failed but wrote %s", f)
		}
	}
	// --node-key belongs to a node on Fabric.
	out, err = exec.Command(bin, "init", "--region", "440100", "--dir", dir, "--node-key", filepath.Join(dir, "k")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--node-key: only with --fabric-gateway") {
		t.Fatalf("init --node-key without --fabric-gateway: %v\n%s", err, out)
	}
}

// TestNewFabricInitTakesTheConnectionsMSP: the config init writes for a
// node on Fabric names the connection file, no embedded ledger, and the
// connection file's MSP id — not the Region<id>MSP default, which the
// local network (GZMSP for 440100) does not know.
func TestNewFabricInitTakesTheConnectionsMSP(t *testing.T) {
	conn := writeConnectionFile(t, "GZMSP")
	// init's own flags, with an action that stops after newFabricInit.
	cmd := initCommand()
	var cfg node.Config
	cmd.Action = func(c *cli.Context) error {
		cfg = node.DefaultConfig("440100", t.TempDir())
		_, err := newFabricInit(c, &cfg)
		return err
	}
	app := &cli.App{Name: "ccnode", Commands: []*cli.Command{cmd}}
	if err := app.Run([]string{"ccnode", "init", "--region", "440100", "--fabric-gateway", conn}); err != nil {
		t.Fatal(err)
	}
	if cfg.Ledger.MSPID != "GZMSP" || cfg.Ledger.EmbeddedDir != "" || cfg.Ledger.FabricGateway != conn {
		t.Fatalf("ledger config %+v: want msp_id GZMSP, no embedded_dir, fabric_gateway %s", cfg.Ledger, conn)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// fakeRegistrar is a ledger holding one region record.
type fakeRegistrar struct {
	rec     *credit.RegionMember
	updated []credit.RegionMember
}

func (f *fakeRegistrar) Region(_ context.Context, id credit.RegionID) (credit.RegionMember, error) {
	if f.rec == nil || f.rec.ID != id {
		return credit.RegionMember{}, fmt.Errorf("region %s: %w", id, network.ErrNotFound)
	}
	return *f.rec, nil
}

func (f *fakeRegistrar) UpdateRegion(_ context.Context, r credit.RegionMember) error {
	f.updated = append(f.updated, r)
	*f.rec = r
	return nil
}

// TestRegisterNodeKey: init makes the region's record name the node's key
// (and its peer id, dropping the old node's addresses) unless it does
// already, and refuses a region that is no member or a connection file of
// another organisation.
func TestRegisterNodeKey(t *testing.T) {
	ctx := context.Background()
	_, old, _ := ed25519.GenerateKey(rand.Reader)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	oldPID, _ := node.PeerID(old.Public().(ed25519.PublicKey))
	rec := credit.RegionMember{ID: "440100", Name: "Guangzhou", MSPID: "GZMSP", PeerID: oldPID,
		PubKey: old.Public().(ed25519.PublicKey), Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}, Status: credit.StatusActive, Divisions: []string{"4401"}}
	l := &fakeRegistrar{rec: &rec}

	// Init then makes a candidate's node (errNoRecord).
	if _, err := registerNodeKey(ctx, l, "440300", "SZMSP", key, nil); !errors.Is(err, network.ErrNotFound) || !errors.Is(err, errNoRecord) ||
		!strings.Contains(err.Error(), "region 440300: no record on the ledger") {
		t.Fatalf("region without a record: %v", err)
	}
	if _, err := registerNodeKey(ctx, l, "440100", "SZMSP", key, nil); err == nil || !strings.Contains(err.Error(), "belongs to GZMSP") {
		t.Fatalf("another organisation's connection file: %v", err)
	}
	if len(l.updated) != 0 {
		t.Fatalf("a refused registration updated the record: %+v", l.updated)
	}
	changed, err := registerNodeKey(ctx, l, "440100", "GZMSP", key, nil)
	if err != nil || !changed {
		t.Fatalf("new key: changed %v, %v", changed, err)
	}
	pid, _ := node.PeerID(key.Public().(ed25519.PublicKey))
	got := l.updated[0]
	if !ed25519.PublicKey(got.PubKey).Equal(key.Public()) || got.PeerID != pid || len(got.Addrs) != 0 ||
		got.MSPID != "GZMSP" || got.Name != "Guangzhou" || got.Status != credit.StatusActive || len(got.Divisions) != 1 {
		t.Fatalf("updated record %+v: want the new key and peer id, no addresses, the rest kept", got)
	}
	if changed, err := registerNodeKey(ctx, l, "440100", "GZMSP", key, nil); err != nil || changed || len(l.updated) != 1 {
		t.Fatalf("key already registered: changed %v, %v, %d updates", changed, err, len(l.updated))
	}
}
