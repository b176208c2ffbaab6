package fabric

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// The contract's transaction names (the fixed surface shared with package
// chaincode). Arguments and results are strings or JSON of credit types.
const (
	txBootstrap           = "Bootstrap"
	txGetRegions          = "GetRegions"
	txGetRegion           = "GetRegion"
	txUpdateRegion        = "UpdateRegion"
	txGetBanks            = "GetBanks"
	txGetBank             = "GetBank"
	txRegisterBank        = "RegisterBank"
	txRetireBank          = "RetireBank"
	txRecordConsent       = "RecordConsent"
	txRevokeConsent       = "RevokeConsent"
	txGetConsent          = "GetConsent"
	txGetConsentAt        = "GetConsentAt"
	txAnchorCheckpoint    = "AnchorCheckpoint"
	txGetLatestCheckpoint = "GetLatestCheckpoint"
	txGetCheckpointHist   = "GetCheckpointHistory"
	txRegisterAuthority   = "RegisterAuthority"
	txRetireAuthority     = "RetireAuthority"
	txGetAuthorities      = "GetAuthorities"
	txRevokeCertificate   = "RevokeCertificate"
	txGetRevocations      = "GetRevocations"
	txProposeRegion       = "ProposeRegion"
	txApproveRegion       = "ApproveRegion"
	txRetireRegion        = "RetireRegion"
	txGetRegionProposals  = "GetRegionProposals"
)

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
	r, err := jsonArg(txBootstrap, regions)
	if err != nil {
		return err
	}
	b, err := jsonArg(txBootstrap, banks)
	if err != nil {
		return err
	}
	_, err = l.submit(ctx, txBootstrap, r, b)
	return err
}

// Regions lists every region member.
func (l *Ledger) Regions(ctx context.Context) ([]credit.RegionMember, error) {
	res, err := l.evaluate(ctx, txGetRegions)
	if err != nil {
		return nil, err
	}
	return decode[[]credit.RegionMember](txGetRegions, res)
}

// Region reads one region member.
func (l *Ledger) Region(ctx context.Context, id credit.RegionID) (credit.RegionMember, error) {
	res, err := l.evaluate(ctx, txGetRegion, string(id))
	if err != nil {
		return credit.RegionMember{}, err
	}
	return decode[credit.RegionMember](txGetRegion, res)
}

// UpdateRegion changes the caller's own region record.
func (l *Ledger) UpdateRegion(ctx context.Context, r credit.RegionMember) error {
	a, err := jsonArg(txUpdateRegion, r)
	if err != nil {
		return err
	}
	_, err = l.submit(ctx, txUpdateRegion, a)
	return err
}

// ProposeRegion publishes the caller's own candidate descriptor.
func (l *Ledger) ProposeRegion(ctx context.Context, r credit.RegionMember) (credit.RegionProposal, error) {
	a, err := jsonArg(txProposeRegion, r)
	if err != nil {
		return credit.RegionProposal{}, err
	}
	res, err := l.submit(ctx, txProposeRegion, a)
	if err != nil {
		return credit.RegionProposal{}, err
	}
	return decode[credit.RegionProposal](txProposeRegion, res)
}

// ApproveRegion is the caller region's vote for candidate id.
func (l *Ledger) ApproveRegion(ctx context.Context, id credit.RegionID) (credit.RegionVote, error) {
	res, err := l.submit(ctx, txApproveRegion, string(id))
	if err != nil {
		return credit.RegionVote{}, err
	}
	return decode[credit.RegionVote](txApproveRegion, res)
}

// RetireRegion is the caller region's vote to retire id.
func (l *Ledger) RetireRegion(ctx context.Context, id credit.RegionID) (credit.RegionVote, error) {
	res, err := l.submit(ctx, txRetireRegion, string(id))
	if err != nil {
		return credit.RegionVote{}, err
	}
	return decode[credit.RegionVote](txRetireRegion, res)
}

// RegionProposals lists every join and retirement proposal.
func (l *Ledger) RegionProposals(ctx context.Context) ([]credit.RegionProposal, error) {
	res, err := l.evaluate(ctx, txGetRegionProposals)
	if err != nil {
		return nil, err
	}
	return decode[[]credit.RegionProposal](txGetRegionProposals, res)
}

// Banks lists every bank member.
func (l *Ledger) Banks(ctx context.Context) ([]credit.BankMember, error) {
	res, err := l.evaluate(ctx, txGetBanks)
	if err != nil {
		return nil, err
	}
	return decode[[]credit.BankMember](txGetBanks, res)
}

// Bank reads one bank member.
func (l *Ledger) Bank(ctx context.Context, id credit.BankID) (credit.BankMember, error) {
	res, err := l.evaluate(ctx, txGetBank, string(id))
	if err != nil {
		return credit.BankMember{}, err
	}
	return decode[credit.BankMember](txGetBank, res)
}

// RegisterBank adds or updates a bank of the caller's region.
func (l *Ledger) RegisterBank(ctx context.Context, b credit.BankMember) error {
	a, err := jsonArg(txRegisterBank, b)
	if err != nil {
		return err
	}
	_, err = l.submit(ctx, txRegisterBank, a)
	return err
}

// RetireBank retires a bank of the caller's region.
func (l *Ledger) RetireBank(ctx context.Context, id credit.BankID) error {
	_, err := l.submit(ctx, txRetireBank, string(id))
	return err
}

// RecordConsent stores a commitment issued by the caller's region.
func (l *Ledger) RecordConsent(ctx context.Context, c credit.ConsentCommitment) error {
	a, err := jsonArg(txRecordConsent, c)
	if err != nil {
		return err
	}
	_, err = l.submit(ctx, txRecordConsent, a)
	return err
}

// RevokeConsent revokes at the transaction's time and returns the
// commitment as revoked.
func (l *Ledger) RevokeConsent(ctx context.Context, id string) (credit.ConsentCommitment, error) {
	res, err := l.submit(ctx, txRevokeConsent, id)
	if err != nil {
		return credit.ConsentCommitment{}, err
	}
	return decode[credit.ConsentCommitment](txRevokeConsent, res)
}

// Consent reads a commitment as it stands.
func (l *Ledger) Consent(ctx context.Context, id string) (credit.ConsentCommitment, error) {
	res, err := l.evaluate(ctx, txGetConsent, id)
	if err != nil {
		return credit.ConsentCommitment{}, err
	}
	return decode[credit.ConsentCommitment](txGetConsent, res)
}

// consentAt is GetConsentAt's result.
type consentAt struct {
	Commitment credit.ConsentCommitment `json:"commitment"`
	Status     credit.ConsentStatus     `json:"status"`
}

// ConsentAt returns the commitment as the ledger held it at t, with its
// status at t, from the key's history.
func (l *Ledger) ConsentAt(ctx context.Context, id string, t time.Time) (credit.ConsentCommitment, credit.ConsentStatus, error) {
	res, err := l.evaluate(ctx, txGetConsentAt, id, t.UTC().Format(time.RFC3339Nano))
	if err != nil {
		return credit.ConsentCommitment{}, "", err
	}
	v, err := decode[consentAt](txGetConsentAt, res)
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
	c, err := jsonArg(txAnchorCheckpoint, cp)
	if err != nil {
		return credit.AnchoredCheckpoint{}, err
	}
	p, err := jsonArg(txAnchorCheckpoint, proof)
	if err != nil {
		return credit.AnchoredCheckpoint{}, err
	}
	res, err := l.submit(ctx, txAnchorCheckpoint, c, p)
	if err != nil {
		return credit.AnchoredCheckpoint{}, err
	}
	return decode[credit.AnchoredCheckpoint](txAnchorCheckpoint, res)
}

// LatestCheckpoint reads a region's latest anchored checkpoint.
func (l *Ledger) LatestCheckpoint(ctx context.Context, region credit.RegionID) (credit.AnchoredCheckpoint, error) {
	res, err := l.evaluate(ctx, txGetLatestCheckpoint, string(region))
	if err != nil {
		return credit.AnchoredCheckpoint{}, err
	}
	return decode[credit.AnchoredCheckpoint](txGetLatestCheckpoint, res)
}

// CheckpointHistory lists a region's anchored checkpoints, oldest first.
func (l *Ledger) CheckpointHistory(ctx context.Context, region credit.RegionID) ([]credit.AnchoredCheckpoint, error) {
	res, err := l.evaluate(ctx, txGetCheckpointHist, string(region))
	if err != nil {
		return nil, err
	}
	return decode[[]credit.AnchoredCheckpoint](txGetCheckpointHist, res)
}

// RegisterAuthority registers an identity authority for divisions of the
// caller's region; the identical authority again is a no-op.
func (l *Ledger) RegisterAuthority(ctx context.Context, a credit.IdentityAuthority) error {
	arg, err := jsonArg(txRegisterAuthority, a)
	if err != nil {
		return err
	}
	_, err = l.submit(ctx, txRegisterAuthority, arg)
	return err
}

// RetireAuthority retires an authority of the caller's region and returns
// it as retired (the first retirement, if it already was).
func (l *Ledger) RetireAuthority(ctx context.Context, id string) (credit.IdentityAuthority, error) {
	res, err := l.submit(ctx, txRetireAuthority, id)
	if err != nil {
		return credit.IdentityAuthority{}, err
	}
	return decode[credit.IdentityAuthority](txRetireAuthority, res)
}

// Authorities lists every authority ever registered, retired included.
func (l *Ledger) Authorities(ctx context.Context) ([]credit.IdentityAuthority, error) {
	res, err := l.evaluate(ctx, txGetAuthorities)
	if err != nil {
		return nil, err
	}
	return decode[[]credit.IdentityAuthority](txGetAuthorities, res)
}

// RevokeCertificate records a revoked enterprise certificate under one of
// the caller region's authorities and returns the revocation (the first,
// if it already was).
func (l *Ledger) RevokeCertificate(ctx context.Context, r credit.CertRevocation) (credit.CertRevocation, error) {
	arg, err := jsonArg(txRevokeCertificate, r)
	if err != nil {
		return credit.CertRevocation{}, err
	}
	res, err := l.submit(ctx, txRevokeCertificate, arg)
	if err != nil {
		return credit.CertRevocation{}, err
	}
	return decode[credit.CertRevocation](txRevokeCertificate, res)
}

// Revocations lists every revoked enterprise certificate.
func (l *Ledger) Revocations(ctx context.Context) ([]credit.CertRevocation, error) {
	res, err := l.evaluate(ctx, txGetRevocations)
	if err != nil {
		return nil, err
	}
	return decode[[]credit.CertRevocation](txGetRevocations, res)
}
