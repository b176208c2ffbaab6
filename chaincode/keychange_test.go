package chaincode

import (
	"bytes"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// A region's node key changes only with a change the current key signed:
// the region's ledger identity alone (here GZMSP) cannot install a key of
// its choosing, replay an older change, or date one in the future.
func TestUpdateRegionKeyChangeNeedsOldKey(t *testing.T) {
	l, rs := bootstrapped(t)
	gz := rs[1]
	newKey := testRegion(t, "9new", "X", "1").key
	newPub := newKey.Public().(ed25519.PublicKey)
	update := func(at time.Time, m credit.RegionMember) error {
		_, err := l.run("GZMSP", at, func(c TxContext) error { return Contract{}.UpdateRegion(c, mustJSON(m)) })
		return err
	}
	record := func() credit.RegionMember {
		m, _, err := getJSON[credit.RegionMember](&memTx{l: l, msp: "GZMSP", at: t0}, prefixRegion+"440100", "region")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	withKey := func(pub ed25519.PublicKey, k *credit.KeyChange) credit.RegionMember {
		m := record()
		m.PubKey, m.PeerID, m.KeyChange = pub, "peer-new", k
		return m
	}
	sign := func(by ed25519.PrivateKey, pub ed25519.PublicKey, at time.Time) *credit.KeyChange {
		k, err := credit.SignKeyChange(by, gz.member.ID, pub, at)
		if err != nil {
			t.Fatal(err)
		}
		return &k
	}
	at := t0.Add(time.Hour)
	refusals := []struct {
		name string
		m    credit.RegionMember
		code string
	}{
		{"no key change", withKey(newPub, nil), CodeDenied},
		{"signed by the new key", withKey(newPub, sign(newKey, newPub, at.Add(-time.Minute))), CodeDenied},
		{"signed by another region's key", withKey(newPub, sign(rs[0].key, newPub, at.Add(-time.Minute))), CodeDenied},
		{"names another key", withKey(newPub, sign(gz.key, rs[2].member.PubKey, at.Add(-time.Minute))), CodeDenied},
		{"dated before the record's last change", withKey(newPub, sign(gz.key, newPub, t0.Add(-time.Second))), CodeDenied},
		{"dated in the ledger's future", withKey(newPub, sign(gz.key, newPub, at.Add(6*time.Minute))), CodeInvalid},
		// Signed by the region's own key, but the key or peer id is
		// another region's: requests for that region would reach this
		// one's node, and its receipts would verify as this region's.
		{"another region's key", withKey(rs[2].member.PubKey, sign(gz.key, rs[2].member.PubKey, at.Add(-time.Minute))), CodeConflict},
		{"another region's peer id", func() credit.RegionMember { m := record(); m.PeerID = rs[0].member.PeerID; return m }(), CodeConflict},
	}
	for _, r := range refusals {
		if err := update(at, r.m); CodeOf(err) != r.code {
			t.Errorf("%s: %v, want code %s", r.name, err, r.code)
		}
	}
	if m := record(); !bytes.Equal(m.PubKey, gz.member.PubKey) {
		t.Fatal("a refused change moved the key")
	}

	change := sign(gz.key, newPub, at.Add(-time.Minute))
	if err := update(at, withKey(newPub, change)); err != nil {
		t.Fatalf("a change the old key signed: %v", err)
	}
	m := record()
	if !bytes.Equal(m.PubKey, newPub) || m.KeyChange == nil || !bytes.Equal(m.KeyChange.Sig, change.Sig) {
		t.Fatalf("record after the change: %+v", m)
	}
	// The replaced key stays in the record with the change's ledger time:
	// what the region signed before (consent countersignatures) still
	// checks against the key of its time.
	if len(m.PastKeys) != 1 || !bytes.Equal(m.PastKeys[0].PubKey, gz.member.PubKey) || !m.PastKeys[0].Until.Equal(at) ||
		!bytes.Equal(m.KeyAt(at.Add(-time.Nanosecond)), gz.member.PubKey) || !bytes.Equal(m.KeyAt(at), newPub) {
		t.Fatalf("past keys after the change: %+v", m.PastKeys)
	}
	// An address update keeps the verified change whatever it carries.
	m.Addrs, m.KeyChange = []string{"/ip4/127.0.0.1/tcp/4001"}, nil
	if err := update(at.Add(time.Minute), m); err != nil {
		t.Fatal(err)
	}
	if m := record(); m.KeyChange == nil || !bytes.Equal(m.KeyChange.Sig, change.Sig) || len(m.PastKeys) != 1 {
		t.Fatalf("an address update dropped the key change: %+v", m)
	}
	// Back to the old key (signed by the new one), then the first change
	// replayed: refused, it predates the record.
	if err := update(at.Add(2*time.Minute), withKey(gz.member.PubKey, sign(newKey, gz.member.PubKey, at.Add(2*time.Minute)))); err != nil {
		t.Fatal(err)
	}
	if err := update(at.Add(3*time.Minute), withKey(newPub, change)); CodeOf(err) != CodeDenied {
		t.Fatalf("replayed change: %v, want denied", err)
	}
}
