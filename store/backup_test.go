package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestBackupRestoreRoundTrip: a store's backup stream, loaded into an
// empty folder, opens as a store with the same records and counters; a
// folder that holds anything is refused and left as it was.
func TestBackupRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	src, err := openAt(t, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	recs := randomRecords(t, 3, 500)
	if _, err := src.Put(ctx, recs); err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	if err := src.Backup(&stream); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	if err := RestoreBadger(ctx, dir, bytes.NewReader(stream.Bytes()), nil); err != nil {
		t.Fatal(err)
	}
	dst, err := openAt(t, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := src.Stats(ctx)
	got, err := dst.Stats(ctx)
	if err != nil || !reflect.DeepEqual(got, want) || got.Records == 0 {
		t.Fatalf("restored stats %+v, want %+v: %v", got, want, err)
	}
	for _, r := range recs[:20] {
		a, _ := src.Report(ctx, r.Subject, Filter{})
		b, err := dst.Report(ctx, r.Subject, Filter{})
		if err != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("report of %s differs after restore: %v", r.Subject, err)
		}
	}

	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "keep"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := RestoreBadger(ctx, full, bytes.NewReader(stream.Bytes()), nil); !errors.Is(err, ErrTargetNotEmpty) {
		t.Fatalf("restore into a folder with a file: %v, want ErrTargetNotEmpty", err)
	}
	if ents, _ := os.ReadDir(full); len(ents) != 1 {
		t.Fatalf("a refused restore changed the folder: %v", ents)
	}
}
