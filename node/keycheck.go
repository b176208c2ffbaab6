package node

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// KeyFingerprint is how messages and `ccnode keys show` name a public key:
// SHA256: and the unpadded base64 of its SHA-256.
func KeyFingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// checkOwnRecord holds the node against its region's ledger record. It
// refuses with CodeNodeKeyMismatch while the region's record
// in the ledger view names another key than the node's: every receipt,
// ack, checkpoint and countersignature it made would then fail
// verification elsewhere (a consent it countersigns would be refused
// everywhere as consent_signature_invalid), so it says so instead. A
// region with no record is left to the membership checks.
//
// A candidate (a region not yet admitted) is refused not_member, naming
// the command that proposes it. A region the consortium retired is refused first (not_member): its node
// must neither answer nor look ready, though what it signed before stays
// verifiable.
func (n *Node) checkOwnRecord() error {
	if err := n.candidateRefusal(); err != nil {
		return err
	}
	rec, ok := n.view.Region(n.cfg.Region)
	if !ok {
		return nil
	}
	if rec.Status == credit.StatusRetired {
		return credit.Refuse(credit.CodeNotMember,
			"region %s was retired from the consortium on the ledger (%s): this node answers no queries and anchors only the receipts it gave before; what it signed stays verifiable",
			n.cfg.Region, rec.UpdatedAt.UTC().Format(time.RFC3339))
	}
	pub := n.key.Public().(ed25519.PublicKey)
	if pub.Equal(ed25519.PublicKey(rec.PubKey)) {
		return nil
	}
	pid, _ := PeerID(pub)
	recorded := "no valid key"
	if len(rec.PubKey) == ed25519.PublicKeySize {
		recorded = KeyFingerprint(ed25519.PublicKey(rec.PubKey))
	}
	return credit.Refuse(credit.CodeNodeKeyMismatch,
		"node key %s (peer id %s) is not the key the ledger records for region %s (%s, peer id %s), so nothing this node signs verifies: "+
			"compare with 'ccnode keys show --config CONFIG', then run the node with the recorded key, or restart it with this one to publish it in the record",
		KeyFingerprint(pub), pid, n.cfg.Region, recorded, rec.PeerID)
}
