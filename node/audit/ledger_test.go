package audit

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// eventLedger is a ledger view with an event stream, as network.Ledger
// delivers it: history first, then it stays open.
type eventLedger struct {
	*Snapshot // current state
	events    []network.Event
}

func (l *eventLedger) Subscribe(ctx context.Context, from network.Position) (<-chan network.Event, error) {
	ch := make(chan network.Event)
	go func() {
		defer close(ch)
		for _, ev := range l.events {
			select {
			case ch <- ev:
			case <-ctx.Done():
				return
			}
		}
		<-ctx.Done() // like a live ledger: wait for more
	}()
	return ch, nil
}

func TestTakeSnapshot(t *testing.T) {
	f := newFixture(t, 8)
	f.anchor()
	old := credit.RegionMember{ID: sz, PubKey: pub("sz-old"), Status: credit.StatusActive, UpdatedAt: t0.Add(-2 * time.Hour)}
	cur := f.snap.RegionVersions[sz][0]
	gzm := f.snap.RegionVersions[gz][0]
	c := f.snap.ConsentRecords["consent-a-0001"]
	rev := t0.Add(5 * time.Hour)
	revoked := c
	revoked.RevokedAt, revoked.Status = &rev, credit.ConsentRevoked
	var events []network.Event
	pos := uint64(0)
	ev := func(e network.Event) {
		pos++
		e.Position = network.Position{Block: pos}
		events = append(events, e)
	}
	ev(network.Event{Kind: network.EventMemberChanged, Time: old.UpdatedAt, Region: &old})
	ev(network.Event{Kind: network.EventMemberChanged, Time: gzm.UpdatedAt, Region: &gzm})
	for _, b := range []credit.BankID{bankA, bankB} {
		m := f.snap.BankVersions[b][0]
		ev(network.Event{Kind: network.EventMemberChanged, Time: m.UpdatedAt, Bank: &m})
	}
	ev(network.Event{Kind: network.EventMemberChanged, Time: cur.UpdatedAt, Region: &cur})
	ev(network.Event{Kind: network.EventConsentRecorded, Time: c.RecordedAt, Consent: &c})
	for _, cp := range f.snap.Anchored[sz] {
		ev(network.Event{Kind: network.EventCheckpointAnchored, Time: cp.AnchoredAt, Checkpoint: &cp})
	}
	ev(network.Event{Kind: network.EventConsentRevoked, Time: rev, Consent: &revoked})
	// A second authority registered and retired after the state was read
	// (its events carry the times), and a revocation under the first.
	ca2, err := credit.NewAuthorityCert("Second Authority", key("authority-2"), t0.Add(-time.Hour), t0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	reg2, ret2 := t0.Add(2*time.Hour), t0.Add(3*time.Hour)
	a2 := credit.IdentityAuthority{ID: credit.AuthorityID(ca2), Name: "Second Authority", Cert: ca2, Region: sz, Divisions: []string{"4403"}, Status: credit.StatusActive}
	ev(network.Event{Kind: network.EventAuthorityChanged, Time: reg2, Authority: &a2})
	a2r := a2
	a2r.Status = credit.StatusRetired
	ev(network.Event{Kind: network.EventAuthorityChanged, Time: ret2, Authority: &a2r})
	revoked1 := f.pki.revocation(t, f.pki.leafDER, time.Time{})
	ev(network.Event{Kind: network.EventCertRevoked, Time: rev, Revocation: &revoked1})

	l := &eventLedger{Snapshot: f.snap, events: events}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snap, err := TakeSnapshot(ctx, l, 50*time.Millisecond, t0.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if h := snap.RegionHistory(sz); len(h) != 2 || !bytes.Equal(h[0].PubKey, pub("sz-old")) || !bytes.Equal(h[1].PubKey, pub("sz")) {
		t.Fatalf("sz key history %+v", h)
	}
	if len(snap.Anchored[sz]) != 2 {
		t.Fatalf("checkpoints %+v", snap.Anchored[sz])
	}
	if snap.Position.Block != pos {
		t.Fatalf("position %d, want %d", snap.Position.Block, pos)
	}
	// The state's authority, and the events' one with both its times.
	if a, ok := snap.AuthorityRecords[f.pki.caID]; !ok || !a.RegisteredAt.Equal(t0.Add(-2*time.Hour)) || a.RetiredAt != nil {
		t.Fatalf("authority from the state: %+v", a)
	}
	if a := snap.AuthorityRecords[a2.ID]; !a.RegisteredAt.Equal(reg2) || a.RetiredAt == nil || !a.RetiredAt.Equal(ret2) || a.Status != credit.StatusRetired {
		t.Fatalf("authority from the events: registered %s retired %v status %s", a.RegisteredAt, a.RetiredAt, a.Status)
	}
	if r := snap.RevocationRecords[revoked1.ID]; !r.RevokedAt.Equal(rev) || r.Authority != f.pki.caID {
		t.Fatalf("revocation %+v", r)
	}
	tests := []struct {
		at   time.Time
		want credit.ConsentStatus
	}{
		{t0, credit.ConsentNotExists},
		{t0.Add(time.Hour), credit.ConsentActive},
		{rev.Add(-time.Nanosecond), credit.ConsentActive},
		{rev, credit.ConsentRevoked},
	}
	for _, tc := range tests {
		t.Run(tc.at.Format(time.RFC3339Nano), func(t *testing.T) {
			got, st, err := snap.ConsentAt(ctx, "consent-a-0001", tc.at)
			if tc.want == credit.ConsentNotExists {
				if !errors.Is(err, network.ErrNotFound) {
					t.Fatalf("err %v, want ErrNotFound", err)
				}
				return
			}
			if err != nil || st != tc.want {
				t.Fatalf("status %s err %v, want %s", st, err, tc.want)
			}
			if st == credit.ConsentActive && got.RevokedAt != nil {
				t.Fatal("a commitment read before its revocation shows the revocation")
			}
		})
	}

	// The snapshot survives its file and audits the same.
	var buf bytes.Buffer
	if err := snap.Write(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.AuthorityRecords) != 2 || len(back.RevocationRecords) != 1 || !back.AuthorityRecords[a2.ID].RetiredAt.Equal(ret2) {
		t.Fatalf("the file lost identity records: %+v %+v", back.AuthorityRecords, back.RevocationRecords)
	}
	in := Inputs{Exports: []Source{BytesSource("sz.jsonl", encodeExport(t, credit.ExportAnswered, sz, f.answeredLines()))}}
	rep, err := Run(ctx, in, back, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("findings %v", rep.ByRule)
	}
	// The revocation (after the consent was recorded) ends nothing; one
	// before the recording, as the events may show it, makes every
	// answer a finding.
	early := revoked1
	early.RevokedAt = signedAt.Add(-time.Second)
	back.AddRevocation(early)
	if rep, err = Run(ctx, in, back, testOptions(t)); err != nil {
		t.Fatal(err)
	}
	if rep.ByRule[RuleConsent] != 8 || rep.Findings[0].Code != credit.CodeConsentUncertified {
		t.Fatalf("after an earlier revocation: %v %v", rep.ByRule, rep.Findings)
	}
}

func TestTakeSnapshotWaitsForCatchUp(t *testing.T) {
	f := newFixture(t, 4)
	f.anchor()
	// No event ever shows the checkpoint the state has: the snapshot must
	// not return a view that lacks it.
	l := &eventLedger{Snapshot: f.snap}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := TakeSnapshot(ctx, l, 20*time.Millisecond, t0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want DeadlineExceeded", err)
	}
}

func TestReadSnapshotRefuses(t *testing.T) {
	for _, in := range []string{``, `{}`, `{"format":"other"}`, `[1]`,
		`{"format":"` + SnapshotFormat + `","regions":{"sz":[]}}`,
		`{"format":"` + SnapshotFormat + `","authorities":{"ab":{"id":"cd"}}}`,
		`{"format":"` + SnapshotFormat + `","authorities":{"ab":{"id":"ab","cert":"AAAA"}}}`,
		`{"format":"` + SnapshotFormat + `","revocations":{"ab":{"id":"cd"}}}`,
	} {
		if _, err := ReadSnapshot(strings.NewReader(in)); !errors.Is(err, ErrSnapshotFormat) {
			t.Errorf("ReadSnapshot(%q): %v, want ErrSnapshotFormat", in, err)
		}
	}
	// A snapshot of the format before enterprise identity would make
	// every consent look uncertified: refused, saying what to do.
	_, err := ReadSnapshot(strings.NewReader(`{"format":"ccnode-ledger-snapshot/1"}`))
	if !errors.Is(err, ErrSnapshotFormat) || !strings.Contains(err.Error(), "take the snapshot again") {
		t.Errorf("a version 1 snapshot: %v", err)
	}
}
