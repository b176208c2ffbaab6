// Package receipts keeps a regional node's receipt state in the node's
// Badger database, beside (never inside) the records of package store:
//
//   - the append-only receipt log (prefix L): every receipt this node
//     issued, each id once, as a leaf of an RFC 6962 Merkle tree, with every completed
//     tree node stored by (level, index) so that roots at any size,
//     inclusion proofs and consistency proofs cost O(log n) reads, and
//     the acknowledgements requesters returned for them;
//   - receipts this node received as a requester, with its own
//     acknowledgements (prefix C);
//   - the anchoring outbox and the node's cached view of the ledger
//     (prefix O), so that anchoring and the consent view survive restarts;
//   - bank query nonces with an expiry (prefix N), to refuse replays.
//
// It owns these key prefixes and must not touch any other key of the
// database; it knows nothing of libp2p, HTTP or the ledger's transport.
package receipts

import "errors"

// Errors returned wrapped; test with errors.Is.
var (
	// ErrNotFound: no receipt, leaf, checkpoint or entry by that key.
	ErrNotFound = errors.New("not found")
	// ErrOutOfRange: a leaf index or tree size beyond the log's size.
	ErrOutOfRange = errors.New("out of range")
	// ErrReplay: the nonce was already used within its lifetime.
	ErrReplay = errors.New("nonce already used")
	// ErrDuplicateReceipt: the log already holds a receipt with this id (a
	// receipt id derives from the query, so the query was answered before).
	ErrDuplicateReceipt = errors.New("receipt id already in the log")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("receipt log closed")
	// ErrCorrupt: stored bytes do not decode; the database was changed
	// outside this package.
	ErrCorrupt = errors.New("corrupt receipt store")
)

// Key prefixes owned by this package.
const (
	prefixLog       = 'L'
	prefixOutbox    = 'O'
	prefixRequested = 'C'
	prefixNonce     = 'N'
)
