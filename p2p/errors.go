package p2p

import "errors"

// Errors of the requesting side. A refusal is not one of these: it arrives
// as the *credit.Refusal the answering region sent.
var (
	// ErrUnreachable: no answer from the region (no peer, dial, stream
	// reset, timeout or cancellation). Asking again later can help.
	ErrUnreachable = errors.New("region unreachable")
	// ErrBadAnswer: frames arrived but do not make an answer (do not
	// decode, too large, records after the end). Evidence of a faulty or
	// dishonest region; asking again is unlikely to help.
	ErrBadAnswer = errors.New("bad answer")
)

// Errors of reading frames.
var (
	// ErrFrameTooLarge: a frame's length prefix exceeds its kind's limit.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrMalformed: a frame does not decode.
	ErrMalformed = errors.New("malformed frame")
)

// ErrUnknownMember is what Membership.Region wraps when the region is not
// an active member.
var ErrUnknownMember = errors.New("not a member")

// ErrServerClosed: the server closed while a caller waited on it.
var ErrServerClosed = errors.New("p2p server closed")
