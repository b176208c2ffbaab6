package bankclient_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node/bankclient"
)

// TestVerifyInclusionMatchesReference: the standard-library verifier
// accepts every inclusion proof transparency-dev/merkle's reference tree
// (the library the node's log uses) makes, for every leaf of trees of 1
// to 70 leaves, refuses each with one hash changed, and agrees with the
// reference verifier on the proof checked at another index or size.
func TestVerifyInclusionMatchesReference(t *testing.T) {
	tree := testonly.New(rfc6962.DefaultHasher)
	var leaves [][]byte
	for size := uint64(1); size <= 70; size++ {
		leaf := []byte(fmt.Sprintf(`{"leaf":%d}`, size-1))
		leaves = append(leaves, leaf)
		tree.AppendData(leaf)
		root := tree.Hash()
		for i := uint64(0); i < size; i++ {
			p, err := tree.InclusionProof(i, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := bankclient.VerifyInclusion(leaves[i], i, size, p, root); err != nil {
				t.Fatalf("leaf %d of %d: %v", i, size, err)
			}
			if len(p) > 0 {
				p[len(p)/2] = rfc6962.DefaultHasher.HashLeaf([]byte("other"))
				if err := bankclient.VerifyInclusion(leaves[i], i, size, p, root); !errors.Is(err, bankclient.ErrVerify) {
					t.Fatalf("leaf %d of %d with a changed hash verified", i, size)
				}
			}
			// With another index or size, both verifiers agree.
			p, _ = tree.InclusionProof(i, size)
			for _, at := range [][2]uint64{{i + 1, size}, {i, size + 1}, {i, size - 1}, {i ^ 1, size}} {
				ours := bankclient.VerifyInclusion(leaves[i], at[0], at[1], p, root) == nil
				ref := proof.VerifyInclusion(rfc6962.DefaultHasher, at[0], at[1], rfc6962.DefaultHasher.HashLeaf(leaves[i]), p, root) == nil
				if ours != ref {
					t.Fatalf("leaf %d of %d checked at index %d of %d: ours %v, reference %v", i, size, at[0], at[1], ours, ref)
				}
			}
		}
	}
	if err := bankclient.VerifyInclusion(leaves[0], 5, 5, nil, tree.Hash()); !errors.Is(err, bankclient.ErrVerify) {
		t.Fatalf("index outside the tree: %v", err)
	}
}

// TestErrorCarriesTheRefusalCode: an error answer becomes *Error with the
// body's code and message; a body that is not the API's (a proxy's page)
// keeps the status in a code outside the closed list.
func TestErrorCarriesTheRefusalCode(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/consents/consent-revoked-1" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"code":"consent_revoked","message":"consent consent-revoked-1 was revoked"}`)
			return
		}
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html>bad gateway</html>")
	}))
	defer srv.Close()
	cl := bankclient.New(srv.URL)
	_, err := cl.ConsentStatus(context.Background(), "consent-revoked-1")
	var be *bankclient.Error
	if !errors.As(err, &be) || be.Status != 403 || be.Code != credit.CodeConsentRevoked || !strings.Contains(be.Message, "revoked") {
		t.Fatalf("got %v", err)
	}
	if !errors.Is(err, &credit.Refusal{Code: credit.CodeConsentRevoked}) || errors.Is(err, &credit.Refusal{Code: credit.CodeConsentExpired}) {
		t.Fatalf("errors.Is by code: %v", err)
	}
	_, err = cl.Checkpoint(context.Background())
	if !errors.As(err, &be) || be.Status != 502 || be.Code != "http_502" || be.Code.Known() {
		t.Fatalf("proxy page: %v", err)
	}
}

// TestTLSConfig: a CA file replaces the roots, a client certificate needs
// its key, and unreadable files say which.
func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	if _, err := bankclient.TLSConfig("", "cert.pem", ""); err == nil || !strings.Contains(err.Error(), "both") {
		t.Fatalf("certificate without key: %v", err)
	}
	empty := filepath.Join(dir, "ca.pem")
	os.WriteFile(empty, []byte("not pem"), 0o600)
	if _, err := bankclient.TLSConfig(empty, "", ""); err == nil || !strings.Contains(err.Error(), "CA file") {
		t.Fatalf("CA file without certificates: %v", err)
	}
	cfg, err := bankclient.TLSConfig("", "", "")
	if err != nil || cfg.RootCAs != nil || cfg.MinVersion < 0x0303 {
		t.Fatalf("default: %+v %v", cfg, err)
	}
}

// FuzzVerifyInclusion: on any index, size and proof a node could send,
// the standard-library verifier and transparency-dev/merkle's agree.
func FuzzVerifyInclusion(f *testing.F) {
	tree := testonly.New(rfc6962.DefaultHasher)
	for i := range 9 {
		tree.AppendData([]byte{byte(i)})
	}
	p, _ := tree.InclusionProof(3, 9)
	f.Add(uint64(3), uint64(9), []byte{3}, bytes.Join(p, nil))
	f.Add(uint64(0), uint64(1), []byte{0}, []byte{})
	f.Add(uint64(8), uint64(9), []byte{8}, bytes.Repeat([]byte{1}, 64))
	root := tree.Hash()
	f.Fuzz(func(t *testing.T, index, size uint64, leaf, flat []byte) {
		var proof [][]byte
		for len(flat) >= 32 {
			proof = append(proof, flat[:32])
			flat = flat[32:]
		}
		ours := bankclient.VerifyInclusion(leaf, index, size, proof, root) == nil
		ref := proof0(index, size, leaf, proof, root)
		if ours != ref {
			t.Fatalf("index %d size %d leaf %x proof of %d hashes: ours %v, reference %v", index, size, leaf, len(proof), ours, ref)
		}
	})
}

func proof0(index, size uint64, leaf []byte, p [][]byte, root []byte) bool {
	return proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, rfc6962.DefaultHasher.HashLeaf(leaf), p, root) == nil
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLoadTrust reads region keys in a ledger bootstrap file's shape and
// names what is wrong in a bad one.
func TestLoadTrust(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string { return writeFile(t, dir, name, body) }
	key := strings.Repeat("A", 43) + "="
	tr, err := bankclient.LoadTrust(write("ok.json", `{"regions":[{"id":"440300","pub_key":"`+key+`","name":"Shenzhen"}],"banks":[]}`))
	if err != nil || len(tr.Regions["440300"]) != 32 {
		t.Fatalf("%+v %v", tr, err)
	}
	for name, body := range map[string]string{
		"short.json": `{"regions":[{"id":"440300","pub_key":"AAAA"}]}`,
		"empty.json": `{"regions":[]}`,
		"map.json":   `{"440300":"` + key + `"}`,
	} {
		if _, err := bankclient.LoadTrust(write(name, body)); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want an error naming the file", name, err)
		}
	}
}

// TestTrustPastKeys: after a rotation, a region-keys file with past_keys
// verifies each receipt under the key of its time, and one without them
// refuses the receipts signed before; a file whose past keys are out of
// order is refused, naming the field.
func TestTrustPastKeys(t *testing.T) {
	oldPub, oldKey, _ := ed25519.GenerateKey(rand.Reader)
	newPub, newKey, _ := ed25519.GenerateKey(rand.Reader)
	rotated := time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC)
	sign := func(at time.Time, key ed25519.PrivateKey) credit.Receipt {
		r := credit.Receipt{Version: 1, ID: "r-" + at.Format(time.RFC3339), Requester: "440300", Answerer: "440100", Time: at}
		if err := r.Sign(key); err != nil {
			t.Fatal(err)
		}
		return r
	}
	before, after := sign(rotated.Add(-time.Second), oldKey), sign(rotated.Add(time.Second), newKey)
	b64 := base64.StdEncoding.EncodeToString
	dir := t.TempDir()
	write := func(name, body string) string { return writeFile(t, dir, name, body) }
	tr, err := bankclient.LoadTrust(write("keys.json", `{"regions":[{"id":"440100","pub_key":"`+b64(newPub)+`","past_keys":[{"pub_key":"`+b64(oldPub)+`","until":"`+rotated.Format(time.RFC3339Nano)+`"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []credit.Receipt{before, after} {
		if err := tr.VerifyReceipt(&r); err != nil {
			t.Errorf("receipt of %s under the file with past keys: %v", r.Time, err)
		}
	}
	current := bankclient.Trust{Regions: map[credit.RegionID]ed25519.PublicKey{"440100": newPub}}
	if err := current.VerifyReceipt(&before); !errors.Is(err, bankclient.ErrVerify) {
		t.Errorf("a receipt signed before the rotation under the current key alone: %v, want ErrVerify", err)
	}
	later := rotated.Add(-time.Hour).Format(time.RFC3339)
	bad := `{"regions":[{"id":"440100","pub_key":"` + b64(newPub) + `","past_keys":[{"pub_key":"` + b64(oldPub) + `","until":"` + rotated.Format(time.RFC3339) +
		`"},{"pub_key":"` + b64(oldPub) + `","until":"` + later + `"}]}]}`
	if _, err := bankclient.LoadTrust(write("order.json", bad)); err == nil || !strings.Contains(err.Error(), "past_keys[1]") {
		t.Errorf("past keys out of order: %v, want an error naming past_keys[1]", err)
	}
}
