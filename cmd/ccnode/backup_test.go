package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/faults"
)

// backupWorld is one region's node as an operator sets it up: init, a
// generated feed imported, then (running) a bank, an identity authority
// and a consent the bank queries with.
type backupWorld struct {
	t                    *testing.T
	bin, dir, cfg, token string
	bankKey, consent     string
	subject              credit.USCC
	bankPriv             ed25519.PrivateKey
}

func (w *backupWorld) cli(args ...string) string {
	w.t.Helper()
	cmd := exec.Command(w.bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		w.t.Fatalf("ccnode %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// cliFails runs a command that must fail and returns what it printed.
func (w *backupWorld) cliFails(args ...string) string {
	w.t.Helper()
	out, err := exec.Command(w.bin, args...).CombinedOutput()
	if err == nil {
		w.t.Fatalf("ccnode %s succeeded, want a refusal:\n%s", strings.Join(args, " "), out)
	}
	return string(out)
}

func newBackupWorld(t *testing.T) *backupWorld {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	w := &backupWorld{t: t, bin: testkit.CCNode(t), dir: t.TempDir()}
	w.cli("init", "--region", "440300", "--dir", w.dir, "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
	w.cfg, w.token = filepath.Join(w.dir, "ccnode.yaml"), filepath.Join(w.dir, "operator.token")
	feed := filepath.Join(t.TempDir(), "feed.jsonl")
	w.cli("gen", "--region", "440300", "--enterprises", "3", "--seed", "7", "--quiet", "-o", feed)
	w.subject = faults.FirstSubject(t, feed)
	w.cli("import", "--quiet", "--config", w.cfg, feed)
	return w
}

// start runs `ccnode run` on cfg and waits until it serves.
func (w *backupWorld) start(cfg string) (*exec.Cmd, *node.Client) {
	w.t.Helper()
	return w.startAnchoring(cfg, "100ms")
}

// startAnchoring is start with anchoring every anchorEvery.
func (w *backupWorld) startAnchoring(cfg, anchorEvery string) (*exec.Cmd, *node.Client) {
	w.t.Helper()
	run, url, admin := runNode(w.t, w.bin, "--config", cfg, "--anchor-interval", anchorEvery, "--log-level", "warn")
	tok, err := os.ReadFile(w.token)
	if err != nil {
		w.t.Fatal(err)
	}
	cl := &node.Client{Base: url, Admin: admin, OperatorToken: strings.TrimSpace(string(tok))}
	testkit.Eventually(w.t, 15*time.Second, func() error {
		_, err := cl.ConsentStatus(context.Background(), "consent-probe")
		var se *node.StatusError
		if errors.As(err, &se) && se.Status == 404 {
			return nil
		}
		return fmt.Errorf("node not serving: %v", err)
	})
	return run, cl
}

// grant registers the bank and an identity authority and records a
// consent for the subject, through the running node's admin API.
func (w *backupWorld) grant(cl *node.Client) {
	w.t.Helper()
	_, w.bankPriv, _ = ed25519.GenerateKey(rand.Reader)
	if err := cl.RegisterBank(context.Background(), credit.BankMember{ID: "bank-a", PubKey: w.bankPriv.Public().(ed25519.PublicKey)}); err != nil {
		w.t.Fatal(err)
	}
	w.bankKey = filepath.Join(w.dir, "bank-a.key")
	if err := node.WriteKeyFile(w.bankKey, w.bankPriv); err != nil {
		w.t.Fatal(err)
	}
	ca, ent := filepath.Join(w.dir, "authority"), filepath.Join(w.dir, "enterprise")
	w.cli("authority", "create", "--name", "Backup Test Authority", "--out", ca)
	w.cli("authority", "issue", "--authority", ca, "--uscc", string(w.subject), "--name", "Test Enterprise", "--out", ent)
	w.cli("authority", "register", "--admin", cl.Admin, "--operator-token-file", w.token, "--authority", ca)
	w.consent = filepath.Join(w.dir, "consent.json")
	w.cli("consent", "grant", "--admin", cl.Admin, "--operator-token-file", w.token,
		"--enterprise-key", filepath.Join(ent, "enterprise.key"), "--enterprise-cert", filepath.Join(ent, "enterprise.pem"),
		"--uscc", string(w.subject), "--bank", "bank-a", "--region", "440300", "--categories", "registration,licensing,penalty,tax,social_insurance,housing_fund,utilities,judicial,customs,ip,honors,financial", "--out", w.consent)
}

// query asks the node as the bank and returns its own region's slice.
func (w *backupWorld) query(cl *node.Client) node.RegionStatus {
	w.t.Helper()
	out := w.cli("query", "--node", cl.Base, "--bank", "bank-a", "--key", w.bankKey, "--consent", w.consent, "--uscc", string(w.subject), "--json")
	var res node.Consolidated
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Regions) != 1 || res.Regions[0].Status != node.StatusOK ||
		res.Regions[0].LeafIndex == nil || res.Regions[0].Report == nil {
		w.t.Fatalf("query: %v\n%s", err, out)
	}
	return res.Regions[0]
}

// waitAnchored waits until the region's anchored checkpoint covers size
// receipts.
func waitAnchored(t *testing.T, cl *node.Client, size uint64) {
	t.Helper()
	testkit.Eventually(t, 20*time.Second, func() error {
		cp, err := cl.Checkpoint(context.Background())
		if err == nil && cp.Size < size {
			err = fmt.Errorf("anchored size %d, want %d", cp.Size, size)
		}
		return err
	})
}

// moveConfig writes a copy of the node's config whose every path under
// the node's folder points under to, and copies the node's secrets there
// (they are not in a backup: the operator keeps them apart).
func (w *backupWorld) moveConfig(to string) string {
	w.t.Helper()
	b, err := os.ReadFile(w.cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	cfg := filepath.Join(to, "ccnode.yaml")
	if err := os.WriteFile(cfg, bytes.ReplaceAll(b, []byte(w.dir), []byte(to)), 0o600); err != nil {
		w.t.Fatal(err)
	}
	for _, f := range []string{"node.key", "operators"} {
		b, err := os.ReadFile(filepath.Join(w.dir, f))
		if err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, f), b, 0o600); err != nil {
			w.t.Fatal(err)
		}
	}
	return cfg
}

// TestBackupRestoreRunningNode backs up a running node through its admin
// API, stops it, restores the file into an empty folder and runs the
// restored node: the same records answer the bank, the next receipt takes
// the next leaf index of the old log, anchoring continues from the old
// checkpoint, and the audit of the restored node's export finds nothing.
// A restore into a folder that holds data and a restore of a damaged file
// are refused before anything is written.
func TestBackupRestoreRunningNode(t *testing.T) {
	w := newBackupWorld(t)
	run, cl := w.start(w.cfg)
	w.grant(cl)
	before := w.query(cl)
	second := w.query(cl)
	if *second.LeafIndex != 1 {
		t.Fatalf("second receipt at leaf %d, want 1", *second.LeafIndex)
	}
	waitAnchored(t, cl, 2)
	if before.RecordCount == 0 {
		t.Fatal("the query answered no records: the world has no data to restore")
	}

	backup := filepath.Join(t.TempDir(), "node.ccbackup")
	out := w.cli("backup", "--config", w.cfg, "--admin", cl.Admin, "--operator-token-file", w.token, "--out", backup)
	t.Logf("backup: %s", out)
	if !strings.Contains(out, "ledger") || !strings.Contains(out, "store") || !strings.Contains(out, "node key") {
		t.Fatalf("backup output names no ledger and store parts nor what is left out: %s", out)
	}
	h, err := node.VerifyBackupFile(backup)
	if err != nil || h.Region != "440300" || len(h.Parts) != 2 {
		t.Fatalf("backup file %+v: %v", h, err)
	}
	if fi, _ := os.Stat(backup); fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file mode %v, want 0600", fi.Mode().Perm())
	}
	// Without an operator token the admin API gives nothing.
	resp, err := http.Get(cl.Admin + "/v1/backup")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("backup without a token: %d %s", resp.StatusCode, body)
	}
	run.Process.Kill()
	run.Wait()

	// Into the node's own folders, which hold its store: refused.
	if out := w.cliFails("restore", "--from", backup, "--config", w.cfg); !strings.Contains(out, "holds data") || !strings.Contains(out, filepath.Join(w.dir, "db")) {
		t.Fatalf("restore into a folder that holds data: %s", out)
	}
	// A damaged file: one byte of the store part flipped. Refused, and the
	// target left empty.
	damaged := filepath.Join(t.TempDir(), "damaged.ccbackup")
	b, _ := os.ReadFile(backup)
	sp, _ := h.Part(node.PartStore)
	b[sp.Offset+sp.Bytes/2] ^= 0x01
	if err := os.WriteFile(damaged, b, 0o600); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	if out := w.cliFails("restore", "--from", damaged, "--data-dir", empty); !strings.Contains(out, "damaged") || !strings.Contains(out, "part store") {
		t.Fatalf("restore of a damaged backup: %s", out)
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Fatalf("a refused restore wrote %v", ents)
	}
	// A cut file (the header promises more than is there): refused.
	if err := os.WriteFile(damaged, b[:len(b)-100], 0o600); err != nil {
		t.Fatal(err)
	}
	if out := w.cliFails("restore", "--from", damaged, "--data-dir", empty); !strings.Contains(out, "truncated") {
		t.Fatalf("restore of a truncated backup: %s", out)
	}
	// Another region's config: refused.
	other := t.TempDir()
	otherCfg := w.moveConfig(other)
	ob, _ := os.ReadFile(otherCfg)
	os.WriteFile(otherCfg, bytes.Replace(ob, []byte("region: \"440300\""), []byte("region: \"440100\""), 1), 0o600)
	if ob2, _ := os.ReadFile(otherCfg); bytes.Equal(ob, ob2) {
		t.Fatalf("config has no region line to change:\n%s", ob)
	}
	if out := w.cliFails("restore", "--from", backup, "--config", otherCfg); !strings.Contains(out, "another region") {
		t.Fatalf("restore into another region's node: %s", out)
	}

	// Into an empty folder: the node's secrets put back, then restore.
	to := t.TempDir()
	cfg2 := w.moveConfig(to)
	out = w.cli("restore", "--from", backup, "--config", cfg2)
	t.Logf("restore: %s", out)
	if !strings.Contains(out, "receipt log of 2 receipts, last anchored checkpoint at 2") || !strings.Contains(out, "embedded ledger restored") {
		t.Fatalf("restore summary: %s", out)
	}
	run2, cl2 := w.start(cfg2)
	after := w.query(cl2)
	if !reflect.DeepEqual(after.Report, before.Report) || after.RecordCount != before.RecordCount {
		t.Fatalf("restored node answers %d records, before the backup %d:\n%+v\n%+v", after.RecordCount, before.RecordCount, after.Report, before.Report)
	}
	if *after.LeafIndex != 2 {
		t.Fatalf("first receipt of the restored node at leaf %d, want 2 (the log continues)", *after.LeafIndex)
	}
	waitAnchored(t, cl2, 3)
	rp, err := cl2.Receipt(context.Background(), "bank-a", w.bankPriv, before.Receipt.ID)
	if err != nil || rp.LeafIndex != 0 || rp.Checkpoint == nil {
		t.Fatalf("receipt of before the backup on the restored node: %+v %v", rp, err)
	}
	run2.Process.Kill()
	run2.Wait()

	export := filepath.Join(t.TempDir(), "answered.jsonl")
	w.cli("receipts", "export", "--config", cfg2, "--out", export)
	out = w.cli("audit", "--no-progress", "--ledger-dir", filepath.Join(to, "ledger"), "--events-quiet", "50ms", "--anchor-delay", "24h", export)
	if !strings.Contains(out, "no findings") || !regexp.MustCompile(`(?m)^440300\s+3\s+3\s+3\s+3\s+0\s+\d+\s+0\s*$`).MatchString(out) {
		t.Fatalf("audit of the restored node's export:\n%s", out)
	}
}

// TestRestoreOlderThanAnchoredCheckpoint backs up a stopped node, lets it
// answer and anchor more, then restores only its store from the older
// backup beside the ledger that moved on: the restored node must not log a
// receipt at a leaf index the ledger already anchored. It starts not ready,
// saying why, refuses queries, and anchors nothing.
func TestRestoreOlderThanAnchoredCheckpoint(t *testing.T) {
	w := newBackupWorld(t)
	run, cl := w.start(w.cfg)
	w.grant(cl)
	w.query(cl)
	waitAnchored(t, cl, 1)
	run.Process.Kill()
	run.Wait()

	// Offline: the node is stopped, so the command opens its folders.
	backup := filepath.Join(t.TempDir(), "old.ccbackup")
	if out := w.cli("backup", "--config", w.cfg, "--out", backup); !strings.Contains(out, "written to") {
		t.Fatalf("offline backup: %s", out)
	}
	if out := w.cliFails("backup", "--config", w.cfg, "--out", backup); !strings.Contains(out, "already exists") {
		t.Fatalf("backup over an existing file: %s", out)
	}

	run, cl = w.start(w.cfg)
	w.query(cl)
	w.query(cl)
	waitAnchored(t, cl, 3)
	run.Process.Kill()
	run.Wait()

	// The store is lost; the ledger (embedded_dir) is not. Restore the
	// store alone from the backup of 1 receipt.
	if err := os.Rename(filepath.Join(w.dir, "db"), filepath.Join(t.TempDir(), "lost-db")); err != nil {
		t.Fatal(err)
	}
	if out := w.cliFails("restore", "--from", backup, "--config", w.cfg); !strings.Contains(out, "embedded ledger folder") || !strings.Contains(out, "--keep-ledger") {
		t.Fatalf("restore with the ledger into a folder whose ledger remains: %s", out)
	}
	if out := w.cli("restore", "--from", backup, "--config", w.cfg, "--keep-ledger"); !strings.Contains(out, "receipt log of 1 receipts") {
		t.Fatalf("restore --keep-ledger: %s", out)
	}

	run, bankURL, adminURL := runNode(t, w.bin, "--config", w.cfg, "--anchor-interval", "100ms", "--log-level", "error")
	_ = adminURL
	var ready string
	testkit.Eventually(t, 15*time.Second, func() error {
		resp, err := http.Get(bankURL + "/readyz")
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			return fmt.Errorf("readyz %d %s", resp.StatusCode, b)
		}
		ready = string(b)
		return nil
	})
	for _, want := range []string{"checkpoint of 3 receipts", "the local log has 1", "answers nothing"} {
		if !strings.Contains(ready, want) {
			t.Errorf("/readyz says %s; want it to say %q", ready, want)
		}
	}
	out, err := exec.Command(w.bin, "query", "--node", bankURL, "--bank", "bank-a", "--key", w.bankKey, "--consent", w.consent,
		"--uscc", string(w.subject)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "behind") {
		t.Fatalf("query of a node whose log is behind the ledger: %v\n%s", err, out)
	}
	run.Process.Kill()
	run.Wait()
	// Nothing was logged over the anchored leaves.
	exp := w.cli("receipts", "export", "--config", w.cfg)
	if n := len(strings.Split(strings.TrimSpace(exp), "\n")); n != 2 {
		t.Fatalf("export of the restored log has %d lines, want the header and the one receipt of the backup:\n%s", n, exp)
	}
}

// TestRestoreLedgerOlderThanStore runs a node on a store whose outbox
// names a checkpoint its (restored) ledger never saw: the ledger from one
// backup, the store from a later one, as when a checkpoint was anchored
// between the two parts of one backup. The node adopts the ledger's
// checkpoint, forgets the one the ledger lacks, and anchors on from the
// ledger's: the next receipt takes the next leaf, and the audit is clean.
func TestRestoreLedgerOlderThanStore(t *testing.T) {
	w := newBackupWorld(t)
	run, cl := w.start(w.cfg)
	w.grant(cl)
	w.query(cl)
	waitAnchored(t, cl, 1)
	older, newer := filepath.Join(t.TempDir(), "older.ccbackup"), filepath.Join(t.TempDir(), "newer.ccbackup")
	w.cli("backup", "--admin", cl.Admin, "--operator-token-file", w.token, "--out", older)
	// A consent recorded after the older backup: not on the restored
	// ledger, though the newer store's cached view holds it (a stop saves
	// the view).
	later := filepath.Join(w.dir, "consent-later.json")
	ent := filepath.Join(w.dir, "enterprise")
	w.cli("consent", "grant", "--admin", cl.Admin, "--operator-token-file", w.token,
		"--enterprise-key", filepath.Join(ent, "enterprise.key"), "--enterprise-cert", filepath.Join(ent, "enterprise.pem"),
		"--uscc", string(w.subject), "--bank", "bank-a", "--region", "440300", "--categories", "tax", "--out", later)
	w.query(cl)
	waitAnchored(t, cl, 2)
	run.Process.Signal(syscall.SIGTERM)
	run.Wait()
	w.cli("backup", "--config", w.cfg, "--out", newer)

	to := t.TempDir()
	cfg2 := w.moveConfig(to)
	w.cli("restore", "--from", older, "--config", cfg2)
	if err := os.RemoveAll(filepath.Join(to, "db")); err != nil {
		t.Fatal(err)
	}
	if out := w.cli("restore", "--from", newer, "--config", cfg2, "--keep-ledger"); !strings.Contains(out, "receipt log of 2 receipts, last anchored checkpoint at 2") {
		t.Fatalf("restore of the newer store: %s", out)
	}

	// Anchoring held back: the checkpoint the node serves is the
	// ledger's, adopted at start, not the newer store's.
	run2, cl2 := w.startAnchoring(cfg2, "1h")
	if cp, err := cl2.Checkpoint(context.Background()); err != nil || cp.Size != 1 {
		t.Fatalf("checkpoint the restored node serves %+v (%v), want the ledger's, of size 1", cp, err)
	}
	if _, err := cl2.Consistency(context.Background(), 1, 2); err == nil {
		t.Fatal("the node serves a consistency proof to a checkpoint of size 2 its ledger does not hold")
	}
	if out := w.cliFails("query", "--node", cl2.Base, "--bank", "bank-a", "--key", w.bankKey, "--consent", later, "--uscc", string(w.subject)); !strings.Contains(out, string(credit.CodeConsentNotFound)) {
		t.Fatalf("query on a consent the restored ledger does not hold: %s", out)
	}
	next := w.query(cl2)
	if *next.LeafIndex != 2 {
		t.Fatalf("next receipt at leaf %d, want 2", *next.LeafIndex)
	}
	run2.Process.Signal(syscall.SIGTERM)
	run2.Wait()

	run2, cl2 = w.start(cfg2)
	waitAnchored(t, cl2, 3)
	if p, err := cl2.Consistency(context.Background(), 1, 3); err != nil || p.From.Size != 1 || p.To.Size != 3 {
		t.Fatalf("consistency 1..3: %+v %v", p, err)
	}
	run2.Process.Kill()
	run2.Wait()
	export := filepath.Join(t.TempDir(), "answered.jsonl")
	w.cli("receipts", "export", "--config", cfg2, "--out", export)
	out := w.cli("audit", "--no-progress", "--ledger-dir", filepath.Join(to, "ledger"), "--events-quiet", "50ms", "--anchor-delay", "24h", export)
	if !strings.Contains(out, "no findings") || !regexp.MustCompile(`(?m)^440300\s+3\s+3\s+3\s+3\s+0\s+\d+\s+0\s*$`).MatchString(out) {
		t.Fatalf("audit:\n%s", out)
	}
}

// TestBackupOutlastsWriteTimeout: a backup streams for as long as the
// store takes to read, past http.write_timeout, which bounds every other
// answer of the node (here 1 ms, shorter than any backup). Given only the
// config, the command finds the running node at its admin.addr.
func TestBackupOutlastsWriteTimeout(t *testing.T) {
	w := newBackupWorld(t)
	b, err := os.ReadFile(w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	// admin.addr on a port free now: the command must find the node there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := ln.Addr().String()
	ln.Close()
	short := bytes.Replace(b, []byte("write_timeout: 30s"), []byte("write_timeout: 1ms"), 1)
	short = regexp.MustCompile(`(?m)^(admin:\n(?:\s*#.*\n)*\s*addr:) 127\.0\.0\.1:0$`).ReplaceAll(short, []byte("${1} "+adminAddr))
	if !bytes.Contains(short, []byte("write_timeout: 1ms")) || !bytes.Contains(short, []byte(adminAddr)) {
		t.Fatalf("config has no write_timeout: 30s or admin addr to change:\n%s", b)
	}
	cfg := filepath.Join(w.dir, "short.yaml")
	if err := os.WriteFile(cfg, short, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, admin := runNode(t, w.bin, "--config", cfg, "--log-level", "warn")
	if admin != "http://"+adminAddr {
		t.Fatalf("node's admin API on %s, want %s", admin, adminAddr)
	}
	out := filepath.Join(t.TempDir(), "b.ccbackup")
	w.cli("backup", "--config", cfg, "--operator-token-file", w.token, "--out", out)
	if h, err := node.VerifyBackupFile(out); err != nil || h.Parts[len(h.Parts)-1].Bytes == 0 {
		t.Fatalf("backup past the write timeout: %+v %v", h, err)
	}
}
