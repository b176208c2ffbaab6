package audit

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// FuzzReadSnapshot: a ledger snapshot file is what an auditor is handed
// on an air-gapped machine, so it is outside bytes. Reading must fail
// with ErrSnapshotFormat or give a snapshot every lookup of the audit can
// run on without panicking.
func FuzzReadSnapshot(f *testing.F) {
	s := NewSnapshot()
	s.AddRegion(credit.RegionMember{ID: "440300", MSPID: "SZMSP", PubKey: []byte{1, 2}, Status: credit.StatusActive, UpdatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	s.AddBank(credit.BankMember{ID: "bank-a", Region: "440300", PubKey: []byte{3}, Status: credit.StatusActive})
	s.AddCheckpoint(credit.AnchoredCheckpoint{})
	ca, err := credit.NewAuthorityCert("Fuzz Authority", key("authority"), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		f.Fatal(err)
	}
	s.AddAuthority(credit.IdentityAuthority{ID: credit.AuthorityID(ca), Cert: ca, Region: "440300", Divisions: []string{"4403"}, Status: credit.StatusActive})
	s.AddRevocation(credit.CertRevocation{ID: "00", Authority: credit.AuthorityID(ca), Region: "440300"})
	var b bytes.Buffer
	if err := s.Write(&b); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Add([]byte(`{"format":"` + SnapshotFormat + `","regions":{"440300":[]}}`))
	f.Add([]byte(`{"format":"` + SnapshotFormat + `","consents":{"c1":{"id":"c1","revoked_at":"2026-01-01T00:00:00Z"}}}`))
	f.Add([]byte(`{"format":"x"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ReadSnapshot(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrSnapshotFormat) {
				t.Fatalf("error %v does not wrap ErrSnapshotFormat", err)
			}
			return
		}
		ctx := context.Background()
		rs, _ := s.Regions(ctx)
		for _, r := range rs {
			s.RegionHistory(r.ID)
			s.CheckpointHistory(ctx, r.ID)
		}
		bs, _ := s.Banks(ctx)
		for _, b := range bs {
			s.BankHistory(b.ID)
		}
		s.Authorities(ctx)
		s.Revocations(ctx)
		for id := range s.ConsentRecords {
			s.ConsentAt(ctx, id, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
		}
	})
}
