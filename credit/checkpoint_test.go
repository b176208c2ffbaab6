package credit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// replaceNoteSig swaps the signature bytes of a one-signature note,
// keeping its key name and hash.
func replaceNoteSig(t *testing.T, n string, sig []byte) string {
	t.Helper()
	i := strings.LastIndex(n, " ")
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(n[i+1:], "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return n[:i+1] + base64.StdEncoding.EncodeToString(append(raw[:4:4], sig...)) + "\n"
}

func TestCheckpointOrigin(t *testing.T) {
	o, err := CheckpointOrigin("prd-credit", "440300")
	if err != nil || o != "ccnode/prd-credit/440300" {
		t.Fatalf("CheckpointOrigin = %q, %v", o, err)
	}
	if nw, r, err := ParseCheckpointOrigin(o); err != nil || nw != "prd-credit" || r != "440300" {
		t.Fatalf("ParseCheckpointOrigin(%q) = %q, %q, %v", o, nw, r, err)
	}
	for _, bad := range []string{"", "a b", "a+b", "a/b", "-x"} {
		if _, err := CheckpointOrigin(bad, "440300"); err == nil {
			t.Errorf("network %q accepted", bad)
		}
	}
	for _, bad := range []string{"", "ccnode/x", "other/x/440300", "ccnode/x/y/440300", "ccnode//440300", "ccnode/x/AB"} {
		if _, _, err := ParseCheckpointOrigin(bad); err == nil {
			t.Errorf("origin %q accepted", bad)
		}
	}
}

// TestCheckpointStandardVerifier: a signed checkpoint is a C2SP signed
// note that x/mod/sumdb/note and transparency-dev/formats verify alone,
// given the verifier key built from the region's public key.
func TestCheckpointStandardVerifier(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	root := bytes.Repeat([]byte{7}, 32)
	cp := Checkpoint{Region: "440300", Size: 42, Root: root}
	if err := cp.Sign("prd-credit", key); err != nil {
		t.Fatal(err)
	}
	want := "ccnode/prd-credit/440300\n42\n" + base64.StdEncoding.EncodeToString(root) + "\n\n— ccnode/prd-credit/440300 "
	if !strings.HasPrefix(cp.Note, want) {
		t.Fatalf("note:\n%s\nwant prefix:\n%s", cp.Note, want)
	}
	vkey, err := note.NewEd25519VerifierKey("ccnode/prd-credit/440300", pub)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := CheckpointVerifierKey("ccnode/prd-credit/440300", pub); err != nil || got != vkey {
		t.Fatalf("CheckpointVerifierKey = %q, %v; want %q", got, err, vkey)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	lc, _, _, err := log.ParseCheckpoint([]byte(cp.Note), "ccnode/prd-credit/440300", v)
	if err != nil {
		t.Fatalf("standard verifier refused the checkpoint: %v", err)
	}
	if lc.Size != 42 || !bytes.Equal(lc.Hash, root) {
		t.Fatalf("standard verifier read size %d root %x", lc.Size, lc.Hash)
	}
	if err := cp.Verify(pub); err != nil {
		t.Fatal(err)
	}
}

func TestCheckpointVerifyRefuses(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	_, otherKey, _ := ed25519.GenerateKey(nil)
	root := bytes.Repeat([]byte{7}, 32)
	signed := func(region RegionID, network string, size uint64, k ed25519.PrivateKey) Checkpoint {
		t.Helper()
		c := Checkpoint{Region: region, Size: size, Root: root}
		if err := c.Sign(network, k); err != nil {
			t.Fatal(err)
		}
		return c
	}
	good := signed("440300", "prd-credit", 42, key)
	tests := []struct {
		name string
		cp   func() Checkpoint
	}{
		{"signed by another key", func() Checkpoint { return signed("440300", "prd-credit", 42, otherKey) }},
		{"size field altered", func() Checkpoint { c := good; c.Size = 43; return c }},
		{"root field altered", func() Checkpoint { c := good; c.Root = bytes.Repeat([]byte{8}, 32); return c }},
		{"size in note altered", func() Checkpoint {
			c := good
			c.Note = strings.Replace(c.Note, "\n42\n", "\n43\n", 1)
			c.Size = 43
			return c
		}},
		{"another region's origin", func() Checkpoint { c := signed("440100", "prd-credit", 42, key); c.Region = "440300"; return c }},
		{"no note", func() Checkpoint { c := good; c.Note = ""; return c }},
		{"extension line", func() Checkpoint {
			c := Checkpoint{Region: "440300", Size: 42, Root: root}
			text := string(log.Checkpoint{Origin: "ccnode/prd-credit/440300", Size: 42, Hash: root}.Marshal()) + "extra\n"
			v, _ := verifierFor("ccnode/prd-credit/440300", pub)
			b, err := note.Sign(&note.Note{Text: text}, noteSigner{name: "ccnode/prd-credit/440300", hash: v.KeyHash(), key: key})
			if err != nil {
				t.Fatal(err)
			}
			c.Note = string(b)
			return c
		}},
		{"signature repeated", func() Checkpoint {
			c := good
			c.Note += c.Note[strings.LastIndex(c.Note[:len(c.Note)-1], "\n")+1:]
			return c
		}},
		{"a stranger's cosignature", func() Checkpoint {
			c := good
			c.Note += "— witness " + base64.StdEncoding.EncodeToString(make([]byte, 68)) + "\n"
			return c
		}},
		{"ack signature in the note", func() Checkpoint { c := good; c.Note = replaceNoteSig(t, c.Note, make([]byte, 64)); return c }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cp()
			if err := c.Verify(pub); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("Verify = %v, want ErrBadSignature", err)
			}
		})
	}
}

// FuzzCheckpointVerify: a note read from the ledger never panics Verify,
// and one Verify accepts is one the standard verifier accepts with the
// same size and root.
func FuzzCheckpointVerify(f *testing.F) {
	seed := bytes.Repeat([]byte{3}, ed25519.SeedSize)
	key := ed25519.NewKeyFromSeed(seed)
	pub := key.Public().(ed25519.PublicKey)
	good := Checkpoint{Region: "440300", Size: 42, Root: bytes.Repeat([]byte{7}, 32)}
	if err := good.Sign("prd-credit", key); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Note, uint64(42))
	f.Add(strings.Replace(good.Note, "42", "43", 1), uint64(43))
	f.Add("ccnode/prd-credit/440300\n\n\n", uint64(0))
	f.Fuzz(func(t *testing.T, n string, size uint64) {
		c := Checkpoint{Region: "440300", Size: size, Root: good.Root, Note: n}
		if c.Verify(pub) != nil {
			return
		}
		vkey, _ := CheckpointVerifierKey("ccnode/prd-credit/440300", pub)
		v, _ := note.NewVerifier(vkey)
		lc, _, _, err := log.ParseCheckpoint([]byte(n), "ccnode/prd-credit/440300", v)
		if err != nil || lc.Size != size || !bytes.Equal(lc.Hash, good.Root) {
			t.Fatalf("Verify accepted a note the standard verifier reads as %+v, %v", lc, err)
		}
	})
}
