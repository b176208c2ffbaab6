package p2p

import (
	"errors"
	"fmt"
)

// Code is a refusal code carried on the wire. The set is closed: a peer
// that receives a code it does not know treats it as CodeInternal.
type Code string

// The refusal codes. Each says whether asking again can help.
const (
	// CodeNotMember: the requesting peer is not the active member region it
	// claims to be. Retrying does not help until the ledger says otherwise.
	CodeNotMember Code = "not_member"
	// CodeBadRequest: the request did not decode or failed validation.
	// Retrying the same bytes never helps.
	CodeBadRequest Code = "bad_request"
	// CodeTooLarge: a frame exceeded its kind's size limit. Never retry as is.
	CodeTooLarge Code = "too_large"
	// CodeStale: the query's time is outside the answering node's window.
	// A new query (new time, new nonce) can succeed; check clocks.
	CodeStale Code = "stale"
	// CodeReplayed: the nonce was already used. Never retry; the bank must
	// sign a new query.
	CodeReplayed Code = "replayed"
	// CodeBadSignature: the bank's signature (or an ack's) does not verify.
	// Never retry.
	CodeBadSignature Code = "bad_signature"
	// CodeBankUnknown: the bank is not registered. Retry only after the
	// ledger registers it (the answering node's view may lag).
	CodeBankUnknown Code = "bank_unknown"
	// CodeBankRetired: the bank is retired. Never retry.
	CodeBankRetired Code = "bank_retired"
	// CodeNoConsent: no consent commitment on the ledger. Retry only after
	// the consent is recorded (ledger views may lag by seconds).
	CodeNoConsent Code = "no_consent"
	// CodeConsentRevoked: the consent was revoked. Never retry.
	CodeConsentRevoked Code = "consent_revoked"
	// CodeConsentExpired: the query time is outside the consent's window.
	// Never retry with this consent.
	CodeConsentExpired Code = "consent_expired"
	// CodeConsentOutOfScope: categories or purpose are outside the consent.
	// Never retry as is; narrow the query.
	CodeConsentOutOfScope Code = "consent_out_of_scope"
	// CodeConsentWrongGrantee: the consent names another bank. Never retry.
	CodeConsentWrongGrantee Code = "consent_wrong_grantee"
	// CodeConsentMismatch: the document does not match its ledger commitment
	// or its signatures do not verify. Never retry.
	CodeConsentMismatch Code = "consent_mismatch"
	// CodeUnavailable: the node cannot answer now (ledger view too old,
	// store or log failing, overloaded). Retrying later can help.
	CodeUnavailable Code = "unavailable"
	// CodeInternal: a bug on the answering node (a recovered panic, say).
	// Retrying may help once; report it.
	CodeInternal Code = "internal"
)

var codes = map[Code]bool{
	CodeNotMember: false, CodeBadRequest: false, CodeTooLarge: false, CodeStale: true,
	CodeReplayed: false, CodeBadSignature: false, CodeBankUnknown: true, CodeBankRetired: false,
	CodeNoConsent: true, CodeConsentRevoked: false, CodeConsentExpired: false,
	CodeConsentOutOfScope: false, CodeConsentWrongGrantee: false, CodeConsentMismatch: false,
	CodeUnavailable: true, CodeInternal: true,
}

// Known reports whether c is one of the closed set.
func (c Code) Known() bool { _, ok := codes[c]; return ok }

// Retryable reports whether asking again (possibly later, or with a new
// query) can succeed.
func (c Code) Retryable() bool { return codes[c] }

// Error is a refusal: from the answering node on the wire, or from the
// checks this package's interfaces run. Use errors.As to read the Code.
type Error struct {
	Code Code
	Msg  string
	// Err is the local cause; it never crosses the wire.
	Err error
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, &Error{Code: c}) match any refusal with code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Msg == "" && t.Err == nil
}

// Refuse builds an *Error with a formatted message. Implementations of
// ConsentChecker and Members return these to choose the code; %w causes are
// kept locally for logs.
func Refuse(c Code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: c, Msg: err.Error(), Err: errors.Unwrap(err)}
}

// CodeOf returns the refusal code in err's chain, or "" when err is nil and
// CodeUnavailable for any other error: an answering node that cannot tell
// why it failed says it is unavailable (fail closed, retry later).
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeUnavailable
}

// asRefusal turns any error into an *Error for the wire.
func asRefusal(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeUnavailable, Msg: err.Error(), Err: err}
}

// ErrUnknownMember is what Members implementations wrap when the ledger has
// no such region or bank.
var ErrUnknownMember = errors.New("not a member")
