// Package network is ccnode's view of the shared ledger: the Ledger
// interface that nodes and auditors use, with two backends — embedded (the
// contract run in-process over a local Badger state with hash-chained blocks)
// and fabric (a fabric-gateway client of a real Hyperledger Fabric network)
// — and the tooling that starts a local Fabric network.
//
// It moves facts to and from the ledger and makes no decision about credit
// data: whether a consent permits an answer is the node's call.
package network

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// Errors every backend returns, wrapped, so callers can use errors.Is.
var (
	// ErrNotFound: the member, consent or checkpoint does not exist.
	ErrNotFound = errors.New("not found")
	// ErrDenied: the contract refused the caller (wrong identity, a region
	// acting for another, a bad signature or proof, a back-dated change).
	// Retrying the same call will not help.
	ErrDenied = errors.New("denied")
	// ErrConflict: the call contradicts ledger state (an id already used,
	// a checkpoint that forks the anchored log, bootstrap of a non-empty
	// ledger). Retrying the same call will not help.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the arguments are malformed.
	ErrInvalid = errors.New("invalid argument")
	// ErrUnavailable: the ledger could not be reached or did not confirm
	// in time. The call may or may not have taken effect; every write of
	// this interface is safe to retry.
	ErrUnavailable = errors.New("ledger unavailable")
)

// Error carries the operation and the kind (one of the sentinels above).
type Error struct {
	Op   string // the ledger operation, such as "AnchorCheckpoint"
	Kind error  // ErrNotFound, ErrDenied, ...
	Msg  string // what the contract or backend said
}

func (e *Error) Error() string { return fmt.Sprintf("ledger %s: %v: %s", e.Op, e.Kind, e.Msg) }
func (e *Error) Unwrap() error { return e.Kind }

// Position is a point in the ledger's event stream: the last event a
// subscriber has processed. The zero Position is before the first event.
type Position struct {
	Block uint64 `json:"block"`
	TxID  string `json:"tx_id,omitempty"`
}

// EventKind names what a ledger event reports.
type EventKind string

// Event kinds, emitted by the contract.
const (
	EventMemberChanged      EventKind = "member_changed"
	EventConsentRecorded    EventKind = "consent_recorded"
	EventConsentRevoked     EventKind = "consent_revoked"
	EventCheckpointAnchored EventKind = "checkpoint_anchored"
	EventAuthorityChanged   EventKind = "authority_changed"
	EventCertRevoked        EventKind = "certificate_revoked"
	// A candidate's join proposal, and a vote that did not yet decide a
	// proposal; the deciding vote is a member_changed event with both the
	// region and the proposal.
	EventRegionProposed EventKind = "region_proposed"
	EventRegionApproved EventKind = "region_approved"
)

// Event is a committed contract event. Exactly one of the pointer fields is
// set, according to Kind. A transaction that writes several members (the
// bootstrap) gives one member_changed Event per member, all with the
// transaction's Position: resuming from that Position skips all of them.
type Event struct {
	Position   Position                   `json:"position"`
	Kind       EventKind                  `json:"kind"`
	Time       time.Time                  `json:"time"` // transaction timestamp
	Region     *credit.RegionMember       `json:"region,omitempty"`
	Bank       *credit.BankMember         `json:"bank,omitempty"`
	Consent    *credit.ConsentCommitment  `json:"consent,omitempty"`
	Checkpoint *credit.AnchoredCheckpoint `json:"checkpoint,omitempty"`
	Authority  *credit.IdentityAuthority  `json:"authority,omitempty"`
	Revocation *credit.CertRevocation     `json:"revocation,omitempty"`
	Proposal   *credit.RegionProposal     `json:"proposal,omitempty"`
}

// Membership reads and changes the consortium's member records.
type Membership interface {
	// Bootstrap writes the first members; the contract refuses it on a
	// ledger that already has members (ErrConflict).
	Bootstrap(ctx context.Context, regions []credit.RegionMember, banks []credit.BankMember) error
	Regions(ctx context.Context) ([]credit.RegionMember, error)
	Region(ctx context.Context, id credit.RegionID) (credit.RegionMember, error)
	// UpdateRegion changes the caller's own region record (addresses,
	// key, status); retiring is setting StatusRetired.
	UpdateRegion(ctx context.Context, r credit.RegionMember) error
	Banks(ctx context.Context) ([]credit.BankMember, error)
	Bank(ctx context.Context, id credit.BankID) (credit.BankMember, error)
	// RegisterBank adds or updates a bank whose home region is the
	// caller's region.
	RegisterBank(ctx context.Context, b credit.BankMember) error
	RetireBank(ctx context.Context, id credit.BankID) error
}

// Governance changes the member regions by a majority of the active
// regions: a candidate joins, a member retires.
type Governance interface {
	// ProposeRegion publishes the caller's own candidate descriptor
	// (its MSP id must be the caller's). Proposing the identical
	// descriptor again returns the open proposal.
	ProposeRegion(ctx context.Context, r credit.RegionMember) (credit.RegionProposal, error)
	// ApproveRegion is the caller region's vote for candidate id; at a
	// majority of the active regions the candidate becomes active. A
	// second approval by the same region is not counted (Counted false,
	// Detail says why), and neither is one for a decided proposal.
	ApproveRegion(ctx context.Context, id credit.RegionID) (credit.RegionVote, error)
	// RetireRegion is the caller region's vote to retire id, counted like
	// ApproveRegion; the first vote opens the proposal.
	RetireRegion(ctx context.Context, id credit.RegionID) (credit.RegionVote, error)
	// RegionProposals lists every proposal, open and accepted.
	RegionProposals(ctx context.Context) ([]credit.RegionProposal, error)
}

// Consents records and reads consent commitments.
type Consents interface {
	// RecordConsent stores a commitment issued by the caller's region.
	// Recording the identical commitment again is a no-op.
	RecordConsent(ctx context.Context, c credit.ConsentCommitment) error
	// RevokeConsent revokes at the transaction's time; revoking a revoked
	// consent is a no-op that returns the original revocation.
	RevokeConsent(ctx context.Context, id string) (credit.ConsentCommitment, error)
	Consent(ctx context.Context, id string) (credit.ConsentCommitment, error)
	// ConsentAt returns the commitment as the ledger held it at t, from
	// the key's history, with its status at t.
	ConsentAt(ctx context.Context, id string, t time.Time) (credit.ConsentCommitment, credit.ConsentStatus, error)
}

// Authorities records the enterprise identity authorities the consortium
// trusts to certify enterprises' signing keys, and the certificates they
// revoked. The region responsible for an authority's divisions registers,
// retires and revokes under it.
type Authorities interface {
	// RegisterAuthority registers a; the contract sets its status and
	// time and refuses divisions outside the caller region's own.
	// Registering the identical authority again is a no-op.
	RegisterAuthority(ctx context.Context, a credit.IdentityAuthority) error
	// RetireAuthority retires at the transaction's time; consents it
	// certified stop counting. Retiring twice returns the first retirement.
	RetireAuthority(ctx context.Context, id string) (credit.IdentityAuthority, error)
	// Authorities lists every authority ever registered, retired included.
	Authorities(ctx context.Context) ([]credit.IdentityAuthority, error)
	// RevokeCertificate records r (ID, Authority) at the transaction's
	// time; revoking again returns the first revocation.
	RevokeCertificate(ctx context.Context, r credit.CertRevocation) (credit.CertRevocation, error)
	// Revocations lists every revoked certificate.
	Revocations(ctx context.Context) ([]credit.CertRevocation, error)
}

// Checkpoints anchors and reads receipt-log checkpoints.
type Checkpoints interface {
	// AnchorCheckpoint anchors cp (signed by the caller's region) with an
	// RFC 6962 consistency proof from the region's latest anchored
	// checkpoint. Anchoring the latest checkpoint again is a no-op that
	// returns it.
	AnchorCheckpoint(ctx context.Context, cp credit.Checkpoint, proof [][]byte) (credit.AnchoredCheckpoint, error)
	LatestCheckpoint(ctx context.Context, region credit.RegionID) (credit.AnchoredCheckpoint, error)
	// CheckpointHistory lists a region's anchored checkpoints, oldest first.
	CheckpointHistory(ctx context.Context, region credit.RegionID) ([]credit.AnchoredCheckpoint, error)
}

// Events delivers committed contract events.
type Events interface {
	// Subscribe delivers every event after from, in ledger order, then new
	// ones as they commit. The channel closes when ctx ends or the backend
	// fails; the subscriber resubscribes from the last Position it
	// processed and misses nothing.
	Subscribe(ctx context.Context, from Position) (<-chan Event, error)
}

// Ledger is everything a node and an auditor need from the shared ledger.
// A Ledger value acts as one identity (a region's, through its MSP id).
type Ledger interface {
	Membership
	Governance
	Consents
	Authorities
	Checkpoints
	Events
	// Identity is the MSP id this client acts as.
	Identity() string
	Close() error
}
