package credit

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
	"github.com/oasisprotocol/curve25519-voi/primitives/ed25519/extra/cache"
)

// ErrBadSignature is returned when a signature does not verify.
var ErrBadSignature = errors.New("bad signature")

// Signing domain tags. Each document kind has its own so that a signature
// over one kind can never be presented as another.
const (
	tagConsentEnterprise = "ccnode/consent-enterprise/v1"
	tagConsentRegion     = "ccnode/consent-region/v1"
	tagQuery             = "ccnode/query/v1"
	tagReceipt           = "ccnode/receipt/v1"
	tagAck               = "ccnode/ack/v1"
	tagLedgerTx          = "ccnode/ledger-tx/v1"
)

func signingMessage(tag string, v any) ([]byte, error) {
	b, err := canonicalJSON(v)
	if err != nil {
		return nil, err
	}
	msg := make([]byte, 0, len(tag)+1+len(b))
	msg = append(msg, tag...)
	msg = append(msg, '\n')
	return append(msg, b...), nil
}

func signValue(key ed25519.PrivateKey, tag string, v any) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("signing key: want %d bytes, got %d", ed25519.PrivateKeySize, len(key))
	}
	msg, err := signingMessage(tag, v)
	if err != nil {
		return nil, err
	}
	return signMessage(key, msg), nil
}

// signMessage is ed25519.Sign(key, msg) computed by curve25519-voi: Ed25519
// is deterministic, so the signature is the same bytes (TestSignMessage),
// and voi signs in about half the time (BenchmarkSign). crypto/ed25519
// rebuilds its key from the seed on every call, a second fixed-base scalar
// multiplication to check the public half, and every answer a regional
// node sends carries a receipt it signs.
func signMessage(key ed25519.PrivateKey, msg []byte) []byte {
	return voi.Sign(voi.PrivateKey(key), msg)
}

func verifyValue(pub []byte, tag string, v any, sig []byte) error {
	msg, err := signingMessage(tag, v)
	if err != nil {
		return err
	}
	return checkSigned(verifyMessage, pub, msg, sig)
}

// SigCheck reports whether sig is pub's ed25519 signature over msg, with
// crypto/ed25519's verdicts. The Verify methods check with curve25519-voi
// one signature at a time; a node that keeps its signers' keys expanded or
// batches concurrent checks (p2p's signature gate) passes its own to the
// VerifyWith methods, which check everything else exactly as Verify does.
type SigCheck func(pub, msg, sig []byte) bool

// checkSigned is verifyValue's verdict on an already encoded message.
func checkSigned(check SigCheck, pub, msg, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key has %d bytes, want %d", ErrBadSignature, len(pub), ed25519.PublicKeySize)
	}
	if !check(pub, msg, sig) {
		return ErrBadSignature
	}
	return nil
}

// stdlibRules makes curve25519-voi accept exactly what crypto/ed25519
// accepts: the cofactorless equation, small-order and non-canonical keys
// as crypto/ed25519 takes them (TestVerifyMessage).
var stdlibRules = &voi.Options{Verify: voi.VerifyOptionsStdLib}

// verifyMessage is ed25519.Verify(pub, msg, sig) computed by
// curve25519-voi, in about 0.6 of the time (BenchmarkVerify): its vectorised
// field arithmetic on this AVX2 hardware is faster than crypto/ed25519's.
func verifyMessage(pub, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return voi.VerifyWithOptions(voi.PublicKey(pub), msg, sig, stdlibRules)
}

// SignatureVerifier verifies ed25519 signatures with crypto/ed25519's
// verdicts, keeping the signers' public keys expanded (decompressed, with
// their multiples precomputed) between calls, which takes about 0.4 of
// crypto/ed25519.Verify's time for a signer seen before (BenchmarkVerify).
// For a verifier whose signers are few, as a node's are (a consortium's
// banks and regions). Safe for concurrent use.
type SignatureVerifier struct {
	c *cache.Verifier
}

// NewSignatureVerifier keeps the expanded keys of up to maxKeys signers,
// the least recently used dropped first.
func NewSignatureVerifier(maxKeys int) *SignatureVerifier {
	return &SignatureVerifier{c: cache.NewVerifier(cache.NewLRUCache(max(maxKeys, 1)))}
}

// Verify reports whether sig is pub's signature over msg.
func (v *SignatureVerifier) Verify(pub, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return v.c.VerifyWithOptions(pub, msg, sig, stdlibRules)
}

// SignLedgerTx signs a ledger transaction proposal (function name and
// arguments) for the embedded ledger, which authenticates callers this way
// where Fabric uses X.509 identities.
func SignLedgerTx(key ed25519.PrivateKey, tx LedgerTx) ([]byte, error) {
	tx.Sig = nil
	return signValue(key, tagLedgerTx, tx)
}

// VerifyLedgerTx checks a transaction signature.
func VerifyLedgerTx(pub []byte, tx LedgerTx) error {
	sig := tx.Sig
	tx.Sig = nil
	return verifyValue(pub, tagLedgerTx, tx, sig)
}

// LedgerTx is a transaction proposal as the embedded ledger receives it.
type LedgerTx struct {
	Caller   string   `json:"caller"` // MSP id of the caller
	Function string   `json:"function"`
	Args     []string `json:"args"`
	Nonce    string   `json:"nonce"`
	Sig      []byte   `json:"sig"`
}
