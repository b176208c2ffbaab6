package credit

import (
	"bytes"
	"crypto/ed25519"
	"time"
)

// ConsentFacts is everything a consent decision is made from: the query
// (with the consent document it carries) and what the ledger said of the
// consent and of its issuing region at the time of the answer. A node fills
// it from its ledger view at the moment it answers; the auditor fills it
// from the ledger's history at the receipt's time. Both then call
// DecideConsent, the one place the consent rules are written.
type ConsentFacts struct {
	// Query is the bank's query, already validated; Query.Consent is the
	// document it carries.
	Query *Query
	// Ledger is the consent's commitment on the ledger; nil when the
	// ledger has none.
	Ledger *ConsentCommitment
	// Status is the commitment's status at At as the ledger tells it
	// (ConsentCommitment.StatusAt, or a history the auditor replays).
	Status ConsentStatus
	// At is the time of the answer.
	At time.Time
	// IssuerKey is the key the issuing region (Query.Consent.Region) had
	// on the ledger; nil when it is not a member.
	IssuerKey ed25519.PublicKey
	// Commitment is Query.Consent.Commitment(), when the caller has it;
	// nil makes DecideConsent compute it.
	Commitment *[32]byte
	// SignaturesVerified says the caller already verified exactly this
	// document's region countersignature (by Commitment, which covers
	// both signatures) under IssuerKey; the ed25519 check is then
	// skipped. It is a cache, never a policy: leave it false when in doubt.
	SignaturesVerified bool
	// Trust is what the ledger says of enterprise identity authorities
	// and revoked certificates; nil refuses every consent as uncertified
	// (fail closed).
	Trust *TrustSet
	// Certified is VerifyEnterpriseChain(Query.Consent, Trust) when the
	// caller cached it (by Commitment, dropped whenever Trust changes);
	// nil makes DecideConsent verify the chain, which includes the
	// enterprise's signature.
	Certified *CertifiedKey
}

// DecideConsent applies the consent rules to f and returns every rule the
// query breaks, in the order a node checks them; nil means the consent
// holds. A node refuses with the first; the auditor reports them all.
// When the consent holds and the caller passes Commitment and
// SignaturesVerified (its caches), it allocates nothing.
//
// The rules: the consent is on the ledger, the document matches its
// commitment and issuing region, the commitment is active at the answer's
// time and the document's own window covers it, the consent names the
// querying bank, the queried enterprise and the query's purpose, it covers
// every category asked, the enterprise's signature verifies under a
// certificate a registered identity authority issued for the consent's
// subject (VerifyEnterpriseChain, CheckCertified), and the issuing
// region's countersignature verifies.
func DecideConsent(f ConsentFacts) []*Refusal {
	q, doc := f.Query, f.Query.Consent
	if doc == nil {
		return []*Refusal{Refuse(CodeConsentMismatch, "query names consent %s but carries no document", q.ConsentID)}
	}
	if doc.ID != q.ConsentID {
		return []*Refusal{Refuse(CodeConsentMismatch, "query names consent %s but carries another document", q.ConsentID)}
	}
	if f.Ledger == nil {
		return []*Refusal{Refuse(CodeConsentNotFound, "consent %s is not on the ledger", q.ConsentID)}
	}
	sum := f.Commitment
	if sum == nil {
		c, err := doc.Commitment()
		if err != nil {
			return []*Refusal{Refuse(CodeConsentMismatch, "consent %s: %w", doc.ID, err)}
		}
		sum = &c
	}
	if !bytes.Equal(sum[:], f.Ledger.Commitment) || f.Ledger.Region != doc.Region {
		return []*Refusal{Refuse(CodeConsentMismatch, "consent %s: the document does not match its ledger commitment", doc.ID)}
	}
	var out []*Refusal
	if r := statusRefusal(doc, f.Ledger, f.Status, f.At); r != nil {
		out = append(out, r)
	}
	if doc.Grantee != q.Bank {
		out = append(out, Refuse(CodeConsentOtherBank, "consent %s was granted to %s, not %s", doc.ID, doc.Grantee, q.Bank))
	}
	if doc.Subject != q.Subject {
		out = append(out, Refuse(CodeSubjectMismatch, "consent %s was given by %s, the query is about %s", doc.ID, doc.Subject, q.Subject))
	}
	if doc.Purpose != q.Purpose {
		out = append(out, Refuse(CodePurposeMismatch, "consent %s is for %s, not %s", doc.ID, doc.Purpose, q.Purpose))
	}
	if !CategoriesSubset(q.Categories, doc.Categories) {
		out = append(out, Refuse(CodeCategoryOutOfScope, "consent %s covers %v, the query asks %v", doc.ID, doc.Categories, q.Categories))
	}
	ck := f.Certified
	if ck == nil {
		c := VerifyEnterpriseChain(doc, f.Trust)
		ck = &c
	}
	if r := CheckCertified(*ck, doc, f.Trust, f.Ledger.RecordedAt, f.At); r != nil {
		out = append(out, r)
	}
	switch {
	case f.IssuerKey == nil:
		out = append(out, Refuse(CodeConsentSignature, "consent %s: issuing region %s is not a member", doc.ID, doc.Region))
	case ck.Refusal != nil && ck.Refusal.Code == CodeConsentSignature:
		// The countersignature covers the enterprise's: one broken
		// signature is one finding.
	case f.SignaturesVerified:
	default:
		// The clone keeps f from escaping (a verifier leaks its key, and
		// escape analysis does not tell f's fields apart), so the
		// caller's query and commitment stay on its stack.
		if err := doc.VerifyRegion(bytes.Clone(f.IssuerKey)); err != nil {
			out = append(out, Refuse(CodeConsentSignature, "%w", err))
		}
	}
	return out
}

// statusRefusal is the rule on time: the ledger's status at the answer's
// time, then the document's own window (the one the enterprise signed).
func statusRefusal(doc *ConsentGrant, c *ConsentCommitment, st ConsentStatus, at time.Time) *Refusal {
	// The time is formatted only on a refusal: the holding path allocates nothing.
	switch st {
	case ConsentActive:
	case ConsentRevoked:
		return Refuse(CodeConsentRevoked, "consent %s was revoked before %s", doc.ID, at.UTC().Format(time.RFC3339))
	case ConsentExpired:
		return Refuse(CodeConsentExpired, "consent %s expired at %s", doc.ID, c.ValidUntil.UTC().Format(time.RFC3339))
	case ConsentNotYet:
		return Refuse(CodeConsentNotYetValid, "consent %s is valid from %s", doc.ID, c.ValidFrom.UTC().Format(time.RFC3339))
	default:
		return Refuse(CodeConsentNotFound, "consent %s was not on the ledger at %s", doc.ID, at.UTC().Format(time.RFC3339))
	}
	switch {
	case at.Before(doc.ValidFrom):
		return Refuse(CodeConsentNotYetValid, "consent %s: the document is valid from %s", doc.ID, doc.ValidFrom.UTC().Format(time.RFC3339))
	case !at.Before(doc.ValidUntil):
		return Refuse(CodeConsentExpired, "consent %s: the document expired at %s", doc.ID, doc.ValidUntil.UTC().Format(time.RFC3339))
	}
	return nil
}
