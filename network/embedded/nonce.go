package embedded

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// Replay protection of submitted proposals.
//
// A proposal is signed by its caller, so nobody can forge one, but a signed
// proposal copied off the wire (the served ledger is plain HTTP) could be
// sent again: an old UpdateRegion would roll a region's record back. Every
// proposal's nonce therefore starts with the time it was made: the ledger
// refuses a nonce whose time is more than ProposalWindow from its own
// clock, and remembers every nonce it accepted until the proposal's time
// plus that window (in its own Badger folder, so a restart forgets
// nothing), refusing it again.
// Fabric gives the same guarantee with its transaction ids and the peers'
// authentication time window.

// ProposalWindow is how far a proposal's time may be from the ledger's.
const ProposalWindow = 5 * time.Minute

const keyNonce = "n/" // n/<msp id>/<nonce> -> nothing, expiring after the proposal's time + ProposalWindow

// newNonce is 8 bytes of the time (Unix nanoseconds, big-endian) then 12
// random bytes, hex-encoded.
func newNonce(now time.Time) string {
	var b [20]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	_, _ = rand.Read(b[8:])
	return hex.EncodeToString(b[:])
}

// nonceTime reads the time a nonce made by newNonce carries.
func nonceTime(nonce string) (time.Time, error) {
	b, err := hex.DecodeString(nonce)
	if err != nil || len(b) != 20 {
		return time.Time{}, fmt.Errorf("nonce %q is not 20 hex-encoded bytes (8 of time, 12 random)", nonce)
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[:8]))), nil
}

// checkNonce refuses a proposal that is stale, from the future, or seen
// before; on success it adds the nonce to txn, so it is remembered exactly
// when the proposal's transaction commits.
func (s *Server) checkNonce(txn *badger.Txn, tx credit.LedgerTx, now time.Time) error {
	deny := func(format string, args ...any) error {
		return &network.Error{Op: tx.Function, Kind: network.ErrDenied, Msg: fmt.Sprintf(format, args...)}
	}
	made, err := nonceTime(tx.Nonce)
	if err != nil {
		return deny("proposal of %s: %v", tx.Caller, err)
	}
	if d := now.Sub(made); d > ProposalWindow || d < -ProposalWindow {
		return deny("proposal of %s made at %s, more than %s from the ledger's time %s: stale or replayed",
			tx.Caller, made.UTC().Format(time.RFC3339), ProposalWindow, now.UTC().Format(time.RFC3339))
	}
	key := []byte(keyNonce + tx.Caller + "/" + tx.Nonce)
	switch _, err := txn.Get(key); {
	case err == nil:
		return deny("proposal of %s with nonce %s was already submitted: replayed", tx.Caller, tx.Nonce)
	case !errors.Is(err, badger.ErrKeyNotFound):
		return &network.Error{Op: tx.Function, Kind: network.ErrUnavailable, Msg: err.Error()}
	}
	// Kept until the last instant the window accepts the proposal, counted
	// from its own time, past the whole second Badger keeps expiries in
	// (WithTTL truncates, forgetting a nonce up to a second early).
	e := badger.NewEntry(key, nil)
	e.ExpiresAt = uint64(time.Now().Add(made.Add(ProposalWindow).Sub(now)).Unix()) + 1
	return txn.SetEntry(e)
}
