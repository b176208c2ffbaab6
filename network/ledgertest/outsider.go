package ledgertest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// testOutsider is the auditor's promise: an identity valid on the ledger
// that is no member region reads everything a region reads — members,
// consents, checkpoints, authorities, revocations, the event stream — and
// every write it attempts is refused with ErrDenied, even one that would
// be a no-op for the region that owns the record. Afterwards the records
// it tried to change are as they were.
func testOutsider(ctx context.Context, t *testing.T, h Harness, bank credit.BankID) {
	a, o := h.Regions[0], h.Outsider
	// Fresh records of every kind, written by a region: the outsider reads
	// them, then tries to overwrite, revoke or retire them.
	c := commitment(uniq("audited"), a.Member.ID, time.Now().Add(-time.Minute))
	auth, _ := NewAuthority(t, uniq("audited-authority"), a.Member.ID, a.Member.Divisions...)
	if err := a.Ledger.RegisterAuthority(ctx, auth); err != nil {
		t.Fatalf("register authority: %v", err)
	}
	if _, err := a.Ledger.RevokeCertificate(ctx, credit.CertRevocation{ID: newRevocationID(), Authority: auth.ID}); err != nil {
		t.Fatalf("revoke certificate: %v", err)
	}
	// Recorded last: its event closes the stream compared below.
	if err := a.Ledger.RecordConsent(ctx, c); err != nil {
		t.Fatalf("record consent: %v", err)
	}

	t.Run("reads", func(t *testing.T) {
		eventually(t, h, "the region's new consent visible to the outsider", func() error {
			got, err := o.Consent(ctx, c.ID)
			if err == nil && (got.Status != credit.ConsentActive || !bytes.Equal(got.Commitment, c.Commitment)) {
				err = fmt.Errorf("consent %s: %+v", c.ID, got)
			}
			return err
		})
		if _, st, err := o.ConsentAt(ctx, c.ID, time.Now().Add(time.Minute)); err != nil || st != credit.ConsentActive {
			t.Fatalf("outsider ConsentAt: %s, %v", st, err)
		}
		// Everything the outsider lists is what a region lists. Both may
		// read through different peers, so they are compared until equal.
		reads := []struct {
			what string
			read func(network.Ledger) (any, error)
		}{
			{"regions", func(l network.Ledger) (any, error) { return l.Regions(ctx) }},
			{"region", func(l network.Ledger) (any, error) { return l.Region(ctx, a.Member.ID) }},
			{"banks", func(l network.Ledger) (any, error) { return l.Banks(ctx) }},
			{"bank", func(l network.Ledger) (any, error) { return l.Bank(ctx, bank) }},
			{"consent", func(l network.Ledger) (any, error) { return l.Consent(ctx, c.ID) }},
			{"authorities", func(l network.Ledger) (any, error) { return l.Authorities(ctx) }},
			{"revocations", func(l network.Ledger) (any, error) { return l.Revocations(ctx) }},
			{"latest checkpoint", func(l network.Ledger) (any, error) { return l.LatestCheckpoint(ctx, a.Member.ID) }},
			{"checkpoint history", func(l network.Ledger) (any, error) { return l.CheckpointHistory(ctx, a.Member.ID) }},
		}
		for _, r := range reads {
			eventually(t, h, "outsider reads the same "+r.what+" as a region", func() error {
				mine, err := r.read(a.Ledger)
				if err != nil {
					return fmt.Errorf("region: %w", err)
				}
				theirs, err := r.read(o)
				if err != nil {
					return fmt.Errorf("outsider: %w", err)
				}
				return sameJSON(mine, theirs)
			})
		}
		as, err := o.Authorities(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := findAuthority(as, auth.ID); !ok || got.Status != credit.StatusActive {
			t.Fatalf("outsider's authorities lack the active %s: %+v", auth.ID, got)
		}
		if hist, err := o.CheckpointHistory(ctx, a.Member.ID); err != nil || len(hist) == 0 {
			t.Fatalf("outsider's checkpoint history of %s: %d, %v", a.Member.ID, len(hist), err)
		}
		// The event stream from the start, as far as the new consent, is
		// the region's event for event: an auditor rebuilds key history
		// from it.
		mine := collect(ctx, t, h, a.Ledger, network.Position{}, c.ID)
		theirs := collect(ctx, t, h, o, network.Position{}, c.ID)
		if len(mine) != len(theirs) {
			t.Fatalf("outsider's stream has %d events up to the consent, the region's %d", len(theirs), len(mine))
		}
		for i := range mine {
			if err := sameJSON(mine[i], theirs[i]); err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
		}
	})

	t.Run("writes denied", func(t *testing.T) {
		latest, err := a.Ledger.LatestCheckpoint(ctx, a.Member.ID)
		if err != nil {
			t.Fatal(err)
		}
		claimed := a.Member
		claimed.MSPID = o.Identity() // taking the region over
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		newBank := credit.BankMember{ID: credit.BankID(uniq("outsider-bank")), Name: "Outsider Bank", Region: a.Member.ID, PubKey: pub}
		writes := []struct {
			what  string
			write func() error
		}{
			{"updating a region's record as it stands", func() error { return o.UpdateRegion(ctx, a.Member) }},
			{"updating a region's record to its own MSP id", func() error { return o.UpdateRegion(ctx, claimed) }},
			{"registering a bank", func() error { return o.RegisterBank(ctx, newBank) }},
			{"retiring a bank", func() error { return o.RetireBank(ctx, bank) }},
			{"recording a region's consent again", func() error { return o.RecordConsent(ctx, c) }},
			{"recording a new consent", func() error {
				return o.RecordConsent(ctx, commitment(uniq("outsider"), a.Member.ID, time.Now().Add(-time.Minute)))
			}},
			{"revoking a consent", func() error { return errOnly(o.RevokeConsent(ctx, c.ID)) }},
			{"registering an authority again", func() error { return o.RegisterAuthority(ctx, auth) }},
			{"retiring an authority", func() error { return errOnly(o.RetireAuthority(ctx, auth.ID)) }},
			{"revoking a certificate", func() error {
				return errOnly(o.RevokeCertificate(ctx, credit.CertRevocation{ID: newRevocationID(), Authority: auth.ID}))
			}},
			{"anchoring a region's latest checkpoint again", func() error {
				return errOnly(o.AnchorCheckpoint(ctx, latest.Checkpoint, nil))
			}},
		}
		for _, w := range writes {
			wantKind(t, w.write(), network.ErrDenied, "outsider "+w.what)
		}
		// After the bootstrap nobody may bootstrap, the outsider included.
		wantKind(t, o.Bootstrap(ctx, []credit.RegionMember{claimed}, nil), network.ErrConflict, "outsider bootstrapping a bootstrapped ledger")

		// Nothing it tried took effect.
		if got, err := a.Ledger.Consent(ctx, c.ID); err != nil || got.Status != credit.ConsentActive {
			t.Errorf("consent after the outsider's revocation: %+v, %v", got, err)
		}
		if got, err := a.Ledger.Region(ctx, a.Member.ID); err != nil || got.MSPID != a.Member.MSPID {
			t.Errorf("region after the outsider's update: %+v, %v", got, err)
		}
		if got, err := a.Ledger.Bank(ctx, bank); err != nil || got.Status != credit.StatusActive {
			t.Errorf("bank after the outsider's retirement: %+v, %v", got, err)
		}
		if _, err := a.Ledger.Bank(ctx, newBank.ID); err == nil {
			t.Errorf("the outsider's bank %s is on the ledger", newBank.ID)
		}
		as, err := a.Ledger.Authorities(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := findAuthority(as, auth.ID); !ok || got.Status != credit.StatusActive {
			t.Errorf("authority after the outsider's retirement: %+v", got)
		}
		if cur, err := a.Ledger.LatestCheckpoint(ctx, a.Member.ID); err != nil || cur.TxID != latest.TxID {
			t.Errorf("latest checkpoint after the outsider's anchoring: %+v, %v (was tx %s)", cur, err, latest.TxID)
		}
	})
}

// sameJSON compares two read results by their JSON form: what a client
// received, whatever the backend's in-memory representation.
func sameJSON(want, got any) error {
	w, err := json.Marshal(want)
	if err != nil {
		return err
	}
	g, err := json.Marshal(got)
	if err != nil {
		return err
	}
	if !bytes.Equal(w, g) {
		return fmt.Errorf("outsider read %s, region read %s", clip(g), clip(w))
	}
	return nil
}

func clip(b []byte) string {
	s := string(b)
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return strings.TrimSpace(s)
}
