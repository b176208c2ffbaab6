package bankclient

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// Trust is what a bank trusts to check answers: each region's Ed25519
// key, as the consortium's ledger lists it (pub_key of the region's member
// record; the key that signs its receipts, acks and checkpoints).
type Trust struct {
	Regions map[credit.RegionID]ed25519.PublicKey
	// PastKeys are a region's keys before a rotation, oldest first, each
	// with the time the ledger replaced it (past_keys of its record): what
	// it signed before then verifies under the key of that time.
	PastKeys map[credit.RegionID][]credit.PastKey
}

// key is region r's key at time at (credit.RegionMember.KeyAt).
func (t *Trust) key(r credit.RegionID, at time.Time) (ed25519.PublicKey, error) {
	k, ok := t.Regions[r]
	if !ok || len(k) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: no key for region %s", ErrVerify, r)
	}
	return ed25519.PublicKey(credit.RegionMember{PubKey: k, PastKeys: t.PastKeys[r]}.KeyAt(at)), nil
}

// VerifyAnswer checks a consolidated answer to q: it answers q (its
// digest), and every region that answered (status ok) carries a receipt
// signed by that region's key naming q, the answering and the home region,
// whose report digest and record count are those of the records returned,
// and the home node's ack of that receipt signed by the home region's
// key. A failure is a *VerifyError wrapping ErrVerify.
func (t *Trust) VerifyAnswer(q *credit.Query, c *Consolidated) error {
	qd, err := q.Digest()
	if err != nil {
		return fmt.Errorf("%w: query digest: %w", ErrVerify, err)
	}
	if c.QueryDigest != hex.EncodeToString(qd[:]) {
		return fmt.Errorf("%w: the answer is for query %s, not this one (%x)", ErrVerify, c.QueryDigest, qd)
	}
	if _, err := t.key(c.Home, time.Now()); err != nil {
		return err
	}
	total := 0
	for i := range c.Regions {
		st := &c.Regions[i]
		if st.Status != StatusOK {
			continue
		}
		if err := t.verifyRegion(q, qd, c.Home, st); err != nil {
			return &VerifyError{Region: st.Region, Err: err}
		}
		total += st.RecordCount
	}
	if total != c.RecordCount {
		return fmt.Errorf("%w: record_count %d, but the regions' receipts count %d", ErrVerify, c.RecordCount, total)
	}
	return nil
}

func (t *Trust) verifyRegion(q *credit.Query, qd [32]byte, home credit.RegionID, st *RegionStatus) error {
	r := st.Receipt
	if r == nil || st.Report == nil || st.Ack == nil {
		return fmt.Errorf("%w: an answered region needs its report, receipt and ack", ErrVerify)
	}
	if r.Answerer != st.Region || r.Requester != home {
		return fmt.Errorf("%w: receipt %s names %s→%s", ErrVerify, r.ID, r.Answerer, r.Requester)
	}
	key, err := t.key(st.Region, r.Time)
	if err != nil {
		return err
	}
	if err := r.Verify(key); err != nil {
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	rq, err := r.Query.Digest()
	if err != nil || rq != qd {
		return fmt.Errorf("%w: receipt %s names another query", ErrVerify, r.ID)
	}
	d := st.Report.Digest()
	if !bytes.Equal(d[:], r.ReportDigest) || r.RecordCount != st.Report.Count() || st.RecordCount != r.RecordCount {
		return fmt.Errorf("%w: receipt %s: report digest or record count differs from the records returned", ErrVerify, r.ID)
	}
	if st.Report.Subject != q.Subject || !credit.CategoriesSubset(st.Report.Categories(), q.Categories) {
		return fmt.Errorf("%w: region returned records of another subject or outside the query's categories", ErrVerify)
	}
	if st.Ack.Requester != home {
		return fmt.Errorf("%w: ack by %s, not the home region %s", ErrVerify, st.Ack.Requester, home)
	}
	homeKey, err := t.key(home, st.Ack.Time)
	if err != nil {
		return err
	}
	if err := st.Ack.Verify(r, homeKey); err != nil {
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	return nil
}

// VerifyReceipt checks a receipt's signature under its answering
// region's key at the receipt's time.
func (t *Trust) VerifyReceipt(r *credit.Receipt) error {
	key, err := t.key(r.Answerer, r.Time)
	if err != nil {
		return err
	}
	if err := r.Verify(key); err != nil {
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	return nil
}

// VerifyProof checks a receipt with its inclusion proof: the leaf is the
// receipt's canonical encoding, signed by the answering region; the proof
// puts the leaf at leaf_index in the tree of tree_size leaves whose root
// is root; and, when anchored, the checkpoint is signed by that region and
// states that size and root.
func (t *Trust) VerifyProof(rp *ReceiptProof) error {
	r := &rp.Receipt
	leaf, err := r.LeafBytes()
	if err != nil || !bytes.Equal(leaf, rp.Leaf) {
		return fmt.Errorf("%w: receipt %s: leaf is not the receipt's canonical encoding", ErrVerify, r.ID)
	}
	if err := t.VerifyReceipt(r); err != nil {
		return err
	}
	if err := VerifyInclusion(rp.Leaf, rp.LeafIndex, rp.TreeSize, rp.Proof, rp.Root); err != nil {
		return fmt.Errorf("receipt %s: %w", r.ID, err)
	}
	if cp := rp.Checkpoint; cp != nil {
		if cp.Region != r.Answerer || cp.Size != rp.TreeSize || !bytes.Equal(cp.Root, rp.Root) {
			return fmt.Errorf("%w: receipt %s: checkpoint of %s at %d is not the proof's tree", ErrVerify, r.ID, cp.Region, cp.Size)
		}
		// Signed when anchored, maybe under a newer key than the receipt.
		cpKey, err := t.key(r.Answerer, cp.AnchoredAt)
		if err != nil {
			return err
		}
		if err := cp.Verify(cpKey); err != nil {
			return fmt.Errorf("%w: %w", ErrVerify, err)
		}
	}
	return nil
}

// LeafHash is RFC 6962's hash of a log entry: SHA-256(0x00 || leaf).
func LeafHash(leaf []byte) []byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(leaf)
	return h.Sum(nil)
}

func nodeHash(l, r []byte) []byte {
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(l)
	h.Write(r)
	return h.Sum(nil)
}

// VerifyInclusion checks an RFC 6962 inclusion proof of leaf at index in
// the tree of size leaves with root (the algorithm of RFC 9162 section
// 2.1.3.2).
func VerifyInclusion(leaf []byte, index, size uint64, proof [][]byte, root []byte) error {
	if index >= size {
		return fmt.Errorf("%w: leaf index %d outside a tree of %d leaves", ErrVerify, index, size)
	}
	fn, sn := index, size-1
	r := LeafHash(leaf)
	for _, p := range proof {
		if sn == 0 {
			return fmt.Errorf("%w: inclusion proof longer than the tree is deep", ErrVerify)
		}
		if fn&1 == 1 || fn == sn {
			r = nodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = nodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return fmt.Errorf("%w: inclusion proof shorter than the tree is deep", ErrVerify)
	}
	if !bytes.Equal(r, root) {
		return fmt.Errorf("%w: inclusion proof does not lead to the root", ErrVerify)
	}
	return nil
}

// LoadTrust reads region keys from a JSON file of the shape of a ledger
// bootstrap file, {"regions": [{"id": "440300", "pub_key": "<base64>",
// "past_keys": [{"pub_key": "<base64>", "until": "<RFC 3339>"}]}, ...]}
// (past_keys optional, other member fields ignored): the file the Python
// client's --region-keys reads too, and 'ccnode consortium region-keys'
// writes.
func LoadTrust(path string) (Trust, error) {
	t := Trust{Regions: map[credit.RegionID]ed25519.PublicKey{}}
	b, err := os.ReadFile(path)
	if err != nil {
		return t, err
	}
	var doc struct {
		Regions []credit.RegionMember `json:"regions"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return t, fmt.Errorf("region keys %s: want {\"regions\": [{\"id\": ..., \"pub_key\": base64}]}: %w", path, err)
	}
	for _, m := range doc.Regions {
		if len(m.PubKey) != ed25519.PublicKeySize {
			return t, fmt.Errorf("region keys %s: region %s: pub_key of %d bytes, want %d", path, m.ID, len(m.PubKey), ed25519.PublicKeySize)
		}
		t.Regions[m.ID] = ed25519.PublicKey(m.PubKey)
		for i, k := range m.PastKeys {
			if len(k.PubKey) != ed25519.PublicKeySize || k.Until.IsZero() {
				return t, fmt.Errorf("region keys %s: region %s: past_keys[%d]: want a %d-byte pub_key and the time it was replaced (until)", path, m.ID, i, ed25519.PublicKeySize)
			}
			if i > 0 && !m.PastKeys[i-1].Until.Before(k.Until) {
				return t, fmt.Errorf("region keys %s: region %s: past_keys[%d]: replaced at %s, not after the key before it: want the oldest first", path, m.ID, i, k.Until.Format(time.RFC3339Nano))
			}
		}
		if len(m.PastKeys) > 0 {
			if t.PastKeys == nil {
				t.PastKeys = map[credit.RegionID][]credit.PastKey{}
			}
			t.PastKeys[m.ID] = m.PastKeys
		}
	}
	if len(t.Regions) == 0 {
		return t, fmt.Errorf("region keys %s: no region", path)
	}
	return t, nil
}
