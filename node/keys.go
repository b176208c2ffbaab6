package node

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/p2p"
)

// A node's key is its libp2p identity and signs its receipts, so the key
// file format is p2p's; these names keep the node's API in one place for
// the commands.

// ErrBadKeyFile: the key file is not a PKCS#8 PEM ed25519 private key.
var ErrBadKeyFile = p2p.ErrBadKey

// GenerateKeyFile writes a new ed25519 key as PKCS#8 PEM (mode 0600) and
// refuses to overwrite an existing file.
func GenerateKeyFile(path string) (ed25519.PrivateKey, error) { return p2p.GenerateKeyFile(path) }

// WriteKeyFile writes key as PKCS#8 PEM, refusing to overwrite.
func WriteKeyFile(path string, key ed25519.PrivateKey) error { return p2p.WriteKeyFile(path, key) }

// LoadKeyFile reads an ed25519 key written by WriteKeyFile (or openssl
// genpkey -algorithm ed25519).
func LoadKeyFile(path string) (ed25519.PrivateKey, error) { return p2p.LoadKeyFile(path) }

// MissingKeyError: a node's key file does not exist. It names the command
// that makes one, so an operator who skipped `ccnode init` learns what to
// run instead of an open error.
type MissingKeyError struct {
	Path   string
	Region credit.RegionID
	Dir    string // the data folder init would write the key into
	Err    error
}

func (e *MissingKeyError) Error() string {
	return fmt.Sprintf("no node key at %s: create one with `ccnode init --region %s --dir %s`", e.Path, e.Region, e.Dir)
}

func (e *MissingKeyError) Unwrap() error { return e.Err }

// LoadNodeKey reads the node key cfg.KeyFile names; a missing file is a
// *MissingKeyError.
func LoadNodeKey(cfg Config) (ed25519.PrivateKey, error) {
	key, err := LoadKeyFile(cfg.KeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &MissingKeyError{Path: cfg.KeyFile, Region: cfg.Region, Dir: cfg.DataDir, Err: err}
	}
	return key, err
}
