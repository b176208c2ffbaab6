package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network"
)

// A consent document whose signatures verified once is not verified
// again, but a document that differs in any byte, or an issuer whose key
// changed on the ledger, is checked afresh and refused if it is forged.
func TestDecideConsentRemembersOnlyVerifiedDocuments(t *testing.T) {
	now := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	_, bankKey, _ := ed25519.GenerateKey(rand.Reader)
	_, regionKey, _ := ed25519.GenerateKey(rand.Reader)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)

	doc := credit.ConsentGrant{Version: credit.ConsentVersion, ID: "consent-cache-1", Subject: "91440300708461136T", Grantee: "bank-a",
		Categories: []credit.Category{credit.Tax}, Purpose: credit.PurposeLoanApplication,
		ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(24 * time.Hour), Region: "440300"}
	ca := testkit.NewAuthority(t, "440300", "4403")
	ca.SignConsent(t, &doc, now.Add(-time.Hour))
	if err := doc.Countersign(regionKey); err != nil {
		t.Fatal(err)
	}
	v := NewView(nil, nil, time.Minute, func() time.Time { return now }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	v.synced = now
	v.apply(network.Event{Kind: network.EventAuthorityChanged, Authority: &ca.Record})
	v.regions["440300"] = credit.RegionMember{ID: "440300", PubKey: regionKey.Public().(ed25519.PublicKey), Status: credit.StatusActive}
	v.banks["bank-a"] = credit.BankMember{ID: "bank-a", Region: "440300", PubKey: bankKey.Public().(ed25519.PublicKey), Status: credit.StatusActive}
	record := func(g credit.ConsentGrant) {
		c, err := g.Commitment()
		if err != nil {
			t.Fatal(err)
		}
		v.consents[g.ID] = credit.ConsentCommitment{ID: g.ID, Commitment: c[:], Region: g.Region,
			ValidFrom: g.ValidFrom, ValidUntil: g.ValidUntil, Status: credit.ConsentActive, RecordedAt: now.Add(-time.Hour)}
	}
	query := func(g credit.ConsentGrant, nonce string) *credit.Query {
		q := &credit.Query{Version: 1, Bank: "bank-a", Subject: g.Subject, Categories: g.Categories, Purpose: g.Purpose,
			ConsentID: g.ID, Consent: &g, Nonce: nonce, Time: now}
		if err := q.Sign(bankKey); err != nil {
			t.Fatal(err)
		}
		return q
	}
	ctx := context.Background()
	record(doc)
	for i, nonce := range []string{"nonce-00000001", "nonce-00000002"} {
		if err := v.DecideConsent(ctx, query(doc, nonce), now, nil); err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
	}
	if len(v.docs.m) != 1 {
		t.Fatalf("%d documents remembered, want 1", len(v.docs.m))
	}

	// A forged countersignature on a document the ledger commits to (a
	// region that recorded a commitment of a bad document) is still refused.
	forged := doc
	forged.ID = "consent-cache-2"
	if err := forged.Countersign(otherKey); err != nil {
		t.Fatal(err)
	}
	record(forged)
	if err := v.DecideConsent(ctx, query(forged, "nonce-00000003"), now, nil); credit.CodeOf(err) != credit.CodeConsentSignature {
		t.Fatalf("forged countersignature: %v", err)
	}
	// The issuer's key rotates on the ledger: the remembered verification
	// no longer applies and the old countersignature fails.
	v.regions["440300"] = credit.RegionMember{ID: "440300", PubKey: otherKey.Public().(ed25519.PublicKey), Status: credit.StatusActive}
	if err := v.DecideConsent(ctx, query(doc, "nonce-00000004"), now, nil); credit.CodeOf(err) != credit.CodeConsentSignature {
		t.Fatalf("after key rotation: %v", err)
	}
}
