package credit

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is the stable code of a refusal. The set is closed and defined here
// once: the p2p wire, the bank API's error body and region statuses,
// metrics labels and the auditor's consent findings all carry these
// strings, so a remote refusal reaches the bank exactly as the answering
// region gave it. A peer that receives a code it does not know treats it
// as CodeInternal.
type Code string

// The refusal codes, in the order the bank API documents them.
const (
	// CodeInvalidQuery: the query or request does not decode or fails
	// validation. Retrying the same bytes never helps.
	CodeInvalidQuery Code = "invalid_query"
	// CodeTooLarge: a request or frame exceeds its size limit.
	CodeTooLarge Code = "too_large"
	// CodeUnauthorized: an admin call without a valid operator token, or a
	// receipt read without a bank's signed read (a bank's query is
	// authenticated by its signature instead).
	CodeUnauthorized Code = "unauthorized"
	// CodeNotFound: the receipt, consent or checkpoint asked for by id is
	// not on this node.
	CodeNotFound Code = "not_found"
	// CodeConflict: an operator call conflicts with what the ledger holds
	// (a consent id already recorded with another document).
	CodeConflict Code = "conflict"
	// CodeDenied: the ledger refused an operator call to this region's
	// identity: a candidate or retired region voting, a proposal for
	// another region. Retrying helps only once the membership changes.
	CodeDenied Code = "denied"
	// CodeNotMember: the calling peer is not the active member region it
	// claims to be, or the node's own region is not one (a candidate
	// awaiting approval, or retired). Retrying helps only once the ledger
	// says otherwise.
	CodeNotMember Code = "not_member"
	// CodeWrongHomeRegion: the bank queried a node other than its home
	// region's, a region asked for a query of another region's bank (a
	// relay), a consent was recorded at a region other than the one that
	// issues it, or a bank's key was rotated at a node other than its
	// home's.
	CodeWrongHomeRegion Code = "wrong_home_region"
	// CodeBankUnknown: the bank is not registered; a node's ledger view may
	// lag a fresh registration by seconds.
	CodeBankUnknown Code = "bank_unknown"
	// CodeBankInactive: the bank is retired.
	CodeBankInactive Code = "bank_inactive"
	// CodeBadSignature: a signature (the bank's on a query, a region's on
	// an ack) does not verify.
	CodeBadSignature Code = "bad_signature"
	// CodeStaleQuery: the query's time is outside the node's window; a new
	// query (new time, new nonce) can succeed. Check clocks.
	CodeStaleQuery Code = "stale_query"
	// CodeReplayedNonce: the nonce was used before; the bank must sign a
	// new query.
	CodeReplayedNonce Code = "replayed_nonce"
	// CodeConsentNotFound: no consent commitment on the ledger; ledger views
	// may lag a fresh recording by seconds.
	CodeConsentNotFound Code = "consent_not_found"
	// CodeConsentMismatch: the document does not match its ledger
	// commitment (or its issuing region).
	CodeConsentMismatch Code = "consent_mismatch"
	// CodeConsentSignature: the enterprise's signature or the issuing
	// region's countersignature does not verify.
	CodeConsentSignature Code = "consent_signature_invalid"
	// CodeConsentUncertified: the enterprise's key is not certified for
	// the consent's subject by a registered identity authority (no chain,
	// an unregistered or retired authority, a certificate for another
	// USCC, invalid at signing time, or revoked before recording).
	CodeConsentUncertified Code = "consent_uncertified"
	// CodeConsentRevoked: the consent was revoked.
	CodeConsentRevoked Code = "consent_revoked"
	// CodeConsentExpired: the consent's window ended.
	CodeConsentExpired Code = "consent_expired"
	// CodeConsentNotYetValid: the consent's window has not begun.
	CodeConsentNotYetValid Code = "consent_not_yet_valid"
	// CodeConsentOtherBank: the consent was granted to another bank.
	CodeConsentOtherBank Code = "consent_other_bank"
	// CodeSubjectMismatch: the consent was given by another enterprise.
	CodeSubjectMismatch Code = "subject_mismatch"
	// CodePurposeMismatch: the query's purpose is not the consent's.
	CodePurposeMismatch Code = "purpose_mismatch"
	// CodeCategoryOutOfScope: the query asks categories the consent does
	// not cover; narrow the query.
	CodeCategoryOutOfScope Code = "category_out_of_scope"
	// CodeLedgerViewStale: the node's view of the ledger is older than its
	// grace period; it answers again once the ledger is back.
	CodeLedgerViewStale Code = "ledger_view_stale"
	// CodeNodeKeyMismatch: the node's key is not the one its region's
	// ledger record names, so nothing it signs would verify; its operator
	// must start it with the recorded key or publish this one.
	CodeNodeKeyMismatch Code = "node_key_mismatch"
	// CodeLedgerUnavailable: the ledger could not be read to decide.
	CodeLedgerUnavailable Code = "ledger_unavailable"
	// CodeUnavailable: the node cannot answer now (overloaded, store or
	// log failing).
	CodeUnavailable Code = "unavailable"
	// CodeDiskFull: the answering node's disk is too full to log a
	// receipt durably; it answers again once space is freed.
	CodeDiskFull Code = "disk_full"
	// CodeInternal: a bug on the answering node (a recovered panic);
	// report it.
	CodeInternal Code = "internal"
)

type codeInfo struct {
	status int
	retry  bool
}

// codes is the closed set: each code's HTTP status and whether asking
// again (later, or with a new query) can succeed.
var codes = map[Code]codeInfo{
	CodeInvalidQuery:       {http.StatusBadRequest, false},
	CodeTooLarge:           {http.StatusRequestEntityTooLarge, false},
	CodeUnauthorized:       {http.StatusUnauthorized, false},
	CodeNotFound:           {http.StatusNotFound, false},
	CodeConflict:           {http.StatusConflict, false},
	CodeDenied:             {http.StatusForbidden, false},
	CodeNotMember:          {http.StatusForbidden, false},
	CodeWrongHomeRegion:    {http.StatusForbidden, false},
	CodeBankUnknown:        {http.StatusUnauthorized, true},
	CodeBankInactive:       {http.StatusUnauthorized, false},
	CodeBadSignature:       {http.StatusUnauthorized, false},
	CodeStaleQuery:         {http.StatusUnauthorized, true},
	CodeReplayedNonce:      {http.StatusUnauthorized, false},
	CodeConsentNotFound:    {http.StatusForbidden, true},
	CodeConsentMismatch:    {http.StatusForbidden, false},
	CodeConsentSignature:   {http.StatusForbidden, false},
	CodeConsentUncertified: {http.StatusForbidden, false},
	CodeConsentRevoked:     {http.StatusForbidden, false},
	CodeConsentExpired:     {http.StatusForbidden, false},
	CodeConsentNotYetValid: {http.StatusForbidden, true},
	CodeConsentOtherBank:   {http.StatusForbidden, false},
	CodeSubjectMismatch:    {http.StatusForbidden, false},
	CodePurposeMismatch:    {http.StatusForbidden, false},
	CodeCategoryOutOfScope: {http.StatusForbidden, false},
	CodeLedgerViewStale:    {http.StatusServiceUnavailable, true},
	CodeNodeKeyMismatch:    {http.StatusServiceUnavailable, true},
	CodeLedgerUnavailable:  {http.StatusServiceUnavailable, true},
	CodeUnavailable:        {http.StatusServiceUnavailable, true},
	CodeDiskFull:           {http.StatusServiceUnavailable, true},
	CodeInternal:           {http.StatusInternalServerError, true},
}

// Codes lists the closed set in documentation order.
func Codes() []Code {
	return []Code{
		CodeInvalidQuery, CodeTooLarge, CodeUnauthorized, CodeNotFound, CodeConflict,
		CodeDenied, CodeNotMember, CodeWrongHomeRegion,
		CodeBankUnknown, CodeBankInactive, CodeBadSignature, CodeStaleQuery, CodeReplayedNonce,
		CodeConsentNotFound, CodeConsentMismatch, CodeConsentSignature, CodeConsentUncertified, CodeConsentRevoked,
		CodeConsentExpired, CodeConsentNotYetValid, CodeConsentOtherBank, CodeSubjectMismatch,
		CodePurposeMismatch, CodeCategoryOutOfScope,
		CodeLedgerViewStale, CodeNodeKeyMismatch, CodeLedgerUnavailable, CodeUnavailable, CodeDiskFull, CodeInternal,
	}
}

// Known reports whether c is one of the closed set.
func (c Code) Known() bool { _, ok := codes[c]; return ok }

// Retryable reports whether asking again (later, or with a new query) can
// succeed; an unknown code answers as CodeInternal, as a peer treats it.
func (c Code) Retryable() bool {
	if i, ok := codes[c]; ok {
		return i.retry
	}
	return codes[CodeInternal].retry
}

// HTTPStatus is the bank API's status for a refusal with this code; an
// unknown code answers as CodeInternal (500).
func (c Code) HTTPStatus() int {
	if i, ok := codes[c]; ok {
		return i.status
	}
	return codes[CodeInternal].status
}

// Refusal is a refused query, ack or consent: a code from the closed set
// and a message for people. Use errors.As to read it.
type Refusal struct {
	Code Code
	Msg  string
	// Err is the local cause; it never crosses the wire.
	Err error
}

func (e *Refusal) Error() string {
	if e.Msg == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Msg
}

func (e *Refusal) Unwrap() error { return e.Err }

// Is makes errors.Is(err, &Refusal{Code: c}) match any refusal with code c.
func (e *Refusal) Is(target error) bool {
	t, ok := target.(*Refusal)
	return ok && t.Code == e.Code && t.Msg == "" && t.Err == nil
}

// Refuse builds a refusal with a formatted message; a %w cause is kept as
// Err for local logs.
func Refuse(c Code, format string, args ...any) *Refusal {
	err := fmt.Errorf(format, args...)
	return &Refusal{Code: c, Msg: err.Error(), Err: errors.Unwrap(err)}
}

// RefusalOf returns the refusal in err's chain, or nil.
func RefusalOf(err error) *Refusal {
	var r *Refusal
	if errors.As(err, &r) {
		return r
	}
	return nil
}

// CodeOf returns the code of the refusal in err's chain, "" for a nil err,
// and CodeUnavailable for any other error: a node that cannot tell why it
// failed says it is unavailable (fail closed, retry later).
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	if r := RefusalOf(err); r != nil {
		return r.Code
	}
	return CodeUnavailable
}
