package credit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Limits on the certificate chain a consent carries: it travels with every
// query, so it stays small.
const (
	MaxCertChain = 4
	MaxCertBytes = 8 << 10
)

// MaxSigningSkew is how far a consent's signed_at may lie after the
// ledger's recording of it: the enterprise's and the recording region's
// clocks differ a little, never by more.
const MaxSigningSkew = 5 * time.Minute

// IdentityAuthority is an enterprise identity authority registered on the
// ledger: a CA whose certificates bind an enterprise's signing key to its
// USCC, the way China's electronic business licence does. The region
// responsible for the divisions it vouches for registers and retires it.
type IdentityAuthority struct {
	// ID is AuthorityID(Cert): the hex SHA-256 of the CA certificate.
	ID   string `json:"id"`
	Name string `json:"name"`
	// Cert is the CA certificate, DER.
	Cert []byte `json:"cert"`
	// Region registered it and alone may retire it or revoke under it.
	Region RegionID `json:"region"`
	// Divisions are the division-code prefixes (as in Region.Divisions)
	// of the enterprises it may certify; each lies inside Region's own.
	Divisions    []string     `json:"divisions"`
	Status       MemberStatus `json:"status"`
	RegisteredAt time.Time    `json:"registered_at"` // the ledger's time
	RetiredAt    *time.Time   `json:"retired_at,omitempty"`
}

// AuthorityID names a CA certificate: the hex SHA-256 of its DER bytes.
func AuthorityID(certDER []byte) string {
	sum := sha256.Sum256(certDER)
	return hex.EncodeToString(sum[:])
}

// Validate checks the record's fields: a parsable CA certificate whose ID
// matches, a region, and well-formed division prefixes.
func (a *IdentityAuthority) Validate() error {
	ca, err := x509.ParseCertificate(a.Cert)
	if err != nil {
		return &FieldError{"cert", err}
	}
	if !ca.IsCA || !ca.BasicConstraintsValid {
		return &FieldError{"cert", errors.New("not a CA certificate (basic constraints CA:TRUE required)")}
	}
	if a.ID != AuthorityID(a.Cert) {
		return &FieldError{"id", fmt.Errorf("want %s, the SHA-256 of cert", AuthorityID(a.Cert))}
	}
	if err := ValidateRegionID(a.Region); err != nil {
		return &FieldError{"region", err}
	}
	if len(a.Divisions) == 0 {
		return &FieldError{"divisions", ErrMissing}
	}
	for _, d := range a.Divisions {
		if len(d) == 0 || len(d) > 6 || strings.Trim(d, "0123456789") != "" {
			return &FieldError{"divisions", fmt.Errorf("prefix %s: want 1-6 digits", Quote(d))}
		}
	}
	if len(a.Name) > 200 {
		return &FieldError{"name", errors.New("longer than 200 bytes")}
	}
	return nil
}

// ActiveAt reports whether the authority was registered and not retired
// at t.
func (a *IdentityAuthority) ActiveAt(t time.Time) bool {
	if t.Before(a.RegisteredAt) {
		return false
	}
	return a.RetiredAt == nil || t.Before(*a.RetiredAt)
}

// Vouches reports whether the authority may certify enterprises of the
// six-digit division code div.
func (a *IdentityAuthority) Vouches(div string) bool {
	for _, p := range a.Divisions {
		if strings.HasPrefix(div, p) {
			return true
		}
	}
	return false
}

// CertRevocation records on the ledger that an enterprise certificate was
// revoked. It names the certificate by RevocationID only, so the ledger
// learns no USCC.
type CertRevocation struct {
	ID        string    `json:"id"`        // RevocationID of the certificate
	Authority string    `json:"authority"` // the IdentityAuthority.ID it chains to
	Region    RegionID  `json:"region"`    // the authority's region, which recorded it
	RevokedAt time.Time `json:"revoked_at"`
}

// RevocationID names a certificate without revealing its subject: the hex
// SHA-256 of its issuer's DER name and its serial number.
func RevocationID(cert *x509.Certificate) string {
	h := sha256.New()
	h.Write(cert.RawIssuer)
	h.Write([]byte{0})
	h.Write(cert.SerialNumber.Bytes())
	return hex.EncodeToString(h.Sum(nil))
}

// ValidateRevocationID checks that id has RevocationID's form.
func ValidateRevocationID(id string) error {
	if b, err := hex.DecodeString(id); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("revocation id %s: want 64 hex digits", Quote(id))
	}
	return nil
}

// TrustSet is what the ledger says of enterprise identity: every authority
// ever registered (with its registration and retirement times) and every
// revoked certificate. A node builds it from its ledger view, the auditor
// from the ledger's history; both judge consents with it. Immutable.
type TrustSet struct {
	roots   *x509.CertPool // every authority: only to name one of another division in a refusal
	certs   map[string]*x509.Certificate
	byID    map[string]*IdentityAuthority
	revoked map[string]time.Time
}

// NewTrustSet builds a set; it refuses an authority whose certificate does
// not parse or whose ID does not match it.
func NewTrustSet(auths []IdentityAuthority, revs []CertRevocation) (*TrustSet, error) {
	t := &TrustSet{roots: x509.NewCertPool(), certs: make(map[string]*x509.Certificate, len(auths)),
		byID: make(map[string]*IdentityAuthority, len(auths)), revoked: make(map[string]time.Time, len(revs))}
	for i := range auths {
		a := &auths[i]
		ca, err := x509.ParseCertificate(a.Cert)
		if err != nil {
			return nil, fmt.Errorf("authority %s: certificate: %w", a.ID, err)
		}
		if a.ID != AuthorityID(a.Cert) {
			return nil, fmt.Errorf("authority %s: id does not match its certificate", a.ID)
		}
		t.roots.AddCert(ca)
		t.certs[a.ID] = ca
		t.byID[a.ID] = a
	}
	for _, r := range revs {
		if old, ok := t.revoked[r.ID]; !ok || r.RevokedAt.Before(old) {
			t.revoked[r.ID] = r.RevokedAt
		}
	}
	return t, nil
}

// rootsFor is a pool of the authorities that vouch for division div, and
// whether there is one: only they may certify its enterprises. Go's
// verifier gives up after 100 signature checks, so with every authority in
// one pool a region that registered a hundred look-alikes (another
// region's authority's subject and key id, keys of its own) made that
// authority's certificates fail everywhere.
func (t *TrustSet) rootsFor(div string) (*x509.CertPool, bool) {
	pool, found := x509.NewCertPool(), false
	for id, a := range t.byID {
		if a.Vouches(div) {
			pool.AddCert(t.certs[id])
			found = true
		}
	}
	return pool, found
}

// Authority returns a registered authority by ID.
func (t *TrustSet) Authority(id string) (*IdentityAuthority, bool) {
	if t == nil {
		return nil, false
	}
	a, ok := t.byID[id]
	return a, ok
}

// CertifiedKey is what verifying a consent's certificate chain established:
// the part of the consent decision that depends only on the document and
// the authorities' certificates, so a node caches it by the document's
// commitment and pays for x509 once per consent.
type CertifiedKey struct {
	// Authority is the ID of the registered authority the chain ends at.
	Authority string
	// Revocation is the leaf's RevocationID.
	Revocation string
	// Refusal is why the chain does not certify the document's enterprise;
	// nil when it does.
	Refusal *Refusal
}

// VerifyEnterpriseChain checks that doc's enterprise signature verifies
// under its leaf certificate and that the leaf chains to one of t's
// authorities, was valid at doc.SignedAt and names exactly doc.Subject
// (the subject's serialNumber attribute, OID 2.5.4.5, is the USCC). What
// depends on time and ledger state (the authority active, the certificate
// not revoked, SignedAt before the recording) is CheckCertified's.
func VerifyEnterpriseChain(doc *ConsentGrant, t *TrustSet) CertifiedKey {
	refuse := func(format string, args ...any) CertifiedKey {
		return CertifiedKey{Refusal: Refuse(CodeConsentUncertified, "consent %s: "+format, append([]any{doc.ID}, args...)...)}
	}
	if len(doc.EnterpriseCert) == 0 {
		return refuse("no enterprise certificate")
	}
	leaf, err := x509.ParseCertificate(doc.EnterpriseCert[0])
	if err != nil {
		return refuse("enterprise certificate: %v", err)
	}
	if err := doc.verifyEnterpriseWith(leaf); err != nil {
		return CertifiedKey{Refusal: Refuse(CodeConsentSignature, "%w", err)}
	}
	if got := leaf.Subject.SerialNumber; got != string(doc.Subject) {
		return refuse("the enterprise certificate names %s, not %s", Quote(got), doc.Subject)
	}
	if t == nil || len(t.byID) == 0 {
		return refuse("no enterprise identity authority is registered")
	}
	inter := x509.NewCertPool()
	for i, der := range doc.EnterpriseCert[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return refuse("intermediate certificate %d: %v", i+1, err)
		}
		inter.AddCert(c)
	}
	div := doc.Subject.Division()
	opts := x509.VerifyOptions{Intermediates: inter, CurrentTime: doc.SignedAt, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	roots, found := t.rootsFor(div)
	var chains [][]*x509.Certificate
	if found {
		opts.Roots = roots
		chains, err = leaf.Verify(opts)
	} else {
		err = x509.UnknownAuthorityError{}
	}
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return refuse("the enterprise certificate was not valid at signing time %s (valid %s to %s)",
				doc.SignedAt.UTC().Format(time.RFC3339), leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		var unk x509.UnknownAuthorityError
		if errors.As(err, &unk) {
			// Name an authority of another division it chains to, if any.
			opts.Roots = t.roots
			if chains, err := leaf.Verify(opts); err == nil {
				for _, ch := range chains {
					if id := AuthorityID(ch[len(ch)-1].Raw); t.byID[id] != nil {
						return refuse("identity authority %s does not vouch for division %s", id, div)
					}
				}
			}
			return refuse("the enterprise certificate does not chain to a registered identity authority for division %s (issuer %s)", div, Quote(leaf.Issuer.String()))
		}
		return refuse("the enterprise certificate does not verify: %v", err)
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return refuse("the enterprise certificate is not for digital signatures")
	}
	// Every root in the pool vouches for the subject's division.
	for _, ch := range chains {
		if id := AuthorityID(ch[len(ch)-1].Raw); t.byID[id] != nil {
			return CertifiedKey{Authority: id, Revocation: RevocationID(leaf)}
		}
	}
	return refuse("the enterprise certificate does not chain to a registered identity authority")
}

// CheckCertified applies the ledger-state rules to a verified chain: its
// authority was active when the consent was recorded (recordedAt, the
// ledger's time no party can back-date) and still is at the answer's time
// at; the enterprise signed no later than the recording; and the leaf was
// not revoked at or before the recording (which covers every revocation
// before signing, since signing precedes recording).
func CheckCertified(ck CertifiedKey, doc *ConsentGrant, t *TrustSet, recordedAt, at time.Time) *Refusal {
	if ck.Refusal != nil {
		return ck.Refusal
	}
	a, ok := t.Authority(ck.Authority)
	switch {
	case !ok:
		return Refuse(CodeConsentUncertified, "consent %s: identity authority %s is not registered", doc.ID, ck.Authority)
	case !a.ActiveAt(recordedAt):
		return Refuse(CodeConsentUncertified, "consent %s: identity authority %s was not registered when the consent was recorded at %s",
			doc.ID, ck.Authority, recordedAt.UTC().Format(time.RFC3339))
	case !a.ActiveAt(at):
		return Refuse(CodeConsentUncertified, "consent %s: identity authority %s is retired", doc.ID, ck.Authority)
	}
	if doc.SignedAt.After(recordedAt.Add(MaxSigningSkew)) {
		return Refuse(CodeConsentUncertified, "consent %s: signed at %s, after its recording at %s",
			doc.ID, doc.SignedAt.UTC().Format(time.RFC3339), recordedAt.UTC().Format(time.RFC3339))
	}
	if rev, ok := t.revoked[ck.Revocation]; ok && !rev.After(recordedAt) {
		return Refuse(CodeConsentUncertified, "consent %s: the enterprise certificate was revoked at %s, before the consent was recorded",
			doc.ID, rev.UTC().Format(time.RFC3339))
	}
	return nil
}

// verifyWithCert checks sig over msg with the certificate's public key. The
// algorithm is the certificate's: Ed25519 today; SM2 plugs in here.
func verifyWithCert(c *x509.Certificate, msg, sig []byte) error {
	switch pub := c.PublicKey.(type) {
	case ed25519.PublicKey:
		return checkSigned(verifyMessage, pub, msg, sig)
	default:
		return fmt.Errorf("enterprise key algorithm %s is not supported", c.PublicKeyAlgorithm)
	}
}
