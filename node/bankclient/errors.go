package bankclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/prdcredit/ccnode/credit"
)

// Error is an error response of a node: its HTTP status and the refusal
// code of its body, one of credit.Codes(). Read it with errors.As; or test
// a code with errors.Is(err, &credit.Refusal{Code: c}).
type Error struct {
	Status int
	// Code is the body's refusal code; a body that is not the API's error
	// JSON (a proxy's page) gets "http_<status>" instead, outside the list.
	Code    credit.Code
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// NewError is the error of an answer with status and body: the body's
// code and message when it is the API's error JSON, else "http_<status>"
// and the body's text.
func NewError(status int, body []byte) *Error {
	e := &Error{Status: status}
	var b APIError
	if json.Unmarshal(body, &b) != nil || b.Code == "" {
		e.Code, e.Message = credit.Code("http_"+strconv.Itoa(status)), strings.TrimSpace(string(body))
	} else {
		e.Code, e.Message = credit.Code(b.Code), b.Message
	}
	return e
}

// Reason returns the refusal code.
func (e *Error) Reason() credit.Code { return e.Code }

// Retryable reports whether asking again (later, or with a new query) can
// succeed, by the code's entry in the closed list.
func (e *Error) Retryable() bool { return e.Code.Retryable() }

// Is matches a bare *credit.Refusal of the same code, as credit.Refusal's
// own Is does, so one errors.Is test reads a local and a remote refusal.
func (e *Error) Is(target error) bool {
	t, ok := target.(*credit.Refusal)
	return ok && t.Code == e.Code && t.Msg == "" && t.Err == nil
}

// ErrVerify: an answer, receipt or proof does not verify; the wrapped
// message says which part and why. Never retry: the same bytes fail again.
var ErrVerify = errors.New("verification failed")

// VerifyError says which region's part of an answer failed to verify.
type VerifyError struct {
	Region credit.RegionID
	Err    error
}

func (e *VerifyError) Error() string { return fmt.Sprintf("region %s: %v", e.Region, e.Err) }
func (e *VerifyError) Unwrap() error { return e.Err }
