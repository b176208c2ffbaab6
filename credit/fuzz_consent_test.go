package credit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"
)

// FuzzConsentDocument: a consent document travels with every query, from
// banks and other regions. Decoding, validating, verifying and hashing
// arbitrary bytes must never panic; a document that validates and whose
// enterprise signature verifies must keep its commitment and signatures
// across a JSON round trip (the commitment on the ledger is over the
// canonical form, whatever the sender's spelling).
func FuzzConsentDocument(f *testing.F) {
	ent := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	reg := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	u, err := CompleteUSCC("91440300MA0000001")
	if err != nil {
		f.Fatal(err)
	}
	g := ConsentGrant{Version: ConsentVersion, ID: "consent-01", Subject: u, Grantee: "bank-a", Categories: []Category{Tax, Penalty},
		Purpose: PurposeLoanApplication, ValidFrom: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		ValidUntil: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), Region: "440300"}
	chain := newTestCA(f, 5, "440300", "4403").issue(f, u, ent, caFrom, g.ValidUntil)
	if err := g.SignEnterprise(ent, chain, g.ValidFrom); err != nil {
		f.Fatal(err)
	}
	if err := g.Countersign(reg); err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(g)
	f.Add(good)
	f.Add(bytes.Replace(good, []byte(`"tax"`), []byte(`"customs"`), 1))
	f.Add(bytes.Replace(good, []byte(`Z"`), []byte(`+08:00"`), 1))
	f.Add([]byte(`{"v":1,"categories":[]}`))
	f.Add([]byte(`{"v":1,"enterprise_key":"AAAA","enterprise_sig":null}`))
	f.Add([]byte(`null`))
	regPub := reg.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		var g ConsentGrant
		if json.Unmarshal(b, &g) != nil {
			return
		}
		verr := g.Validate()
		entErr := g.VerifyEnterprise()
		g.VerifyRegion(regPub)
		g.VerifyRegion(nil)
		c1, cerr := g.Commitment()
		g.Covers(time.Now())
		if verr != nil || entErr != nil || cerr != nil {
			return
		}
		again, err := json.Marshal(g)
		if err != nil {
			t.Fatalf("re-encode a valid document: %v", err)
		}
		var g2 ConsentGrant
		if err := json.Unmarshal(again, &g2); err != nil {
			t.Fatalf("decode the re-encoded document: %v\n%s", err, again)
		}
		if err := g2.VerifyEnterprise(); err != nil {
			t.Fatalf("enterprise signature lost in a round trip: %v\n%s\n%s", err, b, again)
		}
		if c2, err := g2.Commitment(); err != nil || c2 != c1 {
			t.Fatalf("commitment changed in a round trip (%v)\n%s\n%s", err, b, again)
		}
	})
}
