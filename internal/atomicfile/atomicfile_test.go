package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteNewRefusesExisting(t *testing.T) {
	p := filepath.Join(t.TempDir(), "key")
	if err := WriteNew(p, []byte("a"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteNew(p, []byte("b"), 0o600); err == nil || !strings.Contains(err.Error(), "not overwriting") {
		t.Fatalf("second WriteNew: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "a" {
		t.Fatalf("content %q, want the first", b)
	}
}

func TestReplace(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := ReplaceBytes(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ReplaceBytes(p, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if b, _ := os.ReadFile(p); err != nil || string(b) != "two" || fi.Mode().Perm() != 0o600 {
		t.Fatalf("after replace: %q mode %v %v", b, fi.Mode(), err)
	}
	// A failed write leaves the old file and no temporary behind.
	boom := errors.New("boom")
	if err := Replace(p, 0o600, func(w io.Writer) error { w.Write([]byte("half")); return boom }); !errors.Is(err, boom) {
		t.Fatalf("Replace: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "two" {
		t.Fatalf("after a failed replace: %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d files left in the folder, want 1", len(ents))
	}
}
