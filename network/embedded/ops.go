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

// Bootstrap implements network.Membership.
func (o ledgerOps) Bootstrap(ctx context.Context, regions []credit.RegionMember, banks []credit.BankMember) error {
	if banks == nil {
		banks = []credit.BankMember{}
	}
	return o.c.call(ctx, "Bootstrap", nil, marshal(regions), marshal(banks))
}

// Regions implements network.Membership.
func (o ledgerOps) Regions(ctx context.Context) ([]credit.RegionMember, error) {
	var out []credit.RegionMember
	err := o.c.call(ctx, "GetRegions", &out)
	return out, err
}

// Region implements network.Membership.
func (o ledgerOps) Region(ctx context.Context, id credit.RegionID) (credit.RegionMember, error) {
	var out credit.RegionMember
	err := o.c.call(ctx, "GetRegion", &out, string(id))
	return out, err
}

// UpdateRegion implements network.Membership.
func (o ledgerOps) UpdateRegion(ctx context.Context, r credit.RegionMember) error {
	return o.c.call(ctx, "UpdateRegion", nil, marshal(r))
}

// ProposeRegion implements network.Governance.
func (o ledgerOps) ProposeRegion(ctx context.Context, r credit.RegionMember) (credit.RegionProposal, error) {
	var out credit.RegionProposal
	err := o.c.call(ctx, "ProposeRegion", &out, marshal(r))
	return out, err
}

// ApproveRegion implements network.Governance.
func (o ledgerOps) ApproveRegion(ctx context.Context, id credit.RegionID) (credit.RegionVote, error) {
	var out credit.RegionVote
	err := o.c.call(ctx, "ApproveRegion", &out, string(id))
	return out, err
}

// RetireRegion implements network.Governance.
func (o ledgerOps) RetireRegion(ctx context.Context, id credit.RegionID) (credit.RegionVote, error) {
	var out credit.RegionVote
	err := o.c.call(ctx, "RetireRegion", &out, string(id))
	return out, err
}

// RegionProposals implements network.Governance.
func (o ledgerOps) RegionProposals(ctx context.Context) ([]credit.RegionProposal, error) {
	var out []credit.RegionProposal
	err := o.c.call(ctx, "GetRegionProposals", &out)
	return out, err
}

// Banks implements network.Membership.
func (o ledgerOps) Banks(ctx context.Context) ([]credit.BankMember, error) {
	var out []credit.BankMember
	err := o.c.call(ctx, "GetBanks", &out)
	return out, err
}

// Bank implements network.Membership.
func (o ledgerOps) Bank(ctx context.Context, id credit.BankID) (credit.BankMember, error) {
	var out credit.BankMember
	err := o.c.call(ctx, "GetBank", &out, string(id))
	return out, err
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
	var out credit.ConsentCommitment
	err := o.c.call(ctx, "RevokeConsent", &out, id)
	return out, err
}

// Consent implements network.Consents.
func (o ledgerOps) Consent(ctx context.Context, id string) (credit.ConsentCommitment, error) {
	var out credit.ConsentCommitment
	err := o.c.call(ctx, "GetConsent", &out, id)
	return out, err
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
	var out credit.IdentityAuthority
	err := o.c.call(ctx, "RetireAuthority", &out, id)
	return out, err
}

// Authorities implements network.Authorities.
func (o ledgerOps) Authorities(ctx context.Context) ([]credit.IdentityAuthority, error) {
	var out []credit.IdentityAuthority
	err := o.c.call(ctx, "GetAuthorities", &out)
	return out, err
}

// RevokeCertificate implements network.Authorities.
func (o ledgerOps) RevokeCertificate(ctx context.Context, r credit.CertRevocation) (credit.CertRevocation, error) {
	var out credit.CertRevocation
	err := o.c.call(ctx, "RevokeCertificate", &out, marshal(r))
	return out, err
}

// Revocations implements network.Authorities.
func (o ledgerOps) Revocations(ctx context.Context) ([]credit.CertRevocation, error) {
	var out []credit.CertRevocation
	err := o.c.call(ctx, "GetRevocations", &out)
	return out, err
}

// AnchorCheckpoint implements network.Checkpoints. A region's first
// checkpoint has no proof: the contract takes "" for it.
func (o ledgerOps) AnchorCheckpoint(ctx context.Context, cp credit.Checkpoint, proof [][]byte) (credit.AnchoredCheckpoint, error) {
	p := ""
	if len(proof) > 0 {
		p = marshal(proof)
	}
	var out credit.AnchoredCheckpoint
	err := o.c.call(ctx, "AnchorCheckpoint", &out, marshal(cp), p)
	return out, err
}

// LatestCheckpoint implements network.Checkpoints.
func (o ledgerOps) LatestCheckpoint(ctx context.Context, region credit.RegionID) (credit.AnchoredCheckpoint, error) {
	var out credit.AnchoredCheckpoint
	err := o.c.call(ctx, "GetLatestCheckpoint", &out, string(region))
	return out, err
}

// CheckpointHistory implements network.Checkpoints.
func (o ledgerOps) CheckpointHistory(ctx context.Context, region credit.RegionID) ([]credit.AnchoredCheckpoint, error) {
	var out []credit.AnchoredCheckpoint
	err := o.c.call(ctx, "GetCheckpointHistory", &out, string(region))
	return out, err
}
