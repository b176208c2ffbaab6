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

func (c *Client) submit(ctx context.Context, fn string, run func(*txCtx) error, args ...string) error {
	if err := ctx.Err(); err != nil {
		return &network.Error{Op: fn, Kind: network.ErrUnavailable, Msg: err.Error()}
	}
	tx, err := c.proposal(fn, args...)
	if err != nil {
		return err
	}
	_, err = c.s.submit(tx, run)
	return mapErr(fn, err)
}

func (c *Client) evaluate(ctx context.Context, fn string, run func(*txCtx) error, args ...string) error {
	if err := ctx.Err(); err != nil {
		return &network.Error{Op: fn, Kind: network.ErrUnavailable, Msg: err.Error()}
	}
	tx, err := c.proposal(fn, args...)
	if err != nil {
		return err
	}
	return mapErr(fn, c.s.evaluate(tx, run))
}

func marshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Bootstrap implements network.Membership.
func (c *Client) Bootstrap(ctx context.Context, regions []credit.RegionMember, banks []credit.BankMember) error {
	if banks == nil {
		banks = []credit.BankMember{}
	}
	r, b := marshal(regions), marshal(banks)
	return c.submit(ctx, "Bootstrap", func(t *txCtx) error { return chaincode.Contract{}.Bootstrap(t, r, b) }, r, b)
}

// Regions implements network.Membership.
func (c *Client) Regions(ctx context.Context) (out []credit.RegionMember, err error) {
	err = c.evaluate(ctx, "GetRegions", func(t *txCtx) (e error) { out, e = chaincode.Contract{}.GetRegions(t); return })
	return out, err
}

// Region implements network.Membership.
func (c *Client) Region(ctx context.Context, id credit.RegionID) (out credit.RegionMember, err error) {
	err = c.evaluate(ctx, "GetRegion", func(t *txCtx) (e error) { out, e = chaincode.Contract{}.GetRegion(t, string(id)); return }, string(id))
	return out, err
}

// UpdateRegion implements network.Membership.
func (c *Client) UpdateRegion(ctx context.Context, r credit.RegionMember) error {
	a := marshal(r)
	return c.submit(ctx, "UpdateRegion", func(t *txCtx) error { return chaincode.Contract{}.UpdateRegion(t, a) }, a)
}

// ProposeRegion implements network.Governance.
func (c *Client) ProposeRegion(ctx context.Context, r credit.RegionMember) (out credit.RegionProposal, err error) {
	a := marshal(r)
	err = c.submit(ctx, "ProposeRegion", func(t *txCtx) (e error) { out, e = chaincode.Contract{}.ProposeRegion(t, a); return }, a)
	return out, err
}

// ApproveRegion implements network.Governance.
func (c *Client) ApproveRegion(ctx context.Context, id credit.RegionID) (out credit.RegionVote, err error) {
	err = c.submit(ctx, "ApproveRegion", func(t *txCtx) (e error) { out, e = chaincode.Contract{}.ApproveRegion(t, string(id)); return }, string(id))
	return out, err
}

// RetireRegion implements network.Governance.
func (c *Client) RetireRegion(ctx context.Context, id credit.RegionID) (out credit.RegionVote, err error) {
	err = c.submit(ctx, "RetireRegion", func(t *txCtx) (e error) { out, e = chaincode.Contract{}.RetireRegion(t, string(id)); return }, string(id))
	return out, err
}

// RegionProposals implements network.Governance.
func (c *Client) RegionProposals(ctx context.Context) (out []credit.RegionProposal, err error) {
	err = c.evaluate(ctx, "GetRegionProposals", func(t *txCtx) (e error) { out, e = chaincode.Contract{}.GetRegionProposals(t); return })
	return out, err
}

// Banks implements network.Membership.
func (c *Client) Banks(ctx context.Context) (out []credit.BankMember, err error) {
	err = c.evaluate(ctx, "GetBanks", func(t *txCtx) (e error) { out, e = chaincode.Contract{}.GetBanks(t); return })
	return out, err
}

// Bank implements network.Membership.
func (c *Client) Bank(ctx context.Context, id credit.BankID) (out credit.BankMember, err error) {
	err = c.evaluate(ctx, "GetBank", func(t *txCtx) (e error) { out, e = chaincode.Contract{}.GetBank(t, string(id)); return }, string(id))
	return out, err
}

// RegisterBank implements network.Membership.
func (c *Client) RegisterBank(ctx context.Context, b credit.BankMember) error {
	a := marshal(b)
	return c.submit(ctx, "RegisterBank", func(t *txCtx) error { return chaincode.Contract{}.RegisterBank(t, a) }, a)
}

// RetireBank implements network.Membership.
func (c *Client) RetireBank(ctx context.Context, id credit.BankID) error {
	return c.submit(ctx, "RetireBank", func(t *txCtx) error { return chaincode.Contract{}.RetireBank(t, string(id)) }, string(id))
}

// RecordConsent implements network.Consents.
func (c *Client) RecordConsent(ctx context.Context, cc credit.ConsentCommitment) error {
	a := marshal(cc)
	return c.submit(ctx, "RecordConsent", func(t *txCtx) error { return chaincode.Contract{}.RecordConsent(t, a) }, a)
}

// RevokeConsent implements network.Consents.
func (c *Client) RevokeConsent(ctx context.Context, id string) (out credit.ConsentCommitment, err error) {
	err = c.submit(ctx, "RevokeConsent", func(t *txCtx) (e error) { out, e = chaincode.Contract{}.RevokeConsent(t, id); return }, id)
	return out, err
}

// Consent implements network.Consents.
func (c *Client) Consent(ctx context.Context, id string) (out credit.ConsentCommitment, err error) {
	err = c.evaluate(ctx, "GetConsent", func(t *txCtx) (e error) { out, e = chaincode.Contract{}.GetConsent(t, id); return }, id)
	return out, err
}

// ConsentAt implements network.Consents.
func (c *Client) ConsentAt(ctx context.Context, id string, at time.Time) (credit.ConsentCommitment, credit.ConsentStatus, error) {
	var out chaincode.ConsentAt
	ts := at.UTC().Format(time.RFC3339Nano)
	err := c.evaluate(ctx, "GetConsentAt", func(t *txCtx) (e error) { out, e = chaincode.Contract{}.GetConsentAt(t, id, ts); return }, id, ts)
	return out.Commitment, out.Status, err
}

// RegisterAuthority implements network.Authorities.
func (c *Client) RegisterAuthority(ctx context.Context, a credit.IdentityAuthority) error {
	arg := marshal(a)
	return c.submit(ctx, "RegisterAuthority", func(t *txCtx) error { return chaincode.Contract{}.RegisterAuthority(t, arg) }, arg)
}

// RetireAuthority implements network.Authorities.
func (c *Client) RetireAuthority(ctx context.Context, id string) (out credit.IdentityAuthority, err error) {
	err = c.submit(ctx, "RetireAuthority", func(t *txCtx) (e error) { out, e = chaincode.Contract{}.RetireAuthority(t, id); return }, id)
	return out, err
}

// Authorities implements network.Authorities.
func (c *Client) Authorities(ctx context.Context) (out []credit.IdentityAuthority, err error) {
	err = c.evaluate(ctx, "GetAuthorities", func(t *txCtx) (e error) { out, e = chaincode.Contract{}.GetAuthorities(t); return })
	return out, err
}

// RevokeCertificate implements network.Authorities.
func (c *Client) RevokeCertificate(ctx context.Context, r credit.CertRevocation) (out credit.CertRevocation, err error) {
	arg := marshal(r)
	err = c.submit(ctx, "RevokeCertificate", func(t *txCtx) (e error) { out, e = chaincode.Contract{}.RevokeCertificate(t, arg); return }, arg)
	return out, err
}

// Revocations implements network.Authorities.
func (c *Client) Revocations(ctx context.Context) (out []credit.CertRevocation, err error) {
	err = c.evaluate(ctx, "GetRevocations", func(t *txCtx) (e error) { out, e = chaincode.Contract{}.GetRevocations(t); return })
	return out, err
}

// AnchorCheckpoint implements network.Checkpoints.
func (c *Client) AnchorCheckpoint(ctx context.Context, cp credit.Checkpoint, proof [][]byte) (out credit.AnchoredCheckpoint, err error) {
	a, p := marshal(cp), ""
	if len(proof) > 0 {
		p = marshal(proof)
	}
	err = c.submit(ctx, "AnchorCheckpoint", func(t *txCtx) (e error) { out, e = chaincode.Contract{}.AnchorCheckpoint(t, a, p); return }, a, p)
	return out, err
}

// LatestCheckpoint implements network.Checkpoints.
func (c *Client) LatestCheckpoint(ctx context.Context, region credit.RegionID) (out credit.AnchoredCheckpoint, err error) {
	err = c.evaluate(ctx, "GetLatestCheckpoint", func(t *txCtx) (e error) {
		out, e = chaincode.Contract{}.GetLatestCheckpoint(t, string(region))
		return
	}, string(region))
	return out, err
}

// CheckpointHistory implements network.Checkpoints.
func (c *Client) CheckpointHistory(ctx context.Context, region credit.RegionID) (out []credit.AnchoredCheckpoint, err error) {
	err = c.evaluate(ctx, "GetCheckpointHistory", func(t *txCtx) (e error) {
		out, e = chaincode.Contract{}.GetCheckpointHistory(t, string(region))
		return
	}, string(region))
	return out, err
}

// Subscribe implements network.Events.
func (c *Client) Subscribe(ctx context.Context, from network.Position) (<-chan network.Event, error) {
	return c.s.subscribe(ctx, from)
}
