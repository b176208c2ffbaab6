package chaincode

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/prdcredit/ccnode/credit"
)

// memLedger is the smallest ledger that runs the contract: committed state,
// key history and the event of each committed transaction. A transaction
// that returns an error commits nothing, as on Fabric.
type memLedger struct {
	state  map[string][]byte
	hist   map[string][]HistoryEntry
	events []memEvent
	n      int
	// reverseHistory hands history out newest first, as Fabric's iterator
	// does, to check the contract does not depend on the order.
	reverseHistory bool
}

type memEvent struct {
	name    string
	payload []byte
}

func newMemLedger() *memLedger {
	return &memLedger{state: map[string][]byte{}, hist: map[string][]HistoryEntry{}}
}

type memTx struct {
	l      *memLedger
	msp    string
	id     string
	at     time.Time
	writes map[string][]byte
	events []memEvent
}

func (t *memTx) MSPID() (string, error)     { return t.msp, nil }
func (t *memTx) TxID() string               { return t.id }
func (t *memTx) TxTime() (time.Time, error) { return t.at, nil }

// GetState reads committed state only, as a Fabric chaincode does: its own
// writes are not visible until commit.
func (t *memTx) GetState(key string) ([]byte, error) { return t.l.state[key], nil }

func (t *memTx) PutState(key string, v []byte) error {
	t.writes[key] = append([]byte(nil), v...)
	return nil
}

func (t *memTx) GetStateRange(start, end string) ([]KV, error) {
	var out []KV
	for k, v := range t.l.state {
		if k >= start && k < end {
			out = append(out, KV{Key: k, Value: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (t *memTx) History(key string) ([]HistoryEntry, error) {
	h := append([]HistoryEntry(nil), t.l.hist[key]...)
	if t.l.reverseHistory {
		for i, j := 0, len(h)-1; i < j; i, j = i+1, j-1 {
			h[i], h[j] = h[j], h[i]
		}
	}
	return h, nil
}

func (t *memTx) SetEvent(name string, p []byte) error {
	t.events = append(t.events, memEvent{name, append([]byte(nil), p...)})
	return nil
}

// run executes f as one transaction of msp at time at and commits it if f
// succeeds. It returns the events the transaction set.
func (l *memLedger) run(msp string, at time.Time, f func(TxContext) error) ([]memEvent, error) {
	l.n++
	tx := &memTx{l: l, msp: msp, id: fmt.Sprintf("tx%04d", l.n), at: at, writes: map[string][]byte{}}
	if err := f(tx); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(tx.writes))
	for k := range tx.writes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		l.state[k] = tx.writes[k]
		l.hist[k] = append(l.hist[k], HistoryEntry{TxID: tx.id, Time: at, Value: tx.writes[k]})
	}
	l.events = append(l.events, tx.events...)
	return tx.events, nil
}

type region struct {
	member credit.RegionMember
	key    ed25519.PrivateKey
}

func testRegion(t testing.TB, id, msp, div string) region {
	t.Helper()
	seed := bytes.Repeat([]byte(id[:1]), ed25519.SeedSize)
	copy(seed, id)
	key := ed25519.NewKeyFromSeed(seed)
	return region{key: key, member: credit.RegionMember{
		ID: credit.RegionID(id), Name: id, Divisions: []string{div}, MSPID: msp,
		PeerID: "peer-" + id, PubKey: key.Public().(ed25519.PublicKey), Status: credit.StatusActive,
	}}
}

var t0 = time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)

// bootstrapped returns a ledger with Shenzhen (SZMSP), Guangzhou (GZMSP)
// and Zhuhai (ZHMSP).
func bootstrapped(t testing.TB) (*memLedger, []region) {
	t.Helper()
	rs := []region{testRegion(t, "440300", "SZMSP", "4403"), testRegion(t, "440100", "GZMSP", "4401"), testRegion(t, "440400", "ZHMSP", "4404")}
	var ms []credit.RegionMember
	for _, r := range rs {
		ms = append(ms, r.member)
	}
	l := newMemLedger()
	rj, _ := json.Marshal(ms)
	if _, err := l.run("SZMSP", t0, func(c TxContext) error { return Contract{}.Bootstrap(c, string(rj), "[]") }); err != nil {
		t.Fatal(err)
	}
	return l, rs
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestParseError(t *testing.T) {
	for _, tc := range []struct {
		name, msg, code, detail string
		ok                      bool
	}{
		{"plain", "ccnode:denied: region 440300 may not", CodeDenied, "region 440300 may not", true},
		{"inside a transport message", "rpc error: code = Aborted desc = failed to endorse transaction, see attached details for more info; chaincode response 500, ccnode:conflict: log forked", CodeConflict, "log forked", true},
		{"every code: not_found", "ccnode:not_found: consent c1", CodeNotFound, "consent c1", true},
		{"every code: invalid", "ccnode:invalid: bad json", CodeInvalid, "bad json", true},
		{"unknown code", "ccnode:teapot: short and stout", "", "", false},
		{"no separator", "ccnode:denied", "", "", false},
		{"no prefix", "endorsement failure", "", "", false},
		{"empty", "", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, detail, ok := ParseError(tc.msg)
			if code != tc.code || detail != tc.detail || ok != tc.ok {
				t.Fatalf("ParseError(%q) = %q, %q, %v; want %q, %q, %v", tc.msg, code, detail, ok, tc.code, tc.detail, tc.ok)
			}
		})
	}
}

func TestErrorMessagesParseBack(t *testing.T) {
	for _, code := range []string{CodeNotFound, CodeDenied, CodeConflict, CodeInvalid} {
		t.Run(code, func(t *testing.T) {
			err := errorf(code, "detail with: a colon %d", 7)
			if CodeOf(err) != code {
				t.Fatalf("CodeOf = %q", CodeOf(err))
			}
			got, detail, ok := ParseError("wrapped: " + err.Error())
			if !ok || got != code || detail != "detail with: a colon 7" {
				t.Fatalf("ParseError(%q) = %q %q %v", err.Error(), got, detail, ok)
			}
		})
	}
	if CodeOf(fmt.Errorf("plain")) != "" {
		t.Fatal("CodeOf of a foreign error must be empty")
	}
}

func TestBootstrapRefusals(t *testing.T) {
	sz, gz := testRegion(t, "440300", "SZMSP", "4403"), testRegion(t, "440100", "GZMSP", "4401")
	dupMSP := gz.member
	dupMSP.MSPID = "SZMSP"
	overlap := gz.member
	overlap.Divisions = []string{"4403"}
	shortKey := gz.member
	shortKey.PubKey = []byte{1, 2}
	for _, tc := range []struct {
		name    string
		caller  string
		regions string
		banks   string
		code    string
	}{
		{"caller not among the regions", "OtherMSP", mustJSON([]credit.RegionMember{sz.member, gz.member}), "[]", CodeDenied},
		{"no regions", "SZMSP", "[]", "[]", CodeInvalid},
		{"MSP id twice", "SZMSP", mustJSON([]credit.RegionMember{sz.member, dupMSP}), "[]", CodeInvalid},
		{"overlapping divisions", "SZMSP", mustJSON([]credit.RegionMember{sz.member, overlap}), "[]", CodeInvalid},
		{"short public key", "SZMSP", mustJSON([]credit.RegionMember{sz.member, shortKey}), "[]", CodeInvalid},
		{"bank of an unknown region", "SZMSP", mustJSON([]credit.RegionMember{sz.member}),
			mustJSON([]credit.BankMember{{ID: "bank-1", Region: "440100", PubKey: make([]byte, 32)}}), CodeInvalid},
		{"unknown field", "SZMSP", `[{"id":"440300","admin":true}]`, "[]", CodeInvalid},
		{"not JSON", "SZMSP", `regions please`, "[]", CodeInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newMemLedger()
			_, err := l.run(tc.caller, t0, func(c TxContext) error { return Contract{}.Bootstrap(c, tc.regions, tc.banks) })
			if CodeOf(err) != tc.code {
				t.Fatalf("got %v, want code %s", err, tc.code)
			}
			if len(l.state) != 0 {
				t.Fatalf("a refused bootstrap wrote %d keys", len(l.state))
			}
		})
	}
}

func TestRetiredRegionIsDenied(t *testing.T) {
	l, rs := bootstrapped(t)
	gz := rs[1].member
	retireByVote(t, l, string(gz.ID), t0.Add(time.Minute), "SZMSP", "GZMSP")
	c := credit.ConsentCommitment{ID: "consent-1", Commitment: make([]byte, 32), Region: gz.ID, ValidFrom: t0, ValidUntil: t0.Add(time.Hour)}
	_, err := l.run("GZMSP", t0.Add(2*time.Minute), func(ctx TxContext) error { return Contract{}.RecordConsent(ctx, mustJSON(c)) })
	if CodeOf(err) != CodeDenied {
		t.Fatalf("retired region recording a consent: %v", err)
	}
}

// Each writing transaction sets exactly one event (Fabric keeps only the
// last), named by its kind and carrying the stored value; retries that
// change nothing set none.
func TestOneEventPerTransaction(t *testing.T) {
	l, rs := bootstrapped(t)
	if len(l.events) != 1 || l.events[0].name != EventMemberChanged {
		t.Fatalf("bootstrap events: %+v", l.events)
	}
	sz := rs[0]
	at := t0
	step := func(t *testing.T, f func(TxContext) error) []memEvent {
		t.Helper()
		at = at.Add(time.Second)
		evs, err := l.run("SZMSP", at, f)
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	c := credit.ConsentCommitment{ID: "consent-1", Commitment: bytes.Repeat([]byte{7}, 32), Region: sz.member.ID, ValidFrom: t0, ValidUntil: t0.Add(time.Hour)}
	tree := testonly.New(rfc6962.DefaultHasher)
	tree.AppendData([]byte("r0"))
	cp := credit.Checkpoint{Region: sz.member.ID, Size: 1, Root: tree.Hash()}
	if err := cp.Sign("test", sz.key); err != nil {
		t.Fatal(err)
	}
	bank := credit.BankMember{ID: "bank-sz-1", Name: "SZ Bank", Region: sz.member.ID, PubKey: make([]byte, 32)}
	for _, tc := range []struct {
		name  string
		f     func(TxContext) error
		event string // "" for none
		check func(EventPayload) bool
	}{
		{"register bank", func(x TxContext) error { return Contract{}.RegisterBank(x, mustJSON(bank)) }, EventMemberChanged,
			func(p EventPayload) bool { return p.Bank != nil && p.Bank.ID == bank.ID }},
		{"record consent", func(x TxContext) error { return Contract{}.RecordConsent(x, mustJSON(c)) }, EventConsentRecorded,
			func(p EventPayload) bool { return p.Consent != nil && p.Consent.Status == credit.ConsentActive }},
		{"record consent again", func(x TxContext) error { return Contract{}.RecordConsent(x, mustJSON(c)) }, "", nil},
		{"revoke", func(x TxContext) error { _, err := Contract{}.RevokeConsent(x, "consent-1"); return err }, EventConsentRevoked,
			func(p EventPayload) bool { return p.Consent != nil && p.Consent.RevokedAt != nil }},
		{"revoke again", func(x TxContext) error { _, err := Contract{}.RevokeConsent(x, "consent-1"); return err }, "", nil},
		{"anchor", func(x TxContext) error { _, err := Contract{}.AnchorCheckpoint(x, mustJSON(cp), ""); return err }, EventCheckpointAnchored,
			func(p EventPayload) bool {
				return p.Checkpoint != nil && p.Checkpoint.Size == 1 && p.Checkpoint.TxID != ""
			}},
		{"anchor again", func(x TxContext) error { _, err := Contract{}.AnchorCheckpoint(x, mustJSON(cp), ""); return err }, "", nil},
		{"retire bank", func(x TxContext) error { return Contract{}.RetireBank(x, string(bank.ID)) }, EventMemberChanged,
			func(p EventPayload) bool { return p.Bank != nil && p.Bank.Status == credit.StatusRetired }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs := step(t, tc.f)
			if tc.event == "" {
				if len(evs) != 0 {
					t.Fatalf("a no-op set %d events", len(evs))
				}
				return
			}
			if len(evs) != 1 || evs[0].name != tc.event {
				t.Fatalf("events %+v, want one %s", evs, tc.event)
			}
			var p EventPayload
			if err := json.Unmarshal(evs[0].payload, &p); err != nil || !tc.check(p) {
				t.Fatalf("payload %s (%v)", evs[0].payload, err)
			}
		})
	}
}

// The contract reads only the transaction's time: the same transactions at
// the same times give byte-identical state on every endorser.
func TestDeterministicState(t *testing.T) {
	var states []map[string][]byte
	for range 2 {
		l, rs := bootstrapped(t)
		for i := range 5 {
			c := credit.ConsentCommitment{ID: fmt.Sprintf("consent-%d", i), Commitment: bytes.Repeat([]byte{byte(i)}, 32), Region: rs[0].member.ID,
				ValidFrom: t0, ValidUntil: t0.Add(time.Hour)}
			if _, err := l.run("SZMSP", t0.Add(time.Duration(i)*time.Second), func(x TxContext) error { return Contract{}.RecordConsent(x, mustJSON(c)) }); err != nil {
				t.Fatal(err)
			}
		}
		states = append(states, l.state)
	}
	if len(states[0]) != len(states[1]) {
		t.Fatalf("%d keys vs %d", len(states[0]), len(states[1]))
	}
	for k, v := range states[0] {
		if !bytes.Equal(v, states[1][k]) {
			t.Fatalf("key %s differs:\n%s\n%s", k, v, states[1][k])
		}
	}
}

func TestConsentAtFromHistory(t *testing.T) {
	for _, reverse := range []bool{false, true} {
		t.Run(fmt.Sprintf("newest-first=%v", reverse), func(t *testing.T) {
			l, rs := bootstrapped(t)
			l.reverseHistory = reverse
			recAt, revAt := t0.Add(time.Minute), t0.Add(time.Hour)
			c := credit.ConsentCommitment{ID: "consent-1", Commitment: bytes.Repeat([]byte{1}, 32), Region: rs[0].member.ID,
				ValidFrom: t0, ValidUntil: t0.Add(48 * time.Hour)}
			if _, err := l.run("SZMSP", recAt, func(x TxContext) error { return Contract{}.RecordConsent(x, mustJSON(c)) }); err != nil {
				t.Fatal(err)
			}
			if _, err := l.run("SZMSP", revAt, func(x TxContext) error { _, err := Contract{}.RevokeConsent(x, "consent-1"); return err }); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name   string
				at     time.Time
				status credit.ConsentStatus
				code   string
			}{
				{"before recording", recAt.Add(-time.Nanosecond), "", CodeNotFound},
				{"at recording", recAt, credit.ConsentActive, ""},
				{"just before revocation", revAt.Add(-time.Nanosecond), credit.ConsentActive, ""},
				{"at revocation", revAt, credit.ConsentRevoked, ""},
				{"after the window", t0.Add(72 * time.Hour), credit.ConsentRevoked, ""},
			} {
				t.Run(tc.name, func(t *testing.T) {
					var got ConsentAt
					_, err := l.run("GZMSP", revAt.Add(time.Hour), func(x TxContext) (e error) {
						got, e = Contract{}.GetConsentAt(x, "consent-1", tc.at.Format(time.RFC3339Nano))
						return
					})
					if CodeOf(err) != tc.code || got.Status != tc.status {
						t.Fatalf("GetConsentAt(%s) = %s, %v; want %s, code %q", tc.at, got.Status, err, tc.status, tc.code)
					}
					if tc.status == credit.ConsentActive && got.Commitment.RevokedAt != nil {
						t.Fatalf("a revocation committed later shows at %s", tc.at)
					}
				})
			}
			_, err := l.run("GZMSP", revAt, func(x TxContext) error { _, e := Contract{}.GetConsentAt(x, "consent-1", "yesterday"); return e })
			if CodeOf(err) != CodeInvalid {
				t.Fatalf("unparseable time: %v", err)
			}
		})
	}
}

// On Fabric the transaction time comes from the client's proposal. A
// revocation dated before the consent was recorded is refused, so at least
// the recorded history cannot be rewritten backwards.
func TestRevocationCannotPredateRecording(t *testing.T) {
	l, rs := bootstrapped(t)
	c := credit.ConsentCommitment{ID: "consent-1", Commitment: bytes.Repeat([]byte{1}, 32), Region: rs[0].member.ID, ValidFrom: t0, ValidUntil: t0.Add(time.Hour)}
	if _, err := l.run("SZMSP", t0.Add(time.Hour), func(x TxContext) error { return Contract{}.RecordConsent(x, mustJSON(c)) }); err != nil {
		t.Fatal(err)
	}
	_, err := l.run("SZMSP", t0.Add(time.Minute), func(x TxContext) error { _, e := Contract{}.RevokeConsent(x, "consent-1"); return e })
	if CodeOf(err) != CodeDenied {
		t.Fatalf("back-dated revocation: %v", err)
	}
	var got credit.ConsentCommitment
	l.run("SZMSP", t0.Add(2*time.Hour), func(x TxContext) (e error) { got, e = Contract{}.GetConsent(x, "consent-1"); return })
	if got.Status != credit.ConsentActive {
		t.Fatalf("status after refused revocation: %s", got.Status)
	}
}

func TestAnchorArgumentRefusals(t *testing.T) {
	l, rs := bootstrapped(t)
	sz := rs[0]
	tree := testonly.New(rfc6962.DefaultHasher)
	tree.AppendData([]byte("a"), []byte("b"))
	sign := func(size uint64, root []byte) string {
		cp := credit.Checkpoint{Region: sz.member.ID, Size: size, Root: root}
		if err := cp.Sign("test", sz.key); err != nil {
			t.Fatal(err)
		}
		return mustJSON(cp)
	}
	for _, tc := range []struct {
		name, cp, proof, code string
	}{
		{"size zero", sign(0, tree.HashAt(0)), "", CodeInvalid},
		{"short root", sign(2, []byte{1}), "", CodeInvalid},
		{"proof on the first checkpoint", sign(2, tree.HashAt(2)), mustJSON([][]byte{tree.HashAt(1)}), CodeInvalid},
		{"proof not JSON", sign(2, tree.HashAt(2)), "[nope", CodeInvalid},
		{"checkpoint not JSON", "{", "", CodeInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.run("SZMSP", t0.Add(time.Minute), func(x TxContext) error { _, e := Contract{}.AnchorCheckpoint(x, tc.cp, tc.proof); return e })
			if CodeOf(err) != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
		})
	}
}

// FuzzParseError: messages come from peers and gateways; parsing must not
// panic, and whatever it accepts is one of the codes.
func FuzzParseError(f *testing.F) {
	for _, s := range []string{"ccnode:denied: x", "chaincode response 500, ccnode:conflict: forked", "ccnode:", "ccnode:not_found:", "ccnode:invalid: a: b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		code, detail, ok := ParseError(msg)
		if !ok {
			if code != "" || detail != "" {
				t.Fatalf("not ok but code %q detail %q", code, detail)
			}
			return
		}
		switch code {
		case CodeNotFound, CodeDenied, CodeConflict, CodeInvalid:
		default:
			t.Fatalf("accepted code %q", code)
		}
		if !strings.Contains(msg, errPrefix+code+": "+detail) {
			t.Fatalf("detail %q not from %q", detail, msg)
		}
	})
}

// FuzzContractArgs feeds arbitrary argument strings — what any channel
// member can send — to every writing transaction of a bootstrapped ledger.
// The contract must never panic, every refusal must carry a code, and
// whatever it accepts must satisfy the rules stored state relies on.
func FuzzContractArgs(f *testing.F) {
	sz := testRegion(f, "440300", "SZMSP", "4403")
	cp := credit.Checkpoint{Region: sz.member.ID, Size: 1, Root: rfc6962.DefaultHasher.HashLeaf([]byte("x"))}
	_ = cp.Sign("test", sz.key)
	seeds := []struct {
		fn   uint8
		a, b string
	}{
		{0, mustJSON(credit.ConsentCommitment{ID: "consent-1", Commitment: make([]byte, 32), Region: "440300", ValidFrom: t0, ValidUntil: t0.Add(time.Hour)}), ""},
		{1, mustJSON(cp), ""},
		{1, mustJSON(cp), "[]"},
		{2, mustJSON(sz.member), ""},
		{3, mustJSON(credit.BankMember{ID: "bank-1", Region: "440300", PubKey: make([]byte, 32)}), ""},
		{4, "consent-1", ""},
		{5, "[]", "[]"},
		{0, `{"id":"consent-1","commitment":null}`, ""},
		{1, `{"region":"440300","size":18446744073709551615,"root":"AAAA"}`, `["AAAA"]`},
		{6, mustJSON(testAuthority(f, "SZ CA", "440300", "4403")), ""},
		{6, mustJSON(testAuthority(f, "GZ CA", "440100", "4401")), ""},
		{7, mustJSON(credit.CertRevocation{ID: revID("c"), Authority: revID("a")}), ""},
		{8, revID("a"), ""},
	}
	for _, s := range seeds {
		f.Add(s.fn, s.a, s.b)
	}
	f.Fuzz(func(t *testing.T, fn uint8, a, b string) {
		l, _ := bootstrapped(t)
		_, err := l.run("SZMSP", t0.Add(time.Minute), func(x TxContext) error {
			var c Contract
			switch fn % 9 {
			case 0:
				return c.RecordConsent(x, a)
			case 1:
				_, err := c.AnchorCheckpoint(x, a, b)
				return err
			case 2:
				return c.UpdateRegion(x, a)
			case 3:
				return c.RegisterBank(x, a)
			case 4:
				_, err := c.RevokeConsent(x, a)
				return err
			case 6:
				return c.RegisterAuthority(x, a)
			case 7:
				_, err := c.RevokeCertificate(x, a)
				return err
			case 8:
				_, err := c.RetireAuthority(x, a)
				return err
			default:
				return c.Bootstrap(x, a, b)
			}
		})
		if err != nil {
			if CodeOf(err) == "" {
				t.Fatalf("refusal without a code: %v", err)
			}
			return
		}
		for k, v := range l.state {
			if strings.HasPrefix(k, prefixConsent) {
				var c credit.ConsentCommitment
				if json.Unmarshal(v, &c) != nil || len(c.Commitment) != 32 || c.Region != "440300" || !c.ValidUntil.After(c.ValidFrom) {
					t.Fatalf("accepted consent %s", v)
				}
			}
			if strings.HasPrefix(k, prefixAuthority) {
				var a credit.IdentityAuthority
				if json.Unmarshal(v, &a) != nil || a.Validate() != nil || a.Region != "440300" || k != prefixAuthority+a.ID {
					t.Fatalf("accepted authority %s", v)
				}
				if _, ok := covers([]string{"4403"}, a.Divisions); !ok {
					t.Fatalf("accepted authority outside the region's divisions %s", v)
				}
			}
			if strings.HasPrefix(k, prefixRevocation) {
				t.Fatalf("revocation %s accepted with no authority registered", v)
			}
			if strings.HasPrefix(k, prefixRegion) {
				var r credit.RegionMember
				if json.Unmarshal(v, &r) != nil || len(r.PubKey) != 32 || r.MSPID == "" {
					t.Fatalf("accepted region %s", v)
				}
			}
		}
	})
}
