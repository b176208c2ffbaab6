package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/prdcredit/ccnode/internal/atomicfile"

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

// KeyChangeFile is where `ccnode keys rotate` leaves the signed change of
// the node key in key_file, for the node to publish when it next starts.
func KeyChangeFile(cfg Config) string { return cfg.KeyFile + ".change.json" }

// RotatedLedgerKeyFile is where a rotation keeps the region's ledger
// identity when it was the node key (an embedded ledger with no
// ledger.key_file): the region goes on acting on the ledger as the
// identity it was registered with. Open uses it when ledger.key_file is
// empty and the file exists.
func RotatedLedgerKeyFile(cfg Config) string {
	return filepath.Join(filepath.Dir(cfg.KeyFile), "ledger.key")
}

// ErrRotationPending: key_file's key is a rotation not yet on the ledger.
var ErrRotationPending = errors.New("key rotation pending")

// Rotation is what RotateKey did.
type Rotation struct {
	OldKey, NewKey ed25519.PublicKey
	OldPeer        string
	NewPeer        string
	// Retired holds the old private key (0600), kept for the operator to
	// destroy once the new key is on the ledger.
	Retired string
	// LedgerKeyFile is set when the old key became the region's ledger
	// identity file (RotatedLedgerKeyFile).
	LedgerKeyFile string
	Change        credit.KeyChange
	ChangeFile    string
}

// RotateKey makes a new node key in cfg.KeyFile and the key change the
// old key signs, dated now, in KeyChangeFile; the old key moves to
// key_file.retired-<unix time>. The node publishes the change when it next
// starts (publishSelf) and serves with the new key from then on: the
// libp2p identity is fixed for a host's life, so a rotation is a restart.
func RotateKey(cfg Config, now time.Time) (Rotation, error) {
	old, err := LoadNodeKey(cfg)
	if err != nil {
		return Rotation{}, err
	}
	// A second rotation before the first is published would have an
	// unpublished key sign the change, which the contract refuses.
	if _, err := loadKeyChange(cfg, cfg.Region, old.Public().(ed25519.PublicKey)); err == nil {
		return Rotation{}, fmt.Errorf("%w: %s holds a rotation to key_file's key that the node has not published yet: start the node first", ErrRotationPending, KeyChangeFile(cfg))
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Rotation{}, err
	}
	rot := Rotation{OldKey: old.Public().(ed25519.PublicKey), NewKey: key.Public().(ed25519.PublicKey), ChangeFile: KeyChangeFile(cfg)}
	if rot.OldPeer, err = PeerID(rot.OldKey); err != nil {
		return Rotation{}, err
	}
	if rot.NewPeer, err = PeerID(rot.NewKey); err != nil {
		return Rotation{}, err
	}
	if rot.Change, err = credit.SignKeyChange(old, cfg.Region, rot.NewKey, now); err != nil {
		return Rotation{}, err
	}
	// The embedded ledger knows the region by the key it was registered
	// with: keep it as the ledger identity unless one is named already.
	if cfg.Ledger.FabricGateway == "" && cfg.Ledger.KeyFile == "" {
		p := RotatedLedgerKeyFile(cfg)
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			if err := WriteKeyFile(p, old); err != nil {
				return Rotation{}, fmt.Errorf("keeping the ledger identity: %w", err)
			}
			rot.LedgerKeyFile = p
		}
	}
	b, err := json.MarshalIndent(rot.Change, "", "  ")
	if err != nil {
		return Rotation{}, err
	}
	if err := atomicfile.ReplaceBytes(rot.ChangeFile, append(b, '\n'), 0o600); err != nil {
		return Rotation{}, fmt.Errorf("writing the key change: %w", err)
	}
	next := cfg.KeyFile + ".new"
	os.Remove(next) // a rotation stopped before its last rename
	if err := WriteKeyFile(next, key); err != nil {
		return Rotation{}, fmt.Errorf("writing the new key: %w", err)
	}
	rot.Retired = fmt.Sprintf("%s.retired-%d", cfg.KeyFile, now.Unix())
	if err := os.Rename(cfg.KeyFile, rot.Retired); err != nil {
		return Rotation{}, fmt.Errorf("retiring the old key: %w", err)
	}
	if err := os.Rename(next, cfg.KeyFile); err != nil {
		return Rotation{}, fmt.Errorf("installing the new key: %w", err)
	}
	return rot, nil
}

// loadKeyChange reads the key change RotateKey left for key newKey.
func loadKeyChange(cfg Config, region credit.RegionID, newKey ed25519.PublicKey) (*credit.KeyChange, error) {
	p := KeyChangeFile(cfg)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no key change at %s: rotate a node key with `ccnode keys rotate`, which has the old key sign the change", p)
	}
	if err != nil {
		return nil, err
	}
	var k credit.KeyChange
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if k.Region != region || !newKey.Equal(ed25519.PublicKey(k.NewKey)) {
		return nil, fmt.Errorf("%s changes region %s's key to another key than key_file's: rotate again with `ccnode keys rotate`", p, credit.Quote(string(k.Region)))
	}
	return &k, nil
}
