package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
)

func testMember(t *testing.T, region credit.RegionID) MemberDescriptor {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig(region, t.TempDir())
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/4403", "/ip4/127.0.0.1/tcp/0"}
	d, err := NewMemberDescriptor(cfg, pub)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestNewMemberDescriptor(t *testing.T) {
	d := testMember(t, "440300")
	if d.Name != "Shenzhen" || len(d.Divisions) != 1 || d.Divisions[0] != "4403" || d.MSPID != "Region440300MSP" || d.NetworkID != DefaultNetworkID {
		t.Fatalf("descriptor %+v", d)
	}
	// Port 0 is no address another region can dial.
	if len(d.Addrs) != 1 || d.Addrs[0] != "/ip4/127.0.0.1/tcp/4403" {
		t.Fatalf("addrs %v, want the one concrete listen address", d.Addrs)
	}
	// pub_key is standard base64 in JSON, the ledger record's form.
	b, _ := json.Marshal(d)
	var raw map[string]any
	json.Unmarshal(b, &raw)
	if raw["format"] != MemberFormat || raw["pub_key"] != base64.StdEncoding.EncodeToString(d.PubKey) {
		t.Fatalf("JSON %s", b)
	}
}

func TestComposeBootstrap(t *testing.T) {
	sz, gz, zh := testMember(t, "440300"), testMember(t, "440100"), testMember(t, "440400")
	bankPub, _, _ := ed25519.GenerateKey(rand.Reader)
	bank := BankDescriptor{Format: BankFormat, ID: "bank-sz-a", Region: "440300", PubKey: bankPub}
	f, err := ComposeBootstrap([]NamedMember{{"sz.json", sz}, {"gz.json", gz}, {"zh.json", zh}}, []NamedBank{{"bank.json", bank}})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Regions) != 3 || len(f.Banks) != 1 || f.Regions[1].ID != "440100" || f.Regions[1].Status != credit.StatusActive || !ed25519.PublicKey(f.Regions[1].PubKey).Equal(ed25519.PublicKey(gz.PubKey)) {
		t.Fatalf("bootstrap %+v", f)
	}
	// What the node reads back is what the contract takes, checked.
	b, _ := json.Marshal(f)
	if strings.Contains(string(b), "updated_at") {
		t.Fatalf("the file carries updated_at, which the ledger sets: %s", b)
	}
	var back BootstrapFile
	if err := json.Unmarshal(b, &back); err != nil || ValidateBootstrap(back) != nil || len(back.Regions) != 3 {
		t.Fatalf("bootstrap does not read back: %v / %v", err, ValidateBootstrap(back))
	}

	edit := func(d MemberDescriptor, f func(*MemberDescriptor)) MemberDescriptor {
		d.Divisions = append([]string(nil), d.Divisions...)
		f(&d)
		return d
	}
	other := testMember(t, "440600")
	for _, tt := range []struct {
		name        string
		members     []NamedMember
		banks       []NamedBank
		file, field string
	}{
		{"region twice", []NamedMember{{"a.json", sz}, {"b.json", edit(other, func(d *MemberDescriptor) { d.Region = "440300" })}}, nil, "b.json", "region"},
		{"division claimed twice", []NamedMember{{"a.json", sz}, {"b.json", edit(gz, func(d *MemberDescriptor) { d.Divisions = []string{"4403"} })}}, nil, "b.json", "divisions"},
		{"MSP id twice", []NamedMember{{"a.json", sz}, {"b.json", edit(gz, func(d *MemberDescriptor) { d.MSPID = sz.MSPID })}}, nil, "b.json", "msp_id"},
		{"node key twice", []NamedMember{{"a.json", sz}, {"b.json", edit(gz, func(d *MemberDescriptor) { d.PubKey, d.PeerID = sz.PubKey, sz.PeerID })}}, nil, "b.json", "pub_key"},
		{"short key", []NamedMember{{"a.json", edit(sz, func(d *MemberDescriptor) { d.PubKey = d.PubKey[:31] })}}, nil, "a.json", "pub_key"},
		{"peer id of another key", []NamedMember{{"a.json", edit(sz, func(d *MemberDescriptor) { d.PeerID = gz.PeerID })}}, nil, "a.json", "peer_id"},
		{"peer id missing", []NamedMember{{"a.json", edit(sz, func(d *MemberDescriptor) { d.PeerID = "" })}}, nil, "a.json", "peer_id"},
		{"divisions missing", []NamedMember{{"a.json", edit(sz, func(d *MemberDescriptor) { d.Divisions = nil })}}, nil, "a.json", "divisions"},
		{"division not digits", []NamedMember{{"a.json", edit(sz, func(d *MemberDescriptor) { d.Divisions = []string{"44x3"} })}}, nil, "a.json", "divisions"},
		{"bad address", []NamedMember{{"a.json", edit(sz, func(d *MemberDescriptor) { d.Addrs = []string{"127.0.0.1:4403"} })}}, nil, "a.json", "addrs[0]"},
		{"another network", []NamedMember{{"a.json", sz}, {"b.json", edit(gz, func(d *MemberDescriptor) { d.NetworkID = "other" })}}, nil, "b.json", "network_id"},
		{"not a member descriptor", []NamedMember{{"a.json", edit(sz, func(d *MemberDescriptor) { d.Format = "" })}}, nil, "a.json", "format"},
		{"bank of no member region", []NamedMember{{"a.json", sz}}, []NamedBank{{"bank.json", func() BankDescriptor { b := bank; b.Region = "440100"; return b }()}}, "bank.json", "region"},
		{"bank twice", []NamedMember{{"a.json", sz}}, []NamedBank{{"b1.json", bank}, {"b2.json", bank}}, "b2.json", "id"},
		{"bank id", []NamedMember{{"a.json", sz}}, []NamedBank{{"bank.json", func() BankDescriptor { b := bank; b.ID = "Bank A"; return b }()}}, "bank.json", "id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ComposeBootstrap(tt.members, tt.banks)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.File != tt.file || fe.Field != tt.field {
				t.Fatalf("err = %v, want one naming %s and %s", err, tt.file, tt.field)
			}
			t.Log(err)
		})
	}
}

func TestReadDescriptorRefusesUnknownFields(t *testing.T) {
	p := filepath.Join(t.TempDir(), "member.json")
	os.WriteFile(p, []byte(`{"format":"ccnode-member/1","region":"440300","peerid":"x"}`), 0o600)
	var d MemberDescriptor
	if err := ReadDescriptor(p, &d); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "peerid") {
		t.Fatalf("err = %v, want the file and the unknown field named", err)
	}
}

// The operator trial found the bootstrap format by the contract's
// refusals, one field at a time; the node now names the file, the member
// and the field before it writes anything.
func TestReadBootstrapNamesMemberAndField(t *testing.T) {
	sz, gz := testMember(t, "440300"), testMember(t, "440100")
	f, err := ComposeBootstrap([]NamedMember{{"sz", sz}, {"gz", gz}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Regions[1].PeerID = ""
	b, _ := json.Marshal(f)
	p := filepath.Join(t.TempDir(), "bootstrap.json")
	os.WriteFile(p, b, 0o600)
	_, _, err = readBootstrap(p, "440300", sz.PubKey)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.File != "regions[1] (440100)" || fe.Field != "peer_id" || !strings.Contains(err.Error(), p) {
		t.Fatalf("err = %v, want the file, regions[1] (440100) and peer_id named", err)
	}
}

// A node whose ledger has no other active region says so: its queries
// answer from its own records alone (the old sample configs made three
// such one-region consortia without a word).
func TestOpenWarnsWhenLedgerKnowsOnlyThisRegion(t *testing.T) {
	for _, tt := range []struct {
		name      string
		bootstrap bool
		warn      bool
	}{{"alone", false, true}, {"with a bootstrap of two regions", true, false}} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := DefaultConfig("440300", dir)
			cfg.HTTP.Addr, cfg.Admin.Addr = "127.0.0.1:0", "127.0.0.1:0"
			if _, err := AddOperator(cfg.Admin.OperatorsFile, "admin"); err != nil {
				t.Fatal(err)
			}
			key, err := GenerateKeyFile(cfg.KeyFile)
			if err != nil {
				t.Fatal(err)
			}
			if tt.bootstrap {
				sz, err := NewMemberDescriptor(cfg, key.Public().(ed25519.PublicKey))
				if err != nil {
					t.Fatal(err)
				}
				f, err := ComposeBootstrap([]NamedMember{{"sz", sz}, {"gz", testMember(t, "440100")}}, nil)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := json.Marshal(f)
				cfg.Ledger.BootstrapFile = filepath.Join(dir, "bootstrap.json")
				os.WriteFile(cfg.Ledger.BootstrapFile, b, 0o600)
			}
			log, capture := testkit.CaptureLogger(t, slog.LevelInfo)
			r, err := Open(context.Background(), cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if got := len(capture.Lines("the ledger knows no other active region")); (got > 0) != tt.warn {
				t.Fatalf("%d warnings, want one: %v", got, tt.warn)
			}
		})
	}
}

// A region left out of the bootstrap starts as a candidate: not ready and
// refusing not_member, naming the proposal; once it proposed itself and the
// ledger's one active region approved it, it is a member with no restart.
func TestCandidateJoinsWithoutRestart(t *testing.T) {
	ctx := context.Background()
	setup := func(region credit.RegionID) Config {
		cfg := DefaultConfig(region, t.TempDir())
		cfg.HTTP.Addr, cfg.Admin.Addr = "127.0.0.1:0", "127.0.0.1:0"
		if _, err := AddOperator(cfg.Admin.OperatorsFile, "admin"); err != nil {
			t.Fatal(err)
		}
		if _, err := GenerateKeyFile(cfg.KeyFile); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	sz := setup("440300")
	sz.Ledger.ServeAddr = "127.0.0.1:0"
	r, err := Open(ctx, sz, testkit.LoggerAt(t, slog.LevelError))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	gz := setup("440100")
	gz.Ledger.EmbeddedDir, gz.Ledger.EmbeddedURL = "", "http://"+r.LedgerAddr
	cand, err := Open(ctx, gz, testkit.LoggerAt(t, slog.LevelError))
	if err != nil {
		t.Fatalf("Open of a region the ledger does not know: %v, want a candidate", err)
	}
	defer cand.Close()
	err = cand.Ready()
	if r := credit.RefusalOf(err); r == nil || r.Code != credit.CodeNotMember || !strings.Contains(r.Msg, "candidate") || !strings.Contains(r.Msg, "ccnode region propose") {
		t.Fatalf("a candidate's readiness: %v, want not_member naming the candidacy and the proposal", err)
	}
	if err := cand.admit(ctx, &credit.Query{}, time.Now(), gz.Region); credit.RefusalOf(err) == nil || credit.RefusalOf(err).Code != credit.CodeNotMember {
		t.Fatalf("a candidate admits a query: %v, want not_member", err)
	}
	md, err := NewMemberDescriptor(gz, cand.key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	d := credit.RegionMember{ID: md.Region, Name: md.Name, Divisions: md.Divisions, MSPID: md.MSPID, PeerID: md.PeerID, PubKey: md.PubKey}
	if _, err := cand.ProposeRegion(ctx, d); err != nil {
		t.Fatalf("the candidate proposes itself: %v", err)
	}
	if v, err := r.ApproveRegion(ctx, gz.Region); err != nil || v.Proposal.Status != credit.ProposalAccepted {
		t.Fatalf("Shenzhen's approval: %+v %v", v, err)
	}
	testkit.Eventually(t, 30*time.Second, cand.Ready)
	testkit.Eventually(t, 30*time.Second, func() error {
		if !r.members.Admits(cand.Host().ID()) {
			return errors.New("Shenzhen does not admit the new member's peer yet")
		}
		return nil
	})
}
