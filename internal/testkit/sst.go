package testkit

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FlipInTable changes the last byte of needle where it occurs in one of
// the Badger table files (*.sst) of dir, as a disk or an editor would, and
// returns that file. The store must be closed and its tables uncompressed,
// so that the needle's bytes are on disk as written.
func FlipInTable(t testing.TB, dir string, needle []byte) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(b, needle)
		if i < 0 {
			continue
		}
		b[i+len(needle)-1] ^= 0x0f // '7' becomes '8'
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	t.Fatalf("no table file in %s holds %q (%d tables)", dir, needle, len(files))
	return ""
}
