package bankclient_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node/bankclient"
)

// TestVerifyProofOnSigningVectors: the client verifies the signing
// vectors' receipt (credit/testdata/vectors.json, the spec's) with its
// inclusion proof and signed checkpoint under the vectors' region key,
// and refuses it under another key or with a field changed.
func TestVerifyProofOnSigningVectors(t *testing.T) {
	b, err := os.ReadFile("../../credit/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Keys map[string]struct {
			PublicHex string `json:"public_hex"`
		} `json:"keys"`
		Receipt struct {
			LeafHex string `json:"leaf_hex"`
		} `json:"receipt"`
		Log struct {
			LeafIndex      uint64   `json:"leaf_index"`
			TreeSize       uint64   `json:"tree_size"`
			RootHex        string   `json:"root_hex"`
			ProofHex       []string `json:"inclusion_proof_hex"`
			Region         string   `json:"region"`
			CheckpointNote string   `json:"checkpoint_note"`
		} `json:"log"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	leaf := unhex(v.Receipt.LeafHex)
	r, err := credit.DecodeReceipt(leaf)
	if err != nil {
		t.Fatal(err)
	}
	rp := bankclient.ReceiptProof{Receipt: r, Leaf: leaf, LeafIndex: v.Log.LeafIndex, TreeSize: v.Log.TreeSize, Root: unhex(v.Log.RootHex)}
	for _, p := range v.Log.ProofHex {
		rp.Proof = append(rp.Proof, unhex(p))
	}
	rp.Checkpoint = &credit.AnchoredCheckpoint{Checkpoint: credit.Checkpoint{Region: credit.RegionID(v.Log.Region), Size: rp.TreeSize,
		Root: rp.Root, Note: v.Log.CheckpointNote}}
	region := credit.RegionID(v.Log.Region)
	trust := bankclient.Trust{Regions: map[credit.RegionID]ed25519.PublicKey{region: unhex(v.Keys["region_"+v.Log.Region].PublicHex)}}
	if err := trust.VerifyProof(&rp); err != nil {
		t.Fatalf("the spec's receipt and proof: %v", err)
	}
	other := bankclient.Trust{Regions: map[credit.RegionID]ed25519.PublicKey{region: unhex(v.Keys["region_440300"].PublicHex)}}
	if err := other.VerifyProof(&rp); !errors.Is(err, bankclient.ErrVerify) {
		t.Fatalf("verified under another region's key: %v", err)
	}
	changed := rp
	changed.Receipt.RecordCount++
	if err := trust.VerifyProof(&changed); !errors.Is(err, bankclient.ErrVerify) {
		t.Fatalf("a changed receipt verified: %v", err)
	}
	changed = rp
	cp := *rp.Checkpoint
	cp.Size--
	changed.Checkpoint = &cp
	if err := trust.VerifyProof(&changed); !errors.Is(err, bankclient.ErrVerify) {
		t.Fatalf("a checkpoint of another size verified: %v", err)
	}
}
