package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

func initRegion(t *testing.T, bin, region, dir string) string {
	t.Helper()
	out, err := exec.Command(bin, "init", "--region", region, "--dir", dir, "--http-addr", "127.0.0.1:0").CombinedOutput()
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	return string(out)
}

// TestKeysShow: `keys show` prints the peer id and public key a member
// record holds (base64, as the bootstrap file wants), the hex init
// printed, the checkpoint verifier key and a fingerprint, the same from
// --config and --key-file.
func TestKeysShow(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := testkit.CCNode(t)
	dir := t.TempDir()
	initOut := initRegion(t, bin, "440100", dir)
	key, err := node.LoadKeyFile(filepath.Join(dir, "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	pid, _ := node.PeerID(pub)
	origin, _ := credit.CheckpointOrigin(node.DefaultNetworkID, "440100")
	vkey, _ := credit.CheckpointVerifierKey(origin, pub)
	// init prints the key in base64, the form a bootstrap file and a
	// ledger record take.
	b64Init := regexp.MustCompile(`public key ([A-Za-z0-9+/]{43}=)`).FindStringSubmatch(initOut)
	if b64Init == nil || !strings.Contains(initOut, "peer id:   "+pid) {
		t.Fatalf("init printed no public key or peer id %s:\n%s", pid, initOut)
	}

	var shown []keyInfo
	for _, args := range [][]string{
		{"keys", "show", "--json", "--config", filepath.Join(dir, "ccnode.yaml")},
		{"keys", "show", "--json", "--key-file", filepath.Join(dir, "node.key"), "--region", "440100"},
	} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		var ki keyInfo
		if err := json.Unmarshal(out, &ki); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		shown = append(shown, ki)
	}
	ki := shown[0]
	if shown[1] != ki {
		t.Fatalf("--config and --key-file disagree:\n%+v\n%+v", shown[0], shown[1])
	}
	// The base64 form is what a bootstrap file's member record decodes.
	var m credit.RegionMember
	if err := json.Unmarshal([]byte(fmt.Sprintf(`{"peer_id":%q,"pub_key":%q}`, ki.PeerID, ki.PubKey)), &m); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.PubKey, pub) || m.PeerID != pid || ki.PubKey != b64Init[1] || ki.PubKeyHex != hex.EncodeToString(pub) || ki.VerifierKey != vkey ||
		!strings.HasPrefix(ki.Fingerprint, "SHA256:") {
		t.Fatalf("keys show = %+v; want peer %s, pub %s (init printed %s), verifier %s", ki, pid, base64.StdEncoding.EncodeToString(pub), b64Init[1], vkey)
	}
	out, err := exec.Command(bin, "keys", "show", "--config", filepath.Join(dir, "ccnode.yaml")).Output()
	if err != nil || !strings.Contains(string(out), pid) || !strings.Contains(string(out), vkey) || strings.Contains(string(out), "PRIVATE") {
		t.Fatalf("keys show (text): %v\n%s", err, out)
	}
}

// TestMissingKeyNamesInit: a config whose key file is missing makes run
// (and keys show) name the command that makes one, not an open error.
func TestMissingKeyNamesInit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := testkit.CCNode(t)
	dir := t.TempDir()
	initRegion(t, bin, "440300", dir)
	key := filepath.Join(dir, "node.key")
	os.Remove(key)
	want := fmt.Sprintf("no node key at %s: create one with `ccnode init --region 440300 --dir %s`", key, dir)
	for _, args := range [][]string{
		{"run", "--config", filepath.Join(dir, "ccnode.yaml")},
		{"keys", "show", "--config", filepath.Join(dir, "ccnode.yaml")},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) {
			t.Fatalf("%v: %v\n%s\nwant %q", args, err, out, want)
		}
	}
}

// TestInitChecksFlags: init refuses a region that is not a known division
// code (it accepted `guangzhou`) and a bad flag, naming the flag and
// writing nothing; run refuses a config whose region is not one.
func TestInitChecksFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := testkit.CCNode(t)
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o600)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--region", "guangzhou"}, `--region "guangzhou" is not a six-digit division code; known regions: 440100 Guangzhou, 440300 Shenzhen`},
		{[]string{"--region", "110000"}, `--region "110000" is not a division code of a region this build knows`},
		{[]string{"--region", "440300", "--http-addr", "nonsense"}, "--http-addr: address nonsense: missing port"},
		{[]string{"--region", "440300", "--http-addr", "127.0.0.1:99999"}, `--http-addr: address 127.0.0.1:99999: port "99999"`},
		{[]string{"--region", "440300", "--admin-addr", "bad_host:1"}, `--admin-addr: address bad_host:1: host "bad_host"`},
		{[]string{"--region", "440300", "--fabric-gateway", filepath.Join(t.TempDir(), "gw.yaml")}, "--fabric-gateway: stat "},
		{[]string{"--region", "440300", "--dir", notDir}, "--dir " + notDir + ": not a folder"},
	} {
		dir := filepath.Join(t.TempDir(), "n")
		args := append([]string{"init", "--dir", dir}, c.args...)
		if slices.Index(c.args, "--dir") >= 0 {
			args = append([]string{"init"}, c.args...)
		}
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Fatalf("%v: %v\n%s\nwant %q", args, err, out, c.want)
		}
		if _, err := os.Stat(filepath.Join(dir, "node.key")); err == nil {
			t.Fatalf("%v: refused, but wrote a key", args)
		}
	}
	// A district of a known city is a region of its own.
	initRegion(t, bin, "440305", t.TempDir())

	dir := t.TempDir()
	initRegion(t, bin, "440300", dir)
	cfg := filepath.Join(dir, "ccnode.yaml")
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, bytes.Replace(b, []byte(`region: "440300"`), []byte(`region: "guangzhou"`), 1), 0o600)
	out, err := exec.Command(bin, "run", "--config", cfg).CombinedOutput()
	if want := `config region "guangzhou" is not a six-digit division code`; err == nil || !strings.Contains(string(out), want) {
		t.Fatalf("run with region guangzhou: %v\n%s\nwant %q", err, out, want)
	}
}
