package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network/embedded"
	"github.com/prdcredit/ccnode/node/audit"
)

func auditKey(name string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte("cli audit test " + name))
	return ed25519.NewKeyFromSeed(s[:])
}

// writeAuditWorld writes a snapshot and an answered export of n receipts
// of region sz for region gz, all valid, and returns their paths and lines.
func writeAuditWorld(t *testing.T, n int) (snapPath, exportPath string, lines []credit.ExportLine) {
	t.Helper()
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	pubOf := func(k ed25519.PrivateKey) []byte { return k.Public().(ed25519.PublicKey) }
	snap := audit.NewSnapshot()
	snap.TakenAt = t0.Add(24 * time.Hour)
	for _, r := range []credit.RegionID{"sz", "gz"} {
		snap.AddRegion(credit.RegionMember{ID: r, PubKey: pubOf(auditKey(string(r))), Status: credit.StatusActive, UpdatedAt: t0})
	}
	snap.AddBank(credit.BankMember{ID: "bank-a", Region: "gz", PubKey: pubOf(auditKey("bank-a")), Status: credit.StatusActive, UpdatedAt: t0})
	// sz registered an identity authority that certified the enterprise.
	ca, err := credit.NewAuthorityCert("Test Authority", auditKey("authority"), t0.Add(-24*time.Hour), t0.Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	snap.AddAuthority(credit.IdentityAuthority{ID: credit.AuthorityID(ca), Name: "Test Authority", Cert: ca, Region: "sz",
		Divisions: []string{"4403"}, Status: credit.StatusActive, RegisteredAt: t0})
	leaf, err := credit.IssueEnterpriseCert(ca, auditKey("authority"), "91440300708461136T", "Enterprise", auditKey("enterprise").Public(), t0.Add(-time.Hour), t0.Add(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	g := credit.ConsentGrant{Version: credit.ConsentVersion, ID: "consent-0001", Subject: "91440300708461136T", Grantee: "bank-a",
		Categories: []credit.Category{credit.Penalty}, Purpose: credit.PurposeCreditReview, ValidFrom: t0, ValidUntil: t0.Add(48 * time.Hour), Region: "sz"}
	if err := g.SignEnterprise(auditKey("enterprise"), [][]byte{leaf}, t0); err != nil {
		t.Fatal(err)
	}
	if err := g.Countersign(auditKey("sz")); err != nil {
		t.Fatal(err)
	}
	comm, _ := g.Commitment()
	snap.ConsentRecords[g.ID] = credit.ConsentCommitment{ID: g.ID, Commitment: comm[:], Region: "sz", ValidFrom: g.ValidFrom, ValidUntil: g.ValidUntil, Status: credit.ConsentActive, RecordedAt: t0}
	tree := testonly.New(rfc6962.DefaultHasher)
	for i := range n {
		at := t0.Add(time.Hour + time.Duration(i)*time.Minute)
		q := credit.Query{Version: 1, Bank: "bank-a", Subject: g.Subject, Categories: g.Categories, Purpose: g.Purpose,
			ConsentID: g.ID, Consent: &g, Nonce: fmt.Sprintf("nonce-%04d", i), Time: at}
		if err := q.Sign(auditKey("bank-a")); err != nil {
			t.Fatal(err)
		}
		id, _ := credit.ReceiptID("sz", &q)
		r := credit.Receipt{Version: 1, ID: id, Query: q, Requester: "gz", Answerer: "sz", Categories: g.Categories,
			ReportDigest: make([]byte, 32), RecordCount: 1, Time: at}
		if err := r.Sign(auditKey("sz")); err != nil {
			t.Fatal(err)
		}
		ack, err := credit.NewAck(&r, "gz", at, auditKey("gz"))
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := r.LeafBytes()
		tree.AppendData(leaf)
		lines = append(lines, credit.ExportLine{Index: uint64(i), Receipt: leaf, Acks: []credit.Ack{ack}})
	}
	cp := credit.Checkpoint{Region: "sz", Size: uint64(n), Root: tree.Hash()}
	if err := cp.Sign("test", auditKey("sz")); err != nil {
		t.Fatal(err)
	}
	snap.AddCheckpoint(credit.AnchoredCheckpoint{Checkpoint: cp, AnchoredAt: t0.Add(time.Hour + time.Duration(n)*time.Minute), TxID: "tx-1"})
	snapPath = filepath.Join(dir, "snapshot.json")
	var sb bytes.Buffer
	if err := snap.Write(&sb); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(snapPath, sb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	exportPath = writeExportFile(t, dir, "sz.jsonl", lines)
	return snapPath, exportPath, lines
}

func writeExportFile(t *testing.T, dir, name string, lines []credit.ExportLine) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := credit.NewExportWriter(&buf, credit.ExportHeader{Kind: credit.ExportAnswered, Region: "sz", Size: uint64(len(lines))})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if err := w.Write(l); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	app := newApp()
	var out bytes.Buffer
	app.Writer = &out
	err := app.Run(append([]string{"ccnode"}, args...))
	code := 0
	if err != nil {
		code = 1
		var ec exitCoder
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		t.Logf("ccnode %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), code
}

func TestAuditCommand(t *testing.T) {
	snap, export, lines := writeAuditWorld(t, 5)
	tampered := writeExportFile(t, t.TempDir(), "sz-tampered.jsonl", append(lines[:2:2], lines[3:]...))
	// The same ledger without the authority: the enterprise's key is
	// certified by nobody the consortium registered.
	uncertified := filepath.Join(t.TempDir(), "uncertified.json")
	{
		f, err := os.Open(snap)
		if err != nil {
			t.Fatal(err)
		}
		s, err := audit.ReadSnapshot(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		clear(s.AuthorityRecords)
		var b bytes.Buffer
		if err := s.Write(&b); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(uncertified, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"clean", []string{"audit", "--no-progress", "--snapshot", snap, "--anchor-delay", "24h", export}, 0, "result: no findings"},
		{"clean json", []string{"audit", "--json", "--snapshot", snap, "--anchor-delay", "24h", export}, 0, `"total": 0`},
		{"deleted line", []string{"audit", "--no-progress", "--snapshot", snap, "--anchor-delay", "24h", tampered}, 2, "completeness"},
		{"anchored late", []string{"audit", "--no-progress", "--snapshot", snap, "--anchor-delay", "1m", export}, 2, "timeliness"},
		{"uncertified enterprise key", []string{"audit", "--no-progress", "--snapshot", uncertified, "--anchor-delay", "24h", export}, 2,
			"consent_uncertified"},
		{"uncertified, the reason", []string{"audit", "--no-progress", "--snapshot", uncertified, "--anchor-delay", "24h", export}, 2,
			"consent consent-0001: no enterprise identity authority is registered"},
		{"other region only", []string{"audit", "--no-progress", "--snapshot", snap, "--region", "gz", export}, 0, "result: no findings"},
		{"no ledger", []string{"audit", export}, 1, ""},
		{"no exports", []string{"audit", "--snapshot", snap}, 1, ""},
		{"no such ledger folder", []string{"audit", "--ledger-dir", filepath.Join(t.TempDir(), "none"), export}, 1, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runCLI(t, tc.args...)
			t.Log(out)
			if code != tc.code {
				t.Fatalf("exit %d, want %d", code, tc.code)
			}
			if !strings.Contains(out, tc.contains) {
				t.Fatalf("output lacks %q", tc.contains)
			}
		})
	}
	t.Run("empty consents file", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "consents.json")
		if err := os.WriteFile(empty, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := runCLIErr(t, "audit", "--no-progress", "--snapshot", snap, "--anchor-delay", "24h", "--consents", empty, export)
		if !errors.Is(err, audit.ErrNoConsents) || !strings.Contains(err.Error(), empty) {
			t.Fatalf("err %v, want ErrNoConsents naming the file", err)
		}
	})
	t.Run("json report decodes", func(t *testing.T) {
		out, _ := runCLI(t, "audit", "--json", "--snapshot", snap, "--anchor-delay", "24h", tampered)
		var rep audit.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		// The anchored root fails, and so does the order of the leaves
		// after the deleted line.
		if rep.Total != 2 || rep.ByRule[audit.RuleCompleteness] != 1 || rep.ByRule[audit.RuleOrder] != 1 {
			t.Fatalf("report %+v", rep)
		}
	})
}

// TestAuditEmbeddedLedger builds the same world on an embedded ledger (the
// contract in-process over Badger), then snapshots it and audits through
// the command, as an auditor would with a stopped node's ledger folder.
func TestAuditEmbeddedLedger(t *testing.T) {
	ctx := context.Background()
	snapFile, export, _ := writeAuditWorld(t, 5)
	f, err := os.Open(snapFile)
	if err != nil {
		t.Fatal(err)
	}
	want, err := audit.ReadSnapshot(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var clock time.Time
	srv, err := embedded.Open(dir, embedded.Options{Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddIdentity("szMSP", auditKey("sz").Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	szl := srv.Client("szMSP", auditKey("sz"))
	regions, _ := want.Regions(ctx)
	auths, _ := want.Authorities(ctx)
	for i := range regions {
		regions[i].MSPID = string(regions[i].ID) + "MSP"
		regions[i].PeerID = "peer-" + string(regions[i].ID)
		regions[i].Divisions = map[credit.RegionID][]string{"sz": {"4403"}, "gz": {"4401"}}[regions[i].ID]
	}
	banks, _ := want.Banks(ctx)
	clock = regions[0].UpdatedAt
	if err := szl.Bootstrap(ctx, regions, banks); err != nil {
		t.Fatal(err)
	}
	for _, a := range auths {
		clock = a.RegisteredAt
		if err := szl.RegisterAuthority(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range want.ConsentRecords {
		clock = c.RecordedAt
		if err := szl.RecordConsent(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	cps, _ := want.CheckpointHistory(ctx, "sz")
	clock = cps[0].AnchoredAt
	if _, err := szl.AnchorCheckpoint(ctx, cps[0].Checkpoint, nil); err != nil {
		t.Fatal(err)
	}
	// Served, as a running node serves it (ledger.serve_addr): the
	// auditor reads it as an identity the ledger knows.
	if err := srv.AddIdentity("auditorMSP", auditKey("auditor").Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "auditor.key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(auditKey("auditor").Seed())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The auditor signs its event subscription with its own clock, which
	// the served ledger holds within its proposal window.
	clock = time.Now()
	hs := httptest.NewServer(srv.Handler())
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"audit", "--no-progress", "--ledger-url", hs.URL, "--ledger-msp", "auditorMSP", "--ledger-key", keyFile,
			"--events-quiet", "50ms", "--anchor-delay", "24h", export}, 0, "result: no findings"},
		{[]string{"audit", "--no-progress", "--ledger-url", hs.URL, "--events-quiet", "50ms", export}, 1, ""},
	} {
		res, code := runCLI(t, tc.args...)
		t.Log(res)
		if code != tc.code || !strings.Contains(res, tc.want) {
			t.Fatalf("%v: exit %d, want %d with %q", tc.args, code, tc.code, tc.want)
		}
	}
	hs.Close()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "snap.json")
	if _, code := runCLI(t, "audit", "snapshot", "--ledger-dir", dir, "--events-quiet", "50ms", "--out", out); code != 0 {
		t.Fatalf("audit snapshot: exit %d", code)
	}
	for _, args := range [][]string{
		{"audit", "--no-progress", "--snapshot", out, "--anchor-delay", "24h", export},
		{"audit", "--no-progress", "--ledger-dir", dir, "--events-quiet", "50ms", "--anchor-delay", "24h", export},
	} {
		res, code := runCLI(t, args...)
		t.Log(res)
		if code != 0 || !strings.Contains(res, "result: no findings") {
			t.Fatalf("%v: exit %d", args, code)
		}
	}
}
