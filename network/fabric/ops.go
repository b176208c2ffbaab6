package fabric

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/prdcredit/ccnode/chaincode"
	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// call runs the contract function fn: submitted as a transaction or
// evaluated as a read, as the contract's table says.
func (l *Ledger) call(ctx context.Context, fn string, args ...string) ([]byte, error) {
	f, ok := chaincode.LookupFunc(fn)
	if !ok || len(args) != f.Args {
		return nil, &network.Error{Op: fn, Kind: network.ErrInvalid, Msg: fmt.Sprintf("no contract function %s of %d arguments", fn, len(args))}
	}
	if f.Submit {
		return l.submit(ctx, fn, args...)
	}
	return l.evaluate(ctx, fn, args...)
}

// callFor is call with the contract's result decoded.
func callFor[T any](ctx context.Context, l *Ledger, fn string, args ...string) (T, error) {
	res, err := l.call(ctx, fn, args...)
	if err != nil {
		var zero T
		return zero, err
	}
	return decode[T](fn, res)
}

// jsonArg encodes an argument; a failure is the caller's malformed value.
func jsonArg(op string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", &network.Error{Op: op, Kind: network.ErrInvalid, Msg: err.Error()}
	}
	return string(b), nil
}

// decode reads a contract result. A result that does not decode means the
// contract and this client disagree on the surface: reported as
// ErrUnavailable (the ledger did not give a usable answer) with the cause.
func decode[T any](op string, b []byte) (T, error) {
	var v T
	if len(b) == 0 {
		return v, nil
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, &network.Error{Op: op, Kind: network.ErrUnavailable, Msg: fmt.Sprintf("decode contract result: %v", err)}
	}
	return v, nil
}

// Bootstrap writes the first members; ErrConflict on a non-empty ledger.
func (l *Ledger) Bootstrap(ctx context.Context, regions []credit.RegionMember, banks []credit.BankMember) error {
	if banks == nil {
		banks = []credit.BankMember{}
	}
	r, err := jsonArg("Bootstrap", regions)
	if err != nil {
		return err
	}
	b, err := jsonArg("Bootstrap", banks)
	if err != nil {
		return err
	}
	_, err = l.call(ctx, "Bootstrap", r, b)
	return err
}

// Regions lists every region member.
func (l *Ledger) Regions(ctx context.Context) ([]credit.RegionMember, error) {
	return callFor[[]credit.RegionMember](ctx, l, "GetRegions")
}

// Region reads one region member.
func (l *Ledger) Region(ctx context.Context, id credit.RegionID) (credit.RegionMember, error) {
	return callFor[credit.RegionMember](ctx, l, "GetRegion", string(id))
}

// UpdateRegion changes the caller's own region record.
func (l *Ledger) UpdateRegion(ctx context.Context, r credit.RegionMember) error {
	a, err := jsonArg("UpdateRegion", r)
	if err != nil {
		return err
	}
	_, err = l.call(ctx, "UpdateRegion", a)
	return err
}

// ProposeRegion publishes the caller's own candidate descriptor.
func (l *Ledger) ProposeRegion(ctx context.Context, r credit.RegionMember) (credit.RegionProposal, error) {
	a, err := jsonArg("ProposeRegion", r)
	if err != nil {
		return credit.RegionProposal{}, err
	}
	return callFor[credit.RegionProposal](ctx, l, "ProposeRegion", a)
}

// ApproveRegion is the caller region's vote for candidate id.
func (l *Ledger) ApproveRegion(ctx context.Context, id credit.RegionID) (credit.RegionVote, error) {
	return callFor[credit.RegionVote](ctx, l, "ApproveRegion", string(id))
}

// RetireRegion is the caller region's vote to retire id.
func (l *Ledger) RetireRegion(ctx context.Context, id credit.RegionID) (credit.RegionVote, error) {
	return callFor[credit.RegionVote](ctx, l, "RetireRegion", string(id))
}

// RegionProposals lists every join and retirement proposal.
func (l *Ledger) RegionProposals(ctx context.Context) ([]credit.RegionProposal, error) {
	return callFor[[]credit.RegionProposal](ctx, l, "GetRegionProposals")
}

// Banks lists every bank member.
func (l *Ledger) Banks(ctx context.Context) ([]credit.BankMember, error) {
	return callFor[[]credit.BankMember](ctx, l, "GetBanks")
}

// Bank reads one bank member.
func (l *Ledger) Bank(ctx context.Context, id credit.BankID) (credit.BankMember, error) {
	return callFor[credit.BankMember](ctx, l, "GetBank", string(id))
}

// RegisterBank adds or updates a bank of the caller's region.
func (l *Ledger) RegisterBank(ctx context.Context, b credit.BankMember) error {
	a, err := jsonArg("RegisterBank", b)
	if err != nil {
		return err
	}
	_, err = l.call(ctx, "RegisterBank", a)
	return err
}

// RetireBank retires a bank of the caller's region.
func (l *Ledger) RetireBank(ctx context.Context, id credit.BankID) error {
	_, err := l.call(ctx, "RetireBank", string(id))
	return err
}

// RecordConsent stores a commitment issued by the caller's region.
func (l *Ledger) RecordConsent(ctx context.Context, c credit.ConsentCommitment) error {
	a, err := jsonArg("RecordConsent", c)
	if err != nil {
		return err
	}
	_, err = l.call(ctx, "RecordConsent", a)
	return err
}

// RevokeConsent revokes at the transaction's time and returns the
// commitment as revoked.
func (l *Ledger) RevokeConsent(ctx context.Context, id string) (credit.ConsentCommitment, error) {
	return callFor[credit.ConsentCommitment](ctx, l, "RevokeConsent", id)
}

// Consent reads a commitment as it stands.
func (l *Ledger) Consent(ctx context.Context, id string) (credit.ConsentCommitment, error) {
	return callFor[credit.ConsentCommitment](ctx, l, "GetConsent", id)
}

// ConsentAt returns the commitment as the ledger held it at t, with its
// status at t, from the key's history.
func (l *Ledger) ConsentAt(ctx context.Context, id string, t time.Time) (credit.ConsentCommitment, credit.ConsentStatus, error) {
	v, err := callFor[chaincode.ConsentAt](ctx, l, "GetConsentAt", id, t.UTC().Format(time.RFC3339Nano))
	if err != nil {
		return credit.ConsentCommitment{}, "", err
	}
	return v.Commitment, v.Status, nil
}

// AnchorCheckpoint anchors cp with a consistency proof from the region's
// latest anchored checkpoint; anchoring the latest one again returns it.
func (l *Ledger) AnchorCheckpoint(ctx context.Context, cp credit.Checkpoint, proof [][]byte) (credit.AnchoredCheckpoint, error) {
	if proof == nil {
		proof = [][]byte{}
	}
	c, err := jsonArg("AnchorCheckpoint", cp)
	if err != nil {
		return credit.AnchoredCheckpoint{}, err
	}
	p, err := jsonArg("AnchorCheckpoint", proof)
	if err != nil {
		return credit.AnchoredCheckpoint{}, err
	}
	return callFor[credit.AnchoredCheckpoint](ctx, l, "AnchorCheckpoint", c, p)
}

// LatestCheckpoint reads a region's latest anchored checkpoint.
func (l *Ledger) LatestCheckpoint(ctx context.Context, region credit.RegionID) (credit.AnchoredCheckpoint, error) {
	return callFor[credit.AnchoredCheckpoint](ctx, l, "GetLatestCheckpoint", string(region))
}

// CheckpointHistory lists a region's anchored checkpoints, oldest first.
func (l *Ledger) CheckpointHistory(ctx context.Context, region credit.RegionID) ([]credit.AnchoredCheckpoint, error) {
	return callFor[[]credit.AnchoredCheckpoint](ctx, l, "GetCheckpointHistory", string(region))
}

// RegisterAuthority registers an identity authority for divisions of the
// caller's region; the identical authority again is a no-op.
func (l *Ledger) RegisterAuthority(ctx context.Context, a credit.IdentityAuthority) error {
	arg, err := jsonArg("RegisterAuthority", a)
	if err != nil {
		return err
	}
	_, err = l.call(ctx, "RegisterAuthority", arg)
	return err
}

// RetireAuthority retires an authority of the caller's region and returns
// it as retired (the first retirement, if it already was).
func (l *Ledger) RetireAuthority(ctx context.Context, id string) (credit.IdentityAuthority, error) {
	return callFor[credit.IdentityAuthority](ctx, l, "RetireAuthority", id)
}

// Authorities lists every authority ever registered, retired included.
func (l *Ledger) Authorities(ctx context.Context) ([]credit.IdentityAuthority, error) {
	return callFor[[]credit.IdentityAuthority](ctx, l, "GetAuthorities")
}

// RevokeCertificate records a revoked enterprise certificate under one of
// the caller region's authorities and returns the revocation (the first,
// if it already was).
func (l *Ledger) RevokeCertificate(ctx context.Context, r credit.CertRevocation) (credit.CertRevocation, error) {
	arg, err := jsonArg("RevokeCertificate", r)
	if err != nil {
		return credit.CertRevocation{}, err
	}
	return callFor[credit.CertRevocation](ctx, l, "RevokeCertificate", arg)
}

// Revocations lists every revoked enterprise certificate.
func (l *Ledger) Revocations(ctx context.Context) ([]credit.CertRevocation, error) {
	return callFor[[]credit.CertRevocation](ctx, l, "GetRevocations")
}
