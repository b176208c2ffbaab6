package credit

import (
	"crypto/ed25519"
	"fmt"
	"time"
)

// tagKeyChange is the signing domain of a node key change.
const tagKeyChange = "ccnode/key-change/v1"

// KeyChange is a region's node key rotation, signed by the key it
// replaces: a region's ledger identity alone (a stolen Fabric client
// certificate, an embedded ledger key) cannot put a key of its choosing in
// the region's record, since every receipt and checkpoint the region signs
// is checked against that key. The contract verifies it against the
// record's current key when the record's key changes.
type KeyChange struct {
	Region   RegionID  `json:"region"`
	NewKey   []byte    `json:"new_key"`
	SignedAt time.Time `json:"signed_at"`
	// Sig is the old key's signature over the other fields.
	Sig []byte `json:"sig,omitempty"`
}

func (k KeyChange) unsigned() KeyChange {
	k.Sig = nil
	k.SignedAt = k.SignedAt.UTC()
	return k
}

// SignKeyChange signs a change of region's node key to newKey with the old
// key, dated at.
func SignKeyChange(old ed25519.PrivateKey, region RegionID, newKey ed25519.PublicKey, at time.Time) (KeyChange, error) {
	k := KeyChange{Region: region, NewKey: newKey, SignedAt: at.UTC().Truncate(time.Millisecond)}
	sig, err := signValue(old, tagKeyChange, k.unsigned())
	if err != nil {
		return KeyChange{}, fmt.Errorf("signing the key change: %w", err)
	}
	k.Sig = sig
	return k, nil
}

// Verify checks that k changes region's key to newKey and that old signed
// it.
func (k KeyChange) Verify(old []byte, region RegionID, newKey []byte) error {
	if k.Region != region {
		return fmt.Errorf("key change names region %s, not %s", Quote(string(k.Region)), region)
	}
	if !ed25519.PublicKey(newKey).Equal(ed25519.PublicKey(k.NewKey)) {
		return fmt.Errorf("key change names another new key than the record's")
	}
	if err := verifyValue(old, tagKeyChange, k.unsigned(), k.Sig); err != nil {
		return fmt.Errorf("key change of region %s: not signed by the region's current key: %w", region, err)
	}
	return nil
}

// PastKey is a region's node key and when the ledger replaced it.
type PastKey struct {
	PubKey []byte    `json:"pub_key"`
	Until  time.Time `json:"until"`
}

// KeyAt is the region's node key at ledger time t: the first past key
// replaced after t, else the current one.
func (m RegionMember) KeyAt(t time.Time) []byte {
	for _, k := range m.PastKeys {
		if t.Before(k.Until) {
			return k.PubKey
		}
	}
	return m.PubKey
}
