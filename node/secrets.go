package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
)

// SecretFileError: a file holding a secret (a key, a token) may be read
// or written by its group or by others. The node refuses to start on it,
// as ssh refuses such a key.
type SecretFileError struct {
	Path string
	Mode fs.FileMode
}

func (e *SecretFileError) Error() string {
	return fmt.Sprintf("permissions %04o for %s are too open; run chmod 600 %s", e.Mode.Perm(), e.Path, e.Path)
}

// CheckSecretFile returns a *SecretFileError when path is open to its
// group or others. Windows has no such mode bits: nothing is checked.
func CheckSecretFile(path string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return &SecretFileError{Path: path, Mode: fi.Mode()}
	}
	return nil
}

// checkSecrets checks every secret file cfg names that exists (a missing
// one is reported by what reads it): the node key, the operators file (token hashes), the
// private-network key and the TLS key.
func checkSecrets(cfg Config) error {
	for _, f := range []struct{ key, path string }{
		{"key_file", cfg.KeyFile},
		{"ledger.key_file", cfg.Ledger.KeyFile},
		{"admin.operators_file", cfg.Admin.OperatorsFile},
		{"p2p.psk_file", cfg.P2P.PSKFile},
		{"http.tls_key_file", cfg.HTTP.TLSKeyFile},
	} {
		if f.path == "" {
			continue
		}
		if err := CheckSecretFile(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return &ConfigError{Key: f.key, Err: err}
		}
	}
	return nil
}

// CreatePrivate creates or truncates path for writing, readable by its
// owner only (0600, also when it existed with a wider mode): receipt
// exports, audit files and import error files hold subjects' USCCs,
// consent documents and record lines.
func CreatePrivate(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
