package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/dgraph-io/badger/v4"
)

// Backups use Badger's own stream (DB.Backup / DB.Load): every live key
// at one read timestamp, so a backup is one consistent snapshot of the
// records and of every sibling package's keys (receipt log, outbox, nonces)
// taken while the store serves.

// ErrTargetNotEmpty: a backup is loaded only into an empty folder, so that
// nothing already there is mixed with or overwritten by the backup's keys.
var ErrTargetNotEmpty = errors.New("restore target is not empty")

// Backup writes a Badger backup stream of every live key of the store.
func (db *DB) Backup(w io.Writer) error {
	release, err := db.acquire()
	if err != nil {
		return err
	}
	defer release()
	return BackupBadger(db.bdb, w)
}

// BackupBadger writes a backup stream of bdb, one snapshot at its latest
// committed version.
func BackupBadger(bdb *badger.DB, w io.Writer) error {
	if _, err := bdb.Backup(w, 0); err != nil {
		return fmt.Errorf("badger backup: %w", err)
	}
	return nil
}

// DirEmpty reports whether dir is absent or holds no entries.
func DirEmpty(dir string) (bool, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return len(ents) == 0, nil
}

// RestoreBadger loads a backup stream (BackupBadger's) into a new Badger
// database in dir, which must be absent or empty, and closes it durably.
func RestoreBadger(ctx context.Context, dir string, r io.Reader, log *slog.Logger) error {
	if empty, err := DirEmpty(dir); err != nil {
		return fmt.Errorf("restore into %s: %w", dir, err)
	} else if !empty {
		return fmt.Errorf("restore into %s: %w", dir, ErrTargetNotEmpty)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("restore into %s: %w", dir, err)
	}
	bdb, err := badger.Open(badger.DefaultOptions(dir).WithLogger(badgerLogger{log}).WithSyncWrites(false))
	if err != nil {
		return fmt.Errorf("restore into %s: %w", dir, err)
	}
	// Load has no context: a cancelled restore stops at the reader.
	err = bdb.Load(ctxReader{ctx, r}, 256)
	if err == nil {
		err = bdb.Sync()
	}
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("restore into %s: %w", dir, err)
	}
	return nil
}

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
