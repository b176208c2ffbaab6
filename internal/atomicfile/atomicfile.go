// Package atomicfile writes the files ccnode's commands and node leave for
// people and other processes: a new file that must not exist yet, or a
// whole replacement that a concurrent reader never sees half written.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteNew writes b to path with mode, refusing to overwrite an existing
// file (keys, tokens and configs are never silently replaced).
func WriteNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists; not overwriting it", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Replace writes path through a temporary file in the same folder, synced
// and then renamed over it: a reader sees the old file or the new one.
// The new file has mode (os.CreateTemp makes it 0600 first, so a secret is
// never readable by others on the way).
func Replace(path string, mode os.FileMode, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if mode != 0o600 {
		if err := os.Chmod(tmp.Name(), mode); err != nil {
			return err
		}
	}
	return os.Rename(tmp.Name(), path)
}

// ReplaceBytes is Replace with the file's whole content.
func ReplaceBytes(path string, b []byte, mode os.FileMode) error {
	return Replace(path, mode, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}
