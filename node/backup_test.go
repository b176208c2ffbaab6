package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFakeBackup writes a backup file whose parts are the given bytes.
func writeFakeBackup(t *testing.T, path string, parts map[string][]byte) BackupHeader {
	t.Helper()
	cfg := DefaultConfig("440300", t.TempDir())
	var srcs []partSource
	for _, name := range []string{PartLedger, PartStore} {
		if b, ok := parts[name]; ok {
			srcs = append(srcs, partSource{name, func(w io.Writer) error { _, err := w.Write(b); return err }})
		}
	}
	h, err := WriteBackupFile(path, func(w io.Writer) (BackupHeader, error) { return writeParts(context.Background(), w, cfg, srcs) })
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestBackupFileChecks: a backup file reads back whole; a flipped byte in
// any part, a cut or extended file, a file whose header was never written
// (an interrupted backup) and another region's backup are each refused
// with their own error, naming what is wrong; a failed backup leaves no
// file behind.
func TestBackupFileChecks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b")
	parts := map[string][]byte{PartLedger: bytes.Repeat([]byte("ledger"), 1000), PartStore: bytes.Repeat([]byte("store!"), 5000)}
	h := writeFakeBackup(t, path, parts)
	if got, err := VerifyBackupFile(path); err != nil || got.Region != "440300" || len(got.Parts) != 2 || got.Parts[1].Offset != BackupHeaderSize+6000 {
		t.Fatalf("verify %+v: %v", got, err)
	}
	good, _ := os.ReadFile(path)
	if !bytes.HasPrefix(good, []byte(BackupFormat+"\n{")) {
		t.Fatalf("file starts %q", good[:40])
	}
	mutate := func(name string, f func([]byte) []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, f(bytes.Clone(good)), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		file string
		want []string
	}{
		{"flipped in ledger", mutate("l", func(b []byte) []byte { b[BackupHeaderSize+10] ^= 1; return b }), []string{"part ledger"}},
		{"flipped in store", mutate("s", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), []string{"part store", "do not restore"}},
		{"cut", mutate("c", func(b []byte) []byte { return b[:len(b)-1] }), []string{"truncated"}},
		{"extended", mutate("e", func(b []byte) []byte { return append(b, 0) }), []string{"appended"}},
		{"no header", mutate("z", func(b []byte) []byte { clear(b[:BackupHeaderSize]); return b }), []string{"does not start with", "interrupted"}},
		{"short", mutate("x", func(b []byte) []byte { return b[:100] }), []string{"header block"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyBackupFile(tc.file)
			if !errors.Is(err, ErrBackupDamaged) {
				t.Fatalf("%v, want ErrBackupDamaged", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
			// A restore refuses it before writing anything.
			target := filepath.Join(t.TempDir(), "db")
			if _, err := RestoreBackup(context.Background(), tc.file, RestoreTarget{StoreDir: target}, nil); !errors.Is(err, ErrBackupDamaged) {
				t.Fatalf("restore: %v", err)
			}
			if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a refused restore made %s", target)
			}
		})
	}
	if _, err := RestoreBackup(context.Background(), path, RestoreTarget{Region: "440100", StoreDir: filepath.Join(dir, "db")}, nil); !errors.Is(err, ErrBackupWrongRegion) {
		t.Fatalf("restore of region %s's backup as 440100: %v", h.Region, err)
	}

	// A backup that fails midway leaves neither the file nor its partial.
	failed := filepath.Join(dir, "failed")
	_, err := WriteBackupFile(failed, func(w io.Writer) (BackupHeader, error) {
		w.Write([]byte("some"))
		return BackupHeader{}, errors.New("disk gone")
	})
	if err == nil {
		t.Fatal("a failed fill wrote a backup")
	}
	for _, p := range []string{failed, failed + ".partial"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind", p)
		}
	}
	if _, err := WriteBackupFile(path, nil); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("backup over an existing file: %v", err)
	}
}
