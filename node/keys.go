package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrBadKeyFile: the key file is not a PKCS#8 PEM ed25519 private key.
var ErrBadKeyFile = errors.New("not a PKCS#8 PEM ed25519 private key")

// GenerateKeyFile writes a new ed25519 key as PKCS#8 PEM (mode 0600) and
// refuses to overwrite an existing file.
func GenerateKeyFile(path string) (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return key, WriteKeyFile(path, key)
}

// WriteKeyFile writes key as PKCS#8 PEM, refusing to overwrite.
func WriteKeyFile(path string, key ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return fmt.Errorf("write key %s: %w", path, err)
	}
	return f.Close()
}

// LoadKeyFile reads an ed25519 key written by WriteKeyFile (or openssl
// genpkey -algorithm ed25519).
func LoadKeyFile(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("key %s: %w", path, ErrBadKeyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w: %w", path, ErrBadKeyFile, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key %s: %w", path, ErrBadKeyFile)
	}
	return ek, nil
}
