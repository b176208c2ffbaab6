package p2p

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
)

// ErrBadKey: a key file holds no ed25519 key, or a key does not match the
// peer id it is presented with.
var ErrBadKey = errors.New("bad ed25519 key")

// LoadOrCreateKey reads the node's ed25519 identity key (PKCS#8 PEM),
// creating it with mode 0600 when the file does not exist. The same key is
// the libp2p identity and signs receipts.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	key, err := LoadKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return GenerateKeyFile(path)
	}
	return key, err
}

// GenerateKeyFile writes a new ed25519 key as PKCS#8 PEM (mode 0600) and
// refuses to overwrite an existing file.
func GenerateKeyFile(path string) (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return key, WriteKeyFile(path, key)
}

// WriteKeyFile writes key as PKCS#8 PEM with mode 0600. O_EXCL: two
// processes racing to create a key must not end up with different
// identities, and an existing identity is never overwritten.
func WriteKeyFile(path string, key ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("key %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("key %s: %w", path, err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return fmt.Errorf("key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("key %s: %w", path, err)
	}
	return nil
}

// LoadKeyFile reads an ed25519 key written by WriteKeyFile (or by
// openssl genpkey -algorithm ed25519). A missing file wraps fs.ErrNotExist;
// a file that holds no ed25519 key wraps ErrBadKey.
func LoadKeyFile(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("key %s: %w: no PEM block", path, ErrBadKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w: %w", path, ErrBadKey, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key %s: %w: %T", path, ErrBadKey, k)
	}
	return ek, nil
}

// PeerID is the libp2p peer id of an ed25519 public key: what a region's
// member record names.
func PeerID(pub ed25519.PublicKey) (peer.ID, error) {
	pk, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	return peer.IDFromPublicKey(pk)
}

func libp2pKey(key ed25519.PrivateKey) (crypto.PrivKey, error) {
	sk, err := crypto.UnmarshalEd25519PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	return sk, nil
}

// LoadPSK reads a private-network key in the go-libp2p v1 format
// ("/key/swarm/psk/1.0.0/", encoding, key).
func LoadPSK(path string) (pnet.PSK, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("psk: %w", err)
	}
	defer f.Close()
	psk, err := pnet.DecodeV1PSK(f)
	if err != nil {
		return nil, fmt.Errorf("psk %s: %w", path, err)
	}
	return psk, nil
}
