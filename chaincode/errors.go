package chaincode

import (
	"errors"
	"fmt"
	"strings"
)

// Error codes. A refused transaction's message is "ccnode:<code>: detail",
// a documented prefix the ledger clients turn back into typed errors: Fabric
// carries only a message string from the chaincode to the client.
const (
	CodeNotFound = "not_found"
	CodeDenied   = "denied"
	CodeConflict = "conflict"
	CodeInvalid  = "invalid"
)

const errPrefix = "ccnode:"

// Error is a refusal by the contract.
type Error struct {
	Code   string
	Detail string
}

func (e *Error) Error() string { return errPrefix + e.Code + ": " + e.Detail }

func errorf(code, format string, args ...any) error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// ParseError recovers the code and detail from a refusal's message, which
// may be embedded in a longer message by the transport.
func ParseError(msg string) (code, detail string, ok bool) {
	i := strings.Index(msg, errPrefix)
	if i < 0 {
		return "", "", false
	}
	rest := msg[i+len(errPrefix):]
	code, detail, found := strings.Cut(rest, ": ")
	if !found {
		return "", "", false
	}
	switch code {
	case CodeNotFound, CodeDenied, CodeConflict, CodeInvalid:
		return code, detail, true
	}
	return "", "", false
}

// CodeOf returns the code of a contract refusal, or "" for other errors.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
