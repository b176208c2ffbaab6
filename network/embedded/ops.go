package embedded

import (
	"context"
	"time"

	"github.com/prdcredit/ccnode/chaincode"
	"github.com/prdcredit/ccnode/credit"
)

// caller runs one contract function as a ledger client and stores its
// result in out (a pointer to the function's result type, or nil).
type caller interface {
	call(ctx context.Context, fn string, out any, args ...string) error
}

// ledgerOps is network.Ledger's contract calls over a caller: how each
// method's arguments and result map onto the contract function, shared by
// the in-process Client and the Remote one.
type ledgerOps struct{ c caller }

// callFor is a call of fn whose result is a T.
func callFor[T any](ctx context.Context, c caller, fn string, args ...string) (T, error) {
	var out T
	err := c.call(ctx, fn, &out, args...)
	return out, err
}

// Bootstrap implements network.Membership.
func (o ledgerOps) Bootstrap(ctx context.Context, regions []credit.RegionMember, banks []credit.BankMember) error {
	if banks == nil {
		banks = []credit.BankMember{}
	}
	return o.c.call(ctx, "Bootstrap", nil, marshal(regions), marshal(banks))
}

// Regions implements network.Membership.
func (o ledgerOps) Regions(ctx context.Context) ([]credit.RegionMember, error) {
	return callFor[[]credit.RegionMember](ctx, o.c, "GetRegions")
}

// Region implements network.Membership.
func (o ledgerOps) Region(ctx context.Context, id credit.RegionID) (credit.RegionMember, error) {
	return callFor[credit.RegionMember](ctx, o.c, "GetRegion", string(id))
}

// UpdateRegion implements network.Membership.
func (o ledgerOps) UpdateRegion(ctx context.Context, r credit.RegionMember) error {
	return o.c.call(ctx, "UpdateRegion", nil, marshal(r))
}

// ProposeRegion implements network.Governance.
func (o ledgerOps) ProposeRegion(ctx context.Context, r credit.RegionMember) (credit.RegionProposal, error) {
	return callFor[credit.RegionProposal](ctx, o.c, "ProposeRegion", marshal(r))
}

// ApproveRegion implements network.Governance.
func (o ledgerOps) ApproveRegion(ctx context.Context, id credit.RegionID) (credit.RegionVote, error) {
	return callFor[credit.RegionVote](ctx, o.c, "ApproveRegion", string(id))
}

// RetireRegion implements network.Governance.
func (o ledgerOps) RetireRegion(ctx context.Context, id credit.RegionID) (credit.RegionVote, error) {
	return callFor[credit.RegionVote](ctx, o.c, "RetireRegion", string(id))
}

// RegionProposals implements network.Governance.
func (o ledgerOps) RegionProposals(ctx context.Context) ([]credit.RegionProposal, error) {
	return callFor[[]credit.RegionProposal](ctx, o.c, "GetRegionProposals")
}

// Banks implements network.Membership.
func (o ledgerOps) Banks(ctx context.Context) ([]credit.BankMember, error) {
	return callFor[[]credit.BankMember](ctx, o.c, "GetBanks")
}

// Bank implements network.Membership.
func (o ledgerOps) Bank(ctx context.Context, id credit.BankID) (credit.BankMember, error) {
	return callFor[credit.BankMember](ctx, o.c, "GetBank", string(id))
}

// RegisterBank implements network.Membership.
func (o ledgerOps) RegisterBank(ctx context.Context, b credit.BankMember) error {
	return o.c.call(ctx, "RegisterBank", nil, marshal(b))
}

// RetireBank implements network.Membership.
func (o ledgerOps) RetireBank(ctx context.Context, id credit.BankID) error {
	return o.c.call(ctx, "RetireBank", nil, string(id))
}

// RecordConsent implements network.Consents.
func (o ledgerOps) RecordConsent(ctx context.Context, cc credit.ConsentCommitment) error {
	return o.c.call(ctx, "RecordConsent", nil, marshal(cc))
}

// RevokeConsent implements network.Consents.
func (o ledgerOps) RevokeConsent(ctx context.Context, id string) (credit.ConsentCommitment, error) {
	return callFor[credit.ConsentCommitment](ctx, o.c, "RevokeConsent", id)
}

// Consent implements network.Consents.
func (o ledgerOps) Consent(ctx context.Context, id string) (credit.ConsentCommitment, error) {
	return callFor[credit.ConsentCommitment](ctx, o.c, "GetConsent", id)
}

// ConsentAt implements network.Consents.
func (o ledgerOps) ConsentAt(ctx context.Context, id string, at time.Time) (credit.ConsentCommitment, credit.ConsentStatus, error) {
	var out chaincode.ConsentAt
	err := o.c.call(ctx, "GetConsentAt", &out, id, at.UTC().Format(time.RFC3339Nano))
	return out.Commitment, out.Status, err
}

// RegisterAuthority implements network.Authorities.
func (o ledgerOps) RegisterAuthority(ctx context.Context, a credit.IdentityAuthority) error {
	return o.c.call(ctx, "RegisterAuthority", nil, marshal(a))
}

// RetireAuthority implements network.Authorities.
func (o ledgerOps) RetireAuthority(ctx context.Context, id string) (credit.IdentityAuthority, error) {
	return callFor[credit.IdentityAuthority](ctx, o.c, "RetireAuthority", id)
}

// Authorities implements network.Authorities.
func (o ledgerOps) Authorities(ctx context.Context) ([]credit.IdentityAuthority, error) {
	return callFor[[]credit.IdentityAuthority](ctx, o.c, "GetAuthorities")
}

// RevokeCertificate implements network.Authorities.
func (o ledgerOps) RevokeCertificate(ctx context.Context, r credit.CertRevocation) (credit.CertRevocation, error) {
	return callFor[credit.CertRevocation](ctx, o.c, "RevokeCertificate", marshal(r))
}

// Revocations implements network.Authorities.
func (o ledgerOps) Revocations(ctx context.Context) ([]credit.CertRevocation, error) {
	return callFor[[]credit.CertRevocation](ctx, o.c, "GetRevocations")
}

// AnchorCheckpoint implements network.Checkpoints. A region's first
// checkpoint has no proof: the contract takes "" for it.
func (o ledgerOps) AnchorCheckpoint(ctx context.Context, cp credit.Checkpoint, proof [][]byte) (credit.AnchoredCheckpoint, error) {
	p := ""
	if len(proof) > 0 {
		p = marshal(proof)
	}
	return callFor[credit.AnchoredCheckpoint](ctx, o.c, "AnchorCheckpoint", marshal(cp), p)
}

// LatestCheckpoint implements network.Checkpoints.
func (o ledgerOps) LatestCheckpoint(ctx context.Context, region credit.RegionID) (credit.AnchoredCheckpoint, error) {
	return callFor[credit.AnchoredCheckpoint](ctx, o.c, "GetLatestCheckpoint", string(region))
}

// CheckpointHistory implements network.Checkpoints.
func (o ledgerOps) CheckpointHistory(ctx context.Context, region credit.RegionID) ([]credit.AnchoredCheckpoint, error) {
	return callFor[[]credit.AnchoredCheckpoint](ctx, o.c, "GetCheckpointHistory", string(region))
}
