package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/network/embedded"
	"github.com/prdcredit/ccnode/node/bankclient"
	"github.com/prdcredit/ccnode/store"
	"github.com/prdcredit/ccnode/store/receipts"
)

// Backups of a node: one file holding the region's store (records, receipt
// log with its tree and acks, received receipts, anchoring outbox, ledger
// view cache, unexpired nonces) and, when the node runs its embedded ledger
// (ledger.embedded_dir), that ledger, each as Badger's own backup stream.
// Secrets (key_file, ledger.key_file, the operators file, TLS keys, the
// PSK) and the config are not in it: they are kept the way secrets are.
//
// The file is a header block of BackupHeaderSize bytes — the format line,
// then one JSON line (region, time, parts with offset, length and SHA-256),
// padded with newlines — followed by the parts back to back. The header is
// written last (its checksums are known only then), so a file whose
// writing was interrupted has no valid header and is refused.

// BackupFormat is the first line of every backup file.
const BackupFormat = "ccnode-backup/1"

// BackupHeaderSize is the size of the header block the parts follow.
const BackupHeaderSize = 4096

// Parts of a backup.
const (
	PartLedger = "ledger" // the embedded ledger's Badger stream
	PartStore  = "store"  // the region's store's Badger stream
)

// Errors of backups and restores, returned wrapped; test with errors.Is.
var (
	// ErrBackupDamaged: the file is not a whole backup of this format (no
	// header, a part's length or SHA-256 differs from the header's).
	ErrBackupDamaged = errors.New("backup file damaged")
	// ErrBackupWrongRegion: the backup is of another region than the
	// node it would restore.
	ErrBackupWrongRegion = errors.New("backup is of another region")
	// ErrLogBehindLedger: the ledger holds a checkpoint of this region that
	// the local receipt log does not reach or does not match (a restore
	// from a backup older than the last anchored checkpoint). The node
	// answers nothing and anchors nothing: every new receipt would take a
	// leaf index the ledger already anchored with other content.
	ErrLogBehindLedger = errors.New("receipt log is behind the region's anchored checkpoint")
)

// BackupHeader describes a backup file.
type BackupHeader struct {
	Format    string          `json:"format"`
	Region    credit.RegionID `json:"region"`
	NetworkID string          `json:"network_id"`
	CreatedAt time.Time       `json:"created_at"`
	Parts     []BackupPart    `json:"parts"`
	// NotIncluded names what a restore needs that the file does not hold.
	NotIncluded []string `json:"not_included"`
}

// BackupPart is one part of a backup file: Bytes bytes at Offset (from
// the file's start) whose SHA-256 is SHA256 (hex).
type BackupPart struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"` // badger-backup: a Badger DB.Backup stream
	Offset uint64 `json:"offset"`
	Bytes  uint64 `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Part returns the named part.
func (h BackupHeader) Part(name string) (BackupPart, bool) {
	for _, p := range h.Parts {
		if p.Name == name {
			return p, true
		}
	}
	return BackupPart{}, false
}

var notInBackup = []string{"config file", "key_file (the node key)", "ledger.key_file", "admin.operators_file", "TLS keys", "p2p.psk_file"}

// partSource writes one part's stream.
type partSource struct {
	name  string
	write func(io.Writer) error
}

// hashCounter hashes and counts what passes to w.
type hashCounter struct {
	w io.Writer
	h hash.Hash
	n uint64
}

func (c *hashCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += uint64(n)
	return n, err
}

// writeParts writes the parts back to back, the first at offset
// BackupHeaderSize of the file, and returns their descriptions.
func writeParts(ctx context.Context, w io.Writer, cfg Config, srcs []partSource) (BackupHeader, error) {
	h := BackupHeader{Format: BackupFormat, Region: cfg.Region, NetworkID: cfg.P2P.NetworkID,
		CreatedAt: time.Now().UTC(), NotIncluded: notInBackup}
	off := uint64(BackupHeaderSize)
	for _, s := range srcs {
		if err := ctx.Err(); err != nil {
			return h, err
		}
		hc := &hashCounter{w: w, h: sha256.New()}
		if err := s.write(hc); err != nil {
			return h, fmt.Errorf("backup part %s: %w", s.name, err)
		}
		h.Parts = append(h.Parts, BackupPart{Name: s.name, Kind: "badger-backup", Offset: off, Bytes: hc.n, SHA256: hex.EncodeToString(hc.h.Sum(nil))})
		off += hc.n
	}
	return h, nil
}

// Backup writes the node's backup parts to w while it serves: the embedded
// ledger first when this node runs it, then the store. In that order a
// restored pair never has the ledger ahead of the log (a checkpoint is
// anchored only over leaves already durable).
func (n *Node) Backup(ctx context.Context, w io.Writer) (BackupHeader, error) {
	var srcs []partSource
	if o, ok := n.deps.Ledger.(*ownedLedger); ok {
		srcs = append(srcs, partSource{PartLedger, o.srv.Backup})
	}
	srcs = append(srcs, partSource{PartStore, n.deps.Store.Backup})
	return writeParts(ctx, w, n.cfg, srcs)
}

// BackupStopped writes the backup parts of a stopped node from its folders:
// the embedded ledger (ledger.embedded_dir, when the config runs one), then
// the store (DATA_DIR/db).
func BackupStopped(ctx context.Context, cfg Config, w io.Writer, log *slog.Logger) (BackupHeader, error) {
	dir := StoreDir(cfg)
	if empty, err := store.DirEmpty(dir); err != nil {
		return BackupHeader{}, err
	} else if empty {
		return BackupHeader{}, fmt.Errorf("no record store at %s (data_dir of the config): nothing to back up", dir)
	}
	var srcs []partSource
	if d := cfg.Ledger.EmbeddedDir; d != "" {
		if empty, err := store.DirEmpty(d); err != nil {
			return BackupHeader{}, err
		} else if !empty {
			srv, err := embedded.Open(d, embedded.Options{Logger: log})
			if err != nil {
				return BackupHeader{}, err
			}
			defer srv.Close()
			srcs = append(srcs, partSource{PartLedger, srv.Backup})
		}
	}
	db, err := store.Open(ctx, store.Options{Dir: dir, Logger: log})
	if err != nil {
		return BackupHeader{}, err
	}
	defer db.Close()
	srcs = append(srcs, partSource{PartStore, db.Backup})
	return writeParts(ctx, w, cfg, srcs)
}

// WriteBackupFile writes a backup file at path, which must not exist: fill
// writes the parts (from offset BackupHeaderSize) and returns their header.
// The file is written as path.partial, checked, and renamed to path only
// when whole.
func WriteBackupFile(path string, fill func(io.Writer) (BackupHeader, error)) (_ BackupHeader, err error) {
	if _, err := os.Stat(path); err == nil {
		return BackupHeader{}, fmt.Errorf("backup file %s already exists: give a new name", path)
	}
	tmp := path + ".partial"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return BackupHeader{}, fmt.Errorf("backup file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(make([]byte, BackupHeaderSize)); err != nil {
		return BackupHeader{}, fmt.Errorf("backup file %s: %w", tmp, err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	h, err := fill(bw)
	if err != nil {
		return h, err
	}
	if err := bw.Flush(); err != nil {
		return h, fmt.Errorf("backup file %s: %w", tmp, err)
	}
	block, err := encodeHeader(h)
	if err != nil {
		return h, err
	}
	if _, err := f.WriteAt(block, 0); err != nil {
		return h, fmt.Errorf("backup file %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return h, fmt.Errorf("backup file %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return h, fmt.Errorf("backup file %s: %w", tmp, err)
	}
	// Read back once: what was written is what a restore will read.
	if _, err := VerifyBackupFile(tmp); err != nil {
		return h, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return h, fmt.Errorf("backup file: %w", err)
	}
	return h, nil
}

func encodeHeader(h BackupHeader) ([]byte, error) {
	j, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	b := append([]byte(BackupFormat+"\n"), j...)
	if len(b)+1 > BackupHeaderSize {
		return nil, fmt.Errorf("backup header of %d bytes does not fit its %d-byte block", len(b), BackupHeaderSize)
	}
	return append(b, bytes.Repeat([]byte{'\n'}, BackupHeaderSize-len(b))...), nil
}

// ReadBackupHeader reads and checks a backup file's header block.
func ReadBackupHeader(r io.ReaderAt, name string) (BackupHeader, error) {
	var h BackupHeader
	block := make([]byte, BackupHeaderSize)
	if _, err := r.ReadAt(block, 0); err != nil {
		return h, fmt.Errorf("%w: %s: no %d-byte header block: %w", ErrBackupDamaged, name, BackupHeaderSize, err)
	}
	line, rest, ok := bytes.Cut(block, []byte{'\n'})
	if !ok || string(line) != BackupFormat {
		return h, fmt.Errorf("%w: %s does not start with %q (not a ccnode backup, or one whose writing was interrupted)", ErrBackupDamaged, name, BackupFormat)
	}
	j, _, _ := bytes.Cut(rest, []byte{'\n'})
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, fmt.Errorf("%w: %s: header: %w", ErrBackupDamaged, name, err)
	}
	if h.Format != BackupFormat {
		return h, fmt.Errorf("%w: %s: header format %q, want %q", ErrBackupDamaged, name, h.Format, BackupFormat)
	}
	if _, ok := h.Part(PartStore); !ok {
		return h, fmt.Errorf("%w: %s: no %s part", ErrBackupDamaged, name, PartStore)
	}
	off := uint64(BackupHeaderSize)
	for _, p := range h.Parts {
		if p.Offset != off || p.Kind != "badger-backup" || len(p.SHA256) != 64 {
			return h, fmt.Errorf("%w: %s: part %s: offset %d kind %q, want %d and badger-backup", ErrBackupDamaged, name, p.Name, p.Offset, p.Kind, off)
		}
		off += p.Bytes
	}
	return h, nil
}

// VerifyBackupFile reads a whole backup file: its header, then every part
// against its length and SHA-256. It names the first part that differs.
func VerifyBackupFile(path string) (BackupHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return BackupHeader{}, fmt.Errorf("backup file: %w", err)
	}
	defer f.Close()
	h, err := ReadBackupHeader(f, path)
	if err != nil {
		return h, err
	}
	st, err := f.Stat()
	if err != nil {
		return h, err
	}
	last := h.Parts[len(h.Parts)-1]
	if end := last.Offset + last.Bytes; uint64(st.Size()) != end {
		return h, fmt.Errorf("%w: %s is %d bytes, its header describes %d (truncated or appended to)", ErrBackupDamaged, path, st.Size(), end)
	}
	for _, p := range h.Parts {
		s := sha256.New()
		if _, err := io.Copy(s, io.NewSectionReader(f, int64(p.Offset), int64(p.Bytes))); err != nil {
			return h, fmt.Errorf("backup file %s: part %s: %w", path, p.Name, err)
		}
		if got := hex.EncodeToString(s.Sum(nil)); got != p.SHA256 {
			return h, fmt.Errorf("%w: %s: part %s (%d bytes at %d) has SHA-256 %s, the header says %s: do not restore from this file",
				ErrBackupDamaged, path, p.Name, p.Bytes, p.Offset, got, p.SHA256)
		}
	}
	return h, nil
}

// RestoreTarget is where a backup is restored.
type RestoreTarget struct {
	// Region, when set, must be the backup's.
	Region credit.RegionID
	// StoreDir receives the store part; absent or empty.
	StoreDir string
	// LedgerDir, when set, receives the ledger part if the backup has one;
	// absent or empty.
	LedgerDir string
}

// RestoreResult says what a restore rebuilt.
type RestoreResult struct {
	Header BackupHeader `json:"header"`
	// Ledger: the ledger part was restored (into RestoreTarget.LedgerDir).
	Ledger  bool   `json:"ledger_restored"`
	Records int64  `json:"records"`
	LogSize uint64 `json:"receipt_log_size"`
	// Anchored is the size of the last checkpoint the restored store saw
	// anchored (0: none).
	Anchored uint64 `json:"last_anchored_size"`
}

// RestoreBackup checks the backup file whole (header, every part's
// checksum, region), then loads its parts into the target's empty folders.
// The store's cached ledger view is dropped (receipts.Outbox.ForgetView):
// the node rebuilds it from whichever ledger it runs on.
// Nothing is written before the file has checked out; a restore that fails
// midway removes the folders it filled.
func RestoreBackup(ctx context.Context, path string, t RestoreTarget, log *slog.Logger) (res RestoreResult, err error) {
	hf, err := os.Open(path)
	if err != nil {
		return res, fmt.Errorf("backup file: %w", err)
	}
	h, err := ReadBackupHeader(hf, path)
	hf.Close()
	if err != nil {
		return res, err
	}
	if t.Region != "" && h.Region != t.Region {
		return res, fmt.Errorf("%w: %s holds region %s, the config is region %s", ErrBackupWrongRegion, path, h.Region, t.Region)
	}
	if _, ok := h.Part(PartLedger); !ok {
		t.LedgerDir = ""
	}
	for _, d := range []struct{ what, dir string }{{"store folder", t.StoreDir}, {"embedded ledger folder", t.LedgerDir}} {
		if d.dir == "" {
			continue
		}
		if empty, err := store.DirEmpty(d.dir); err != nil {
			return res, err
		} else if !empty {
			return res, fmt.Errorf("%w: the %s %s holds data; a backup is restored only into an empty folder (move it away or pick another data_dir)",
				store.ErrTargetNotEmpty, d.what, d.dir)
		}
	}
	if h, err = VerifyBackupFile(path); err != nil {
		return res, err
	}
	res.Header = h
	f, err := os.Open(path)
	if err != nil {
		return res, err
	}
	defer f.Close()
	var filled []string
	defer func() {
		if err != nil {
			for _, d := range filled {
				os.RemoveAll(d)
			}
		}
	}()
	load := func(name, dir string) error {
		p, _ := h.Part(name)
		filled = append(filled, dir)
		return store.RestoreBadger(ctx, dir, bufio.NewReaderSize(io.NewSectionReader(f, int64(p.Offset), int64(p.Bytes)), 1<<20), log)
	}
	if t.LedgerDir != "" {
		if err := load(PartLedger, t.LedgerDir); err != nil {
			return res, err
		}
		res.Ledger = true
	}
	if err := load(PartStore, t.StoreDir); err != nil {
		return res, err
	}
	db, err := store.Open(ctx, store.Options{Dir: t.StoreDir, Logger: log})
	if err != nil {
		return res, fmt.Errorf("restored store %s does not open: %w", t.StoreDir, err)
	}
	defer db.Close()
	st, err := db.Stats(ctx)
	if err != nil {
		return res, fmt.Errorf("restored store %s: %w", t.StoreDir, err)
	}
	res.Records = st.Records
	l, err := receipts.OpenLog(db.Badger(), receipts.LogOptions{Logger: log})
	if err != nil {
		return res, fmt.Errorf("restored store %s: %w", t.StoreDir, err)
	}
	res.LogSize = l.Size()
	l.Close()
	ob := receipts.NewOutbox(db.Badger(), nil)
	if err := ob.ForgetView(); err != nil {
		return res, fmt.Errorf("restored store %s: %w", t.StoreDir, err)
	}
	if ac, ok, err := ob.LastAnchored(); err != nil {
		return res, fmt.Errorf("restored store %s: %w", t.StoreDir, err)
	} else if ok {
		res.Anchored = ac.Size
	}
	return res, nil
}

// startLedgerCheck holds the receipt log against the ledger's latest
// checkpoint of this region before the node answers or anchors anything.
// A log that does not reach it, or differs from it, leaves the node
// running but not ready (Ready, /readyz), answering nothing and anchoring
// nothing: every new leaf would sit at an index the ledger anchored with
// other content. A log that extends it makes the outbox agree with the
// ledger (after a restore they come from different moments).
func (n *Node) startLedgerCheck(ctx context.Context) (func() error, error) {
	noop := func() error { return nil }
	ac, err := n.deps.Ledger.LatestCheckpoint(ctx, n.cfg.Region)
	found := err == nil
	if err != nil && !errors.Is(err, network.ErrNotFound) {
		return nil, fmt.Errorf("reading region %s's latest anchored checkpoint: %w", n.cfg.Region, err)
	}
	size := n.rlog.Size()
	if found && ac.Size > size {
		n.logFork = fmt.Errorf("%w: the ledger holds region %s's checkpoint of %d receipts (anchored %s), the local log has %d: "+
			"the receipts at leaves %d to %d are not in this store (restored from a backup older than the checkpoint?); the node answers nothing "+
			"and anchors nothing until it runs on a store whose log reaches the anchored checkpoint (restore a newer backup)",
			ErrLogBehindLedger, n.cfg.Region, ac.Size, ac.AnchoredAt.UTC().Format(time.RFC3339), size, size, ac.Size-1)
		n.log.Error("receipt log behind the ledger", "err", n.logFork)
		return noop, nil
	}
	if found {
		root, err := n.rlog.Root(ac.Size)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(root, ac.Root) {
			n.logFork = fmt.Errorf("%w: the local log's root at size %d differs from region %s's checkpoint anchored there: the log forked; "+
				"the node answers nothing and anchors nothing", ErrLogBehindLedger, ac.Size, n.cfg.Region)
			n.log.Error("receipt log forked from the ledger", "err", n.logFork)
			return noop, nil
		}
	}
	last, had, err := n.outbox.LastAnchored()
	if err != nil {
		return nil, err
	}
	if had != found || last.Size != ac.Size {
		n.log.Info("adopting the ledger's anchored checkpoint", "ledger_size", ac.Size, "outbox_size", last.Size, "log_size", size)
		if err := n.outbox.AdoptLedger(ac, found); err != nil {
			return nil, err
		}
	}
	n.lastAnchoredSize.Store(ac.Size)
	return noop, nil
}

// logRefusal refuses what would append to a log that is behind the ledger.
func (n *Node) logRefusal() error {
	if err := n.candidateRefusal(); err != nil {
		return err // and logFork is not set before admission
	}
	if n.logFork == nil {
		return nil
	}
	return credit.Refuse(credit.CodeUnavailable, "%s", n.logFork.Error())
}

// handleBackup streams the node's backup parts (GET /v1/backup on the
// admin API); the header goes in the Ccnode-Backup-Header trailer
// (base64 of its JSON), known only once the parts are written. A client
// that gets no trailer got no whole backup.
func (n *Node) handleBackup(w http.ResponseWriter, r *http.Request) {
	// A backup streams for as long as the store takes to read.
	if err := http.NewResponseController(w).SetWriteDeadline(time.Time{}); err != nil {
		n.log.Warn("backup: cannot lift the write deadline", "err", err)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Trailer", backupTrailer)
	w.WriteHeader(http.StatusOK)
	h, err := n.Backup(r.Context(), w)
	if err != nil {
		n.log.Error("backup failed", "err", err)
		return
	}
	j, err := json.Marshal(h)
	if err != nil {
		n.log.Error("backup failed", "err", err)
		return
	}
	w.Header().Set(backupTrailer, base64.StdEncoding.EncodeToString(j))
	n.log.Info("backup written", "parts", len(h.Parts), "bytes", h.Parts[len(h.Parts)-1].Offset+h.Parts[len(h.Parts)-1].Bytes-BackupHeaderSize)
}

const backupTrailer = "Ccnode-Backup-Header"

// Backup asks the node's admin API for a backup, writing its parts to w
// (from a file's offset BackupHeaderSize, as WriteBackupFile gives), and
// returns their header once every part arrived with its length and
// checksum.
func (c *Client) Backup(ctx context.Context, w io.Writer) (BackupHeader, error) {
	var h BackupHeader
	base := c.Admin
	if base == "" {
		return h, errors.New("backup: no admin API address (Client.Admin)")
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/v1/backup", nil)
	if err != nil {
		return h, err
	}
	req.Header.Set("Authorization", "Bearer "+c.OperatorToken)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return h, bankclient.NewError(resp.StatusCode, b)
	}
	got, err := io.Copy(w, resp.Body)
	if err != nil {
		return h, fmt.Errorf("backup from %s: %w", base, err)
	}
	raw := resp.Trailer.Get(backupTrailer)
	if raw == "" {
		return h, fmt.Errorf("backup from %s: the node ended the stream after %d bytes without its header: the backup failed on the node (see its log)", base, got)
	}
	j, err := base64.StdEncoding.DecodeString(raw)
	if err == nil {
		err = json.Unmarshal(j, &h)
	}
	if err != nil || len(h.Parts) == 0 {
		return h, fmt.Errorf("backup from %s: header trailer: %v", base, err)
	}
	last := h.Parts[len(h.Parts)-1]
	if want := last.Offset + last.Bytes - BackupHeaderSize; uint64(got) != want {
		return h, fmt.Errorf("backup from %s: received %d bytes, the header describes %d", base, got, want)
	}
	return h, nil
}
