package credit

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a region's signed statement of its receipt log's size and
// RFC 6962 root hash. Note is the statement itself, a C2SP tlog-checkpoint
// (https://c2sp.org/tlog-checkpoint) in signed-note form
// (https://c2sp.org/signed-note):
//
//	ccnode/<network>/<region>
//	<size>
//	<base64 root>
//
//	— ccnode/<network>/<region> <base64 of key hash || Ed25519 signature>
//
// so that standard verifiers and witnesses check a region's log without
// ccnode. Region, Size and Root repeat what the note says for readers of
// the JSON; Verify refuses a checkpoint whose fields and note differ.
type Checkpoint struct {
	Region RegionID `json:"region"`
	Size   uint64   `json:"size"`
	Root   []byte   `json:"root"`
	Note   string   `json:"note"`
}

// originPrefix starts every ccnode log's origin line.
const originPrefix = "ccnode/"

// CheckpointOrigin is the origin line of region's receipt log in the
// consortium network (the node's p2p.network_id): "ccnode/<network>/<region>".
// It is also the note key name of the region's signature, so a witness
// configured with CheckpointVerifierKey knows the log by one string.
func CheckpointOrigin(network string, region RegionID) (string, error) {
	if !networkShape.match(network) {
		return "", fmt.Errorf("network id %s: want 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit", Quote(network))
	}
	if err := ValidateRegionID(region); err != nil {
		return "", err
	}
	return originPrefix + network + "/" + string(region), nil
}

// ParseCheckpointOrigin splits an origin made by CheckpointOrigin.
func ParseCheckpointOrigin(origin string) (network string, region RegionID, err error) {
	rest, ok := strings.CutPrefix(origin, originPrefix)
	network, r, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		return "", "", fmt.Errorf("checkpoint origin %s: want ccnode/<network>/<region>", Quote(origin))
	}
	if _, err := CheckpointOrigin(network, RegionID(r)); err != nil {
		return "", "", fmt.Errorf("checkpoint origin %s: %w", Quote(origin), err)
	}
	return network, RegionID(r), nil
}

// CheckpointVerifierKey is the note verifier key
// ("<origin>+<key hash>+<base64 of 0x01 || public key>") of a region's
// checkpoints: what note.NewVerifier and witnesses take. pub is the
// region's Ed25519 key, the public key of its libp2p identity, as its
// member record on the ledger holds it.
func CheckpointVerifierKey(origin string, pub []byte) (string, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("%w: public key has %d bytes, want %d", ErrBadSignature, len(pub), ed25519.PublicKeySize)
	}
	vkey, err := note.NewEd25519VerifierKey(origin, ed25519.PublicKey(pub))
	if err != nil {
		return "", fmt.Errorf("checkpoint verifier key for %s: %w", Quote(origin), err)
	}
	return vkey, nil
}

// noteSigner signs a note with the region's key: note.NewSigner takes only
// its own "PRIVATE+KEY+..." encoding, and the node holds a raw key.
type noteSigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func (s noteSigner) Name() string                    { return s.name }
func (s noteSigner) KeyHash() uint32                 { return s.hash }
func (s noteSigner) Sign(msg []byte) ([]byte, error) { return signMessage(s.key, msg), nil }

// Sign writes c's Note for (network, c.Region, c.Size, c.Root), signed by
// the region's key.
func (c *Checkpoint) Sign(network string, regionKey ed25519.PrivateKey) error {
	if len(regionKey) != ed25519.PrivateKeySize {
		return fmt.Errorf("signing key: want %d bytes, got %d", ed25519.PrivateKeySize, len(regionKey))
	}
	origin, err := CheckpointOrigin(network, c.Region)
	if err != nil {
		return fmt.Errorf("checkpoint of %s: %w", c.Region, err)
	}
	v, err := verifierFor(origin, regionKey.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	text := log.Checkpoint{Origin: origin, Size: c.Size, Hash: c.Root}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(text)}, noteSigner{name: origin, hash: v.KeyHash(), key: regionKey})
	if err != nil {
		return fmt.Errorf("checkpoint of %s at size %d: %w", c.Region, c.Size, err)
	}
	c.Note = string(signed)
	return nil
}

func verifierFor(origin string, pub []byte) (note.Verifier, error) {
	vkey, err := CheckpointVerifierKey(origin, pub)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("checkpoint verifier for %s: %w", Quote(origin), err)
	}
	return v, nil
}

// Origin is the origin line of c's note ("" when there is no note).
func (c *Checkpoint) Origin() string {
	o, _, _ := strings.Cut(c.Note, "\n")
	return o
}

// Verify checks that c's note is exactly one checkpoint of c's region's
// log, in canonical form (no extension lines), signed by regionPub under
// the origin's name and nothing else, and that it states c.Size and c.Root.
// Every failure wraps ErrBadSignature: the signed statement does not say
// what c claims.
func (c *Checkpoint) Verify(regionPub []byte) error {
	if err := c.verify(regionPub); err != nil {
		return fmt.Errorf("checkpoint of %s at size %d: %w", c.Region, c.Size, err)
	}
	return nil
}

func (c *Checkpoint) verify(regionPub []byte) error {
	origin := c.Origin()
	if _, region, err := ParseCheckpointOrigin(origin); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	} else if region != c.Region {
		return fmt.Errorf("%w: note's origin %s names region %s", ErrBadSignature, Quote(origin), region)
	}
	v, err := verifierFor(origin, regionPub)
	if err != nil {
		return err
	}
	n, err := note.Open([]byte(c.Note), note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			return fmt.Errorf("%w: note is not signed by the region's key", ErrBadSignature)
		}
		return fmt.Errorf("%w: note: %w", ErrBadSignature, err)
	}
	// note.Open ignores repeated and unknown signatures; the ledger keeps
	// only the region's one.
	if len(n.Sigs) != 1 || len(n.UnverifiedSigs) != 0 || c.Note != n.Text+"\n— "+origin+" "+n.Sigs[0].Base64+"\n" {
		return fmt.Errorf("%w: note must carry exactly one signature, the region's", ErrBadSignature)
	}
	var lc log.Checkpoint
	rest, err := lc.Unmarshal([]byte(n.Text))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if rest != nil || !bytes.Equal(lc.Marshal(), []byte(n.Text)) {
		return fmt.Errorf("%w: note is not a canonical checkpoint (origin, size, root hash and nothing else)", ErrBadSignature)
	}
	if lc.Size != c.Size || !bytes.Equal(lc.Hash, c.Root) {
		return fmt.Errorf("%w: note states size %d and root %x", ErrBadSignature, lc.Size, lc.Hash)
	}
	return nil
}
