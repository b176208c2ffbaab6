package embedded

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"time"

	"github.com/prdcredit/ccnode/chaincode"
	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// Client is one identity's connection to a Server. It implements
// network.Ledger.
type Client struct {
	s   *Server
	msp string
	key ed25519.PrivateKey
}

var _ network.Ledger = (*Client)(nil)

// Client returns a ledger client acting as mspID, signing with key. The
// identity must have been registered with AddIdentity.
func (s *Server) Client(mspID string, key ed25519.PrivateKey) *Client {
	return &Client{s: s, msp: mspID, key: key}
}

// Identity is the MSP id the client acts as.
func (c *Client) Identity() string { return c.msp }

// Close releases nothing: the Server is shared and closed by its owner.
func (c *Client) Close() error { return nil }

func (c *Client) proposal(fn string, args ...string) (credit.LedgerTx, error) {
	tx := credit.LedgerTx{Caller: c.msp, Function: fn, Args: args, Nonce: newNonce(c.s.now())}
	sig, err := credit.SignLedgerTx(c.key, tx)
	if err != nil {
		return tx, &network.Error{Op: fn, Kind: network.ErrInvalid, Msg: err.Error()}
	}
	tx.Sig = sig
	return tx, nil
}

// mapErr turns a contract refusal into the network package's typed error.
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var ne *network.Error
	if errors.As(err, &ne) {
		return err
	}
	kind := network.ErrUnavailable
	switch chaincode.CodeOf(err) {
	case chaincode.CodeNotFound:
		kind = network.ErrNotFound
	case chaincode.CodeDenied:
		kind = network.ErrDenied
	case chaincode.CodeConflict:
		kind = network.ErrConflict
	case chaincode.CodeInvalid:
		kind = network.ErrInvalid
	}
	return &network.Error{Op: op, Kind: kind, Msg: err.Error()}
}

// call runs the contract function fn through the Server's one dispatch,
// signed as this client, and returns the contract's own result.
func (c *Client) call(ctx context.Context, fn string, args ...string) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, &network.Error{Op: fn, Kind: network.ErrUnavailable, Msg: err.Error()}
	}
	tx, err := c.proposal(fn, args...)
	if err != nil {
		return nil, err
	}
	out, err := c.s.run(tx)
	return out, mapErr(fn, err)
}

// as is call's result as the type the contract function returns.
func as[T any](v any, err error) (T, error) {
	out, _ := v.(T)
	return out, err
}

// done is call's error, for functions that return nothing else.
func done(_ any, err error) error { return err }

func marshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Bootstrap implements network.Membership.
func (c *Client) Bootstrap(ctx context.Context, regions []credit.RegionMember, banks []credit.BankMember) error {
	if banks == nil {
		banks = []credit.BankMember{}
	}
	return done(c.call(ctx, "Bootstrap", marshal(regions), marshal(banks)))
}

// Regions implements network.Membership.
func (c *Client) Regions(ctx context.Context) ([]credit.RegionMember, error) {
	return as[[]credit.RegionMember](c.call(ctx, "GetRegions"))
}

// Region implements network.Membership.
func (c *Client) Region(ctx context.Context, id credit.RegionID) (credit.RegionMember, error) {
	return as[credit.RegionMember](c.call(ctx, "GetRegion", string(id)))
}

// UpdateRegion implements network.Membership.
func (c *Client) UpdateRegion(ctx context.Context, r credit.RegionMember) error {
	return done(c.call(ctx, "UpdateRegion", marshal(r)))
}

// ProposeRegion implements network.Governance.
func (c *Client) ProposeRegion(ctx context.Context, r credit.RegionMember) (credit.RegionProposal, error) {
	return as[credit.RegionProposal](c.call(ctx, "ProposeRegion", marshal(r)))
}

// ApproveRegion implements network.Governance.
func (c *Client) ApproveRegion(ctx context.Context, id credit.RegionID) (credit.RegionVote, error) {
	return as[credit.RegionVote](c.call(ctx, "ApproveRegion", string(id)))
}

// RetireRegion implements network.Governance.
func (c *Client) RetireRegion(ctx context.Context, id credit.RegionID) (credit.RegionVote, error) {
	return as[credit.RegionVote](c.call(ctx, "RetireRegion", string(id)))
}

// RegionProposals implements network.Governance.
func (c *Client) RegionProposals(ctx context.Context) ([]credit.RegionProposal, error) {
	return as[[]credit.RegionProposal](c.call(ctx, "GetRegionProposals"))
}

// Banks implements network.Membership.
func (c *Client) Banks(ctx context.Context) ([]credit.BankMember, error) {
	return as[[]credit.BankMember](c.call(ctx, "GetBanks"))
}

// Bank implements network.Membership.
func (c *Client) Bank(ctx context.Context, id credit.BankID) (credit.BankMember, error) {
	return as[credit.BankMember](c.call(ctx, "GetBank", string(id)))
}

// RegisterBank implements network.Membership.
func (c *Client) RegisterBank(ctx context.Context, b credit.BankMember) error {
	return done(c.call(ctx, "RegisterBank", marshal(b)))
}

// RetireBank implements network.Membership.
func (c *Client) RetireBank(ctx context.Context, id credit.BankID) error {
	return done(c.call(ctx, "RetireBank", string(id)))
}

// RecordConsent implements network.Consents.
func (c *Client) RecordConsent(ctx context.Context, cc credit.ConsentCommitment) error {
	return done(c.call(ctx, "RecordConsent", marshal(cc)))
}

// RevokeConsent implements network.Consents.
func (c *Client) RevokeConsent(ctx context.Context, id string) (credit.ConsentCommitment, error) {
	return as[credit.ConsentCommitment](c.call(ctx, "RevokeConsent", id))
}

// Consent implements network.Consents.
func (c *Client) Consent(ctx context.Context, id string) (credit.ConsentCommitment, error) {
	return as[credit.ConsentCommitment](c.call(ctx, "GetConsent", id))
}

// ConsentAt implements network.Consents.
func (c *Client) ConsentAt(ctx context.Context, id string, at time.Time) (credit.ConsentCommitment, credit.ConsentStatus, error) {
	out, err := as[chaincode.ConsentAt](c.call(ctx, "GetConsentAt", id, at.UTC().Format(time.RFC3339Nano)))
	return out.Commitment, out.Status, err
}

// RegisterAuthority implements network.Authorities.
func (c *Client) RegisterAuthority(ctx context.Context, a credit.IdentityAuthority) error {
	return done(c.call(ctx, "RegisterAuthority", marshal(a)))
}

// RetireAuthority implements network.Authorities.
func (c *Client) RetireAuthority(ctx context.Context, id string) (credit.IdentityAuthority, error) {
	return as[credit.IdentityAuthority](c.call(ctx, "RetireAuthority", id))
}

// Authorities implements network.Authorities.
func (c *Client) Authorities(ctx context.Context) ([]credit.IdentityAuthority, error) {
	return as[[]credit.IdentityAuthority](c.call(ctx, "GetAuthorities"))
}

// RevokeCertificate implements network.Authorities.
func (c *Client) RevokeCertificate(ctx context.Context, r credit.CertRevocation) (credit.CertRevocation, error) {
	return as[credit.CertRevocation](c.call(ctx, "RevokeCertificate", marshal(r)))
}

// Revocations implements network.Authorities.
func (c *Client) Revocations(ctx context.Context) ([]credit.CertRevocation, error) {
	return as[[]credit.CertRevocation](c.call(ctx, "GetRevocations"))
}

// AnchorCheckpoint implements network.Checkpoints.
func (c *Client) AnchorCheckpoint(ctx context.Context, cp credit.Checkpoint, proof [][]byte) (credit.AnchoredCheckpoint, error) {
	p := ""
	if len(proof) > 0 {
		p = marshal(proof)
	}
	return as[credit.AnchoredCheckpoint](c.call(ctx, "AnchorCheckpoint", marshal(cp), p))
}

// LatestCheckpoint implements network.Checkpoints.
func (c *Client) LatestCheckpoint(ctx context.Context, region credit.RegionID) (credit.AnchoredCheckpoint, error) {
	return as[credit.AnchoredCheckpoint](c.call(ctx, "GetLatestCheckpoint", string(region)))
}

// CheckpointHistory implements network.Checkpoints.
func (c *Client) CheckpointHistory(ctx context.Context, region credit.RegionID) ([]credit.AnchoredCheckpoint, error) {
	return as[[]credit.AnchoredCheckpoint](c.call(ctx, "GetCheckpointHistory", string(region)))
}

// Subscribe implements network.Events.
func (c *Client) Subscribe(ctx context.Context, from network.Position) (<-chan network.Event, error) {
	return c.s.subscribe(ctx, from)
}
