package credit

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"time"
)

// BankID names a bank registered on the ledger.
type BankID string

// ValidateBankID reports whether id is well formed.
func ValidateBankID(id BankID) error {
	if !bankIDShape.match(string(id)) {
		return fmt.Errorf("bank id %s: want 2-64 characters of a-z, 0-9, _, . and -", Quote(string(id)))
	}
	return nil
}

// Purpose is why a bank may use the data, fixed by the consent.
type Purpose string

// The purposes a consent can name.
const (
	PurposeLoanApplication Purpose = "loan_application"
	PurposeCreditReview    Purpose = "credit_review"
	PurposePostLoan        Purpose = "post_loan_monitoring"
	PurposeGuarantee       Purpose = "guarantee"
)

// ValidPurpose reports whether p is a known purpose.
func ValidPurpose(p Purpose) bool {
	switch p {
	case PurposeLoanApplication, PurposeCreditReview, PurposePostLoan, PurposeGuarantee:
		return true
	}
	return false
}

// ValidateID checks consent, nonce and receipt identifiers.
func ValidateID(kind, id string) error {
	if !docIDShape.match(id) {
		return fmt.Errorf("%s %s: want 8-64 characters of A-Z, a-z, 0-9, _ and -", kind, Quote(id))
	}
	return nil
}

// utc returns t in UTC so that canonical encodings do not depend on the
// signer's time zone. The zero time stays zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// ConsentGrant is an enterprise's authorisation for one bank to read some
// categories of its records for one purpose within a window. The enterprise
// signs it; its home region's node countersigns it. Only the commitment
// (Commitment) goes on the ledger; the document travels with queries.
type ConsentGrant struct {
	Version    int        `json:"v"`
	ID         string     `json:"id"`
	Subject    USCC       `json:"uscc"`
	Grantee    BankID     `json:"grantee"`
	Categories []Category `json:"categories"`
	Purpose    Purpose    `json:"purpose"`
	ValidFrom  time.Time  `json:"valid_from"`
	ValidUntil time.Time  `json:"valid_until"`
	Region     RegionID   `json:"region"`
	// SignedAt is when the enterprise signed; its certificate must be
	// valid then, and it cannot be later than the ledger's recording.
	SignedAt time.Time `json:"signed_at"`
	// EnterpriseCert is the enterprise's certificate chain in DER, leaf
	// first, ending below a registered identity authority (see
	// VerifyEnterpriseChain). The leaf's key made EnterpriseSig.
	EnterpriseCert [][]byte `json:"enterprise_cert"`
	EnterpriseSig  []byte   `json:"enterprise_sig"`
	RegionSig      []byte   `json:"region_sig"`
}

// ConsentVersion is the consent document's format: 2 carries the
// enterprise's certificate chain and signing time. Version 1 documents
// named a bare key nothing tied to the enterprise and are refused.
const ConsentVersion = 2

func (g ConsentGrant) normalized() ConsentGrant {
	g.ValidFrom, g.ValidUntil, g.SignedAt = utc(g.ValidFrom), utc(g.ValidUntil), utc(g.SignedAt)
	g.Categories = NormalizeCategories(g.Categories)
	return g
}

// Validate checks the document's fields (not its signatures).
func (g *ConsentGrant) Validate() error {
	if g.Version != ConsentVersion {
		return &FieldError{"v", fmt.Errorf("unsupported version %d, want %d (a document signed with an enterprise certificate)", g.Version, ConsentVersion)}
	}
	if err := ValidateID("consent id", g.ID); err != nil {
		return &FieldError{"id", err}
	}
	if _, err := ParseUSCC(string(g.Subject)); err != nil {
		return &FieldError{"uscc", err}
	}
	if err := ValidateBankID(g.Grantee); err != nil {
		return &FieldError{"grantee", err}
	}
	if len(g.Categories) == 0 {
		return &FieldError{"categories", ErrMissing}
	}
	for _, c := range g.Categories {
		if !c.Valid() {
			return &FieldError{"categories", fmt.Errorf("unknown category %s", Quote(string(c)))}
		}
	}
	if !ValidPurpose(g.Purpose) {
		return &FieldError{"purpose", fmt.Errorf("unknown purpose %s", Quote(string(g.Purpose)))}
	}
	if g.ValidFrom.IsZero() || g.ValidUntil.IsZero() || !g.ValidUntil.After(g.ValidFrom) {
		return &FieldError{"valid_until", fmt.Errorf("window %s..%s is empty", g.ValidFrom, g.ValidUntil)}
	}
	if err := ValidateRegionID(g.Region); err != nil {
		return &FieldError{"region", err}
	}
	if g.SignedAt.IsZero() {
		return &FieldError{"signed_at", ErrMissing}
	}
	if len(g.EnterpriseCert) == 0 {
		return &FieldError{"enterprise_cert", ErrMissing}
	}
	if len(g.EnterpriseCert) > MaxCertChain {
		return &FieldError{"enterprise_cert", fmt.Errorf("%d certificates, at most %d", len(g.EnterpriseCert), MaxCertChain)}
	}
	for i, c := range g.EnterpriseCert {
		if len(c) == 0 || len(c) > MaxCertBytes {
			return &FieldError{"enterprise_cert", fmt.Errorf("certificate %d: %d bytes, want 1..%d", i, len(c), MaxCertBytes)}
		}
	}
	return nil
}

// SignEnterprise sets the enterprise's certificate chain (DER, leaf first),
// its signing time and its signature over the document without
// signatures. key must be the leaf certificate's private key.
func (g *ConsentGrant) SignEnterprise(key crypto.Signer, chain [][]byte, at time.Time) error {
	g.EnterpriseCert, g.SignedAt = chain, at
	n := g.normalized()
	n.EnterpriseSig, n.RegionSig = nil, nil
	msg, err := signingMessage(tagConsentEnterprise, n)
	if err != nil {
		return err
	}
	// Ed25519 signs the message itself (crypto.Hash(0)); another
	// algorithm (SM2 later) plugs in here and in verifyWithCert.
	sig, err := key.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		return fmt.Errorf("consent %s: enterprise signature: %w", g.ID, err)
	}
	g.EnterpriseSig = sig
	return nil
}

// Countersign sets the home region's signature over the document carrying
// the enterprise's signature.
func (g *ConsentGrant) Countersign(regionKey ed25519.PrivateKey) error {
	n := g.normalized()
	n.RegionSig = nil
	sig, err := signValue(regionKey, tagConsentRegion, n)
	if err != nil {
		return err
	}
	g.RegionSig = sig
	return nil
}

// VerifyEnterprise checks the enterprise's signature with the key of the
// document's leaf certificate. It says nothing of whether that
// certificate is trusted: VerifyEnterpriseChain does.
func (g *ConsentGrant) VerifyEnterprise() error {
	if len(g.EnterpriseCert) == 0 {
		return fmt.Errorf("consent %s: no enterprise certificate", g.ID)
	}
	leaf, err := x509.ParseCertificate(g.EnterpriseCert[0])
	if err != nil {
		return fmt.Errorf("consent %s: enterprise certificate: %w", g.ID, err)
	}
	return g.verifyEnterpriseWith(leaf)
}

func (g *ConsentGrant) verifyEnterpriseWith(leaf *x509.Certificate) error {
	n := g.normalized()
	n.EnterpriseSig, n.RegionSig = nil, nil
	msg, err := signingMessage(tagConsentEnterprise, n)
	if err != nil {
		return err
	}
	if err := verifyWithCert(leaf, msg, g.EnterpriseSig); err != nil {
		return fmt.Errorf("consent %s: enterprise signature: %w", g.ID, err)
	}
	return nil
}

// VerifyRegion checks the home region's countersignature.
func (g *ConsentGrant) VerifyRegion(regionPub []byte) error {
	n := g.normalized()
	n.RegionSig = nil
	if err := verifyValue(regionPub, tagConsentRegion, n, g.RegionSig); err != nil {
		return fmt.Errorf("consent %s: region countersignature: %w", g.ID, err)
	}
	return nil
}

// Commitment is SHA-256 over the canonical signed document: what the
// ledger stores instead of the document.
func (g *ConsentGrant) Commitment() ([32]byte, error) {
	return digest(tagConsentCommitment, g.normalized())
}

// tagConsentCommitment is the domain of a consent's commitment.
const tagConsentCommitment = "ccnode/consent/v1"

// Covers reports whether the consent's window contains t.
func (g *ConsentGrant) Covers(t time.Time) bool {
	return !t.Before(g.ValidFrom) && t.Before(g.ValidUntil)
}

// Query is a bank's signed request for a subject's report.
type Query struct {
	Version    int           `json:"v"`
	Bank       BankID        `json:"bank"`
	Subject    USCC          `json:"uscc"`
	Categories []Category    `json:"categories"`
	Purpose    Purpose       `json:"purpose"`
	ConsentID  string        `json:"consent_id"`
	Consent    *ConsentGrant `json:"consent"`
	Nonce      string        `json:"nonce"`
	Time       time.Time     `json:"time"`
	Sig        []byte        `json:"sig"`
}

func (q Query) normalized() Query {
	q.Time = utc(q.Time)
	q.Categories = NormalizeCategories(q.Categories)
	if q.Consent != nil {
		c := q.Consent.normalized()
		q.Consent = &c
	}
	return q
}

// Validate checks the query's fields and its consent document's fields.
func (q *Query) Validate() error {
	if q.Version != 1 {
		return &FieldError{"v", fmt.Errorf("unsupported version %d", q.Version)}
	}
	if err := ValidateBankID(q.Bank); err != nil {
		return &FieldError{"bank", err}
	}
	if _, err := ParseUSCC(string(q.Subject)); err != nil {
		return &FieldError{"uscc", err}
	}
	if len(q.Categories) == 0 {
		return &FieldError{"categories", ErrMissing}
	}
	for _, c := range q.Categories {
		if !c.Valid() {
			return &FieldError{"categories", fmt.Errorf("unknown category %s", Quote(string(c)))}
		}
	}
	if !ValidPurpose(q.Purpose) {
		return &FieldError{"purpose", fmt.Errorf("unknown purpose %s", Quote(string(q.Purpose)))}
	}
	if err := ValidateID("consent id", q.ConsentID); err != nil {
		return &FieldError{"consent_id", err}
	}
	if q.Consent == nil {
		return &FieldError{"consent", ErrMissing}
	}
	if err := q.Consent.Validate(); err != nil {
		return &FieldError{"consent", err}
	}
	if q.Consent.ID != q.ConsentID {
		return &FieldError{"consent", fmt.Errorf("document id %s differs from consent_id %s", Quote(q.Consent.ID), Quote(q.ConsentID))}
	}
	if err := ValidateID("nonce", q.Nonce); err != nil {
		return &FieldError{"nonce", err}
	}
	if q.Time.IsZero() {
		return &FieldError{"time", ErrMissing}
	}
	return nil
}

// Sign sets the bank's signature.
func (q *Query) Sign(bankKey ed25519.PrivateKey) error {
	n := q.normalized()
	n.Sig = nil
	sig, err := signValue(bankKey, tagQuery, n)
	if err != nil {
		return err
	}
	q.Sig = sig
	return nil
}

// Verify checks the bank's signature.
func (q *Query) Verify(bankPub []byte) error { return q.VerifyWith(bankPub, verifyMessage) }

// VerifyWith is Verify with the signature checked by check.
func (q *Query) VerifyWith(bankPub []byte, check SigCheck) error {
	msg, err := q.SignedMessage()
	if err == nil {
		err = checkSigned(check, bankPub, msg, q.Sig)
	}
	if err != nil {
		return fmt.Errorf("query of bank %s: %w", q.Bank, err)
	}
	return nil
}

// Digest identifies the signed query.
func (q *Query) Digest() ([32]byte, error) { return digest("ccnode/query-digest/v1", q.normalized()) }

// Receipt is an answering region's signed statement that it answered a
// query: which query, for which requesting region, what it returned (digest
// and count) and when. Receipts are the leaves of the region's receipt log.
type Receipt struct {
	Version      int        `json:"v"`
	ID           string     `json:"id"`
	Query        Query      `json:"query"`
	Requester    RegionID   `json:"requester"`
	Answerer     RegionID   `json:"answerer"`
	Categories   []Category `json:"categories"`
	ReportDigest []byte     `json:"report_digest"`
	RecordCount  int        `json:"record_count"`
	Time         time.Time  `json:"time"`
	Sig          []byte     `json:"sig"`
}

// ReceiptID derives a receipt's id from the answering region and the
// query, so the same query answered twice by a region has one id.
func ReceiptID(answerer RegionID, q *Query) (string, error) {
	qd, err := q.Digest()
	if err != nil {
		return "", err
	}
	return ReceiptIDOfDigest(answerer, qd)
}

// ReceiptIDOfDigest is ReceiptID for the query whose Digest is qd.
func ReceiptIDOfDigest(answerer RegionID, qd [32]byte) (string, error) {
	d, err := digest("ccnode/receipt-id/v1", struct {
		Answerer RegionID `json:"answerer"`
		Query    string   `json:"query"`
	}{answerer, hex.EncodeToString(qd[:])})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(d[:16]), nil
}

func (r Receipt) normalized() Receipt {
	r.Time = utc(r.Time)
	r.Query = r.Query.normalized()
	r.Categories = NormalizeCategories(r.Categories)
	return r
}

// Sign sets the answering region's signature.
func (r *Receipt) Sign(regionKey ed25519.PrivateKey) error {
	n := r.normalized()
	n.Sig = nil
	sig, err := signValue(regionKey, tagReceipt, n)
	if err != nil {
		return err
	}
	r.Sig = sig
	return nil
}

// Verify checks the answering region's signature.
func (r *Receipt) Verify(regionPub []byte) error { return r.VerifyWith(regionPub, verifyMessage) }

// VerifyWith is Verify with the signature checked by check.
func (r *Receipt) VerifyWith(regionPub []byte, check SigCheck) error {
	msg, err := r.SignedMessage()
	if err == nil {
		err = checkSigned(check, regionPub, msg, r.Sig)
	}
	if err != nil {
		return fmt.Errorf("receipt %s of region %s: %w", r.ID, r.Answerer, err)
	}
	return nil
}

// LeafBytes is the receipt's entry in the receipt log: its canonical
// encoding with signature.
func (r *Receipt) LeafBytes() ([]byte, error) { return canonicalJSON(r.normalized()) }

// tagReceiptDigest is the domain of a receipt's digest.
const tagReceiptDigest = "ccnode/receipt-digest/v1"

// Digest identifies the signed receipt; acknowledgements sign it.
func (r *Receipt) Digest() ([32]byte, error) {
	return digest(tagReceiptDigest, r.normalized())
}

// Ack is the requesting region's signed acknowledgement of a receipt.
type Ack struct {
	Version       int       `json:"v"`
	ReceiptID     string    `json:"receipt_id"`
	ReceiptDigest []byte    `json:"receipt_digest"`
	Requester     RegionID  `json:"requester"`
	Time          time.Time `json:"time"`
	Sig           []byte    `json:"sig"`
}

// LeafDigest is the Digest of the receipt whose LeafBytes are leaf (as
// SignLeaf returns them): the digest hashes those very bytes, so a caller
// holding them needs no encoding of the receipt again.
func LeafDigest(leaf []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(tagReceiptDigest + "\n"))
	h.Write(leaf)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// NewAck builds and signs an acknowledgement of r.
func NewAck(r *Receipt, requester RegionID, now time.Time, key ed25519.PrivateKey) (Ack, error) {
	d, err := r.Digest()
	if err != nil {
		return Ack{}, err
	}
	return newAck(r, d, requester, now, key)
}

// NewAckOfLeaf is NewAck for r whose LeafBytes are leaf.
func NewAckOfLeaf(r *Receipt, leaf []byte, requester RegionID, now time.Time, key ed25519.PrivateKey) (Ack, error) {
	return newAck(r, LeafDigest(leaf), requester, now, key)
}

func newAck(r *Receipt, d [32]byte, requester RegionID, now time.Time, key ed25519.PrivateKey) (Ack, error) {
	a := Ack{Version: 1, ReceiptID: r.ID, ReceiptDigest: d[:], Requester: requester, Time: utc(now)}
	sig, err := signValue(key, tagAck, a)
	if err != nil {
		return Ack{}, err
	}
	a.Sig = sig
	return a, nil
}

// Verify checks the acknowledgement's signature and that it names r.
func (a *Ack) Verify(r *Receipt, requesterPub []byte) error {
	return a.VerifyWith(r, requesterPub, verifyMessage)
}

// VerifyWith is Verify with the signature checked by check.
func (a *Ack) VerifyWith(r *Receipt, requesterPub []byte, check SigCheck) error {
	d, err := r.Digest()
	if err != nil {
		return err
	}
	return a.verifyDigest(r, d, requesterPub, check)
}

// VerifyLeafWith is VerifyWith for r whose LeafBytes are leaf.
func (a *Ack) VerifyLeafWith(r *Receipt, leaf, requesterPub []byte, check SigCheck) error {
	return a.verifyDigest(r, LeafDigest(leaf), requesterPub, check)
}

func (a *Ack) verifyDigest(r *Receipt, d [32]byte, requesterPub []byte, check SigCheck) error {
	if a.ReceiptID != r.ID || !bytes.Equal(a.ReceiptDigest, d[:]) {
		return fmt.Errorf("ack by %s does not name receipt %s: %w", a.Requester, r.ID, ErrBadSignature)
	}
	msg, err := a.SignedMessage()
	if err == nil {
		err = checkSigned(check, requesterPub, msg, a.Sig)
	}
	if err != nil {
		return fmt.Errorf("ack of receipt %s by %s: %w", r.ID, a.Requester, err)
	}
	return nil
}

// AnchoredCheckpoint is a checkpoint as the ledger holds it.
type AnchoredCheckpoint struct {
	Checkpoint
	AnchoredAt time.Time `json:"anchored_at"`
	TxID       string    `json:"tx_id"`
}

// MemberStatus is the status of a region or bank on the ledger.
type MemberStatus string

// Member statuses.
const (
	StatusActive  MemberStatus = "active"
	StatusRetired MemberStatus = "retired"
)

// RegionMember is a region's record on the ledger.
type RegionMember struct {
	ID        RegionID     `json:"id"`
	Name      string       `json:"name"`
	Divisions []string     `json:"divisions"`
	MSPID     string       `json:"msp_id"`
	PeerID    string       `json:"peer_id"`
	Addrs     []string     `json:"addrs"`
	PubKey    []byte       `json:"pub_key"`
	Status    MemberStatus `json:"status"`
	UpdatedAt time.Time    `json:"updated_at"`
	// KeyChange is the last change of PubKey, signed by the key before it.
	KeyChange *KeyChange `json:"key_change,omitempty"`
	// PastKeys are the region's earlier node keys, oldest first, each
	// with the ledger time it was replaced: what the region signed before
	// (consent countersignatures) is checked against the key of its time.
	PastKeys []PastKey `json:"past_keys,omitempty"`
}

// BankMember is a bank's record on the ledger.
type BankMember struct {
	ID        BankID       `json:"id"`
	Name      string       `json:"name"`
	Region    RegionID     `json:"region"`
	PubKey    []byte       `json:"pub_key"`
	Status    MemberStatus `json:"status"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// ConsentStatus is the ledger status of a consent commitment.
type ConsentStatus string

// Consent statuses. Expired is reported for an active commitment outside
// its window; it is never stored.
const (
	ConsentActive    ConsentStatus = "active"
	ConsentRevoked   ConsentStatus = "revoked"
	ConsentExpired   ConsentStatus = "expired"
	ConsentNotYet    ConsentStatus = "not_yet_valid"
	ConsentNotExists ConsentStatus = "not_found"
)

// ConsentCommitment is what the ledger holds about a consent.
type ConsentCommitment struct {
	ID         string        `json:"id"`
	Commitment []byte        `json:"commitment"`
	Region     RegionID      `json:"region"`
	ValidFrom  time.Time     `json:"valid_from"`
	ValidUntil time.Time     `json:"valid_until"`
	Status     ConsentStatus `json:"status"`
	RecordedAt time.Time     `json:"recorded_at"`
	RevokedAt  *time.Time    `json:"revoked_at,omitempty"`
}

// StatusAt is the commitment's effective status at t: not found before it
// was recorded, revoked if revoked at or before t, otherwise by the window.
func (c *ConsentCommitment) StatusAt(t time.Time) ConsentStatus {
	if t.Before(c.RecordedAt) {
		return ConsentNotExists
	}
	if c.RevokedAt != nil && !t.Before(*c.RevokedAt) {
		return ConsentRevoked
	}
	if t.Before(c.ValidFrom) {
		return ConsentNotYet
	}
	if !t.Before(c.ValidUntil) {
		return ConsentExpired
	}
	return ConsentActive
}
