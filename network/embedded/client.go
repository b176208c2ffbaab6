package embedded

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"reflect"

	"github.com/prdcredit/ccnode/chaincode"
	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// Client is one identity's connection to a Server. It implements
// network.Ledger.
type Client struct {
	ledgerOps
	s   *Server
	msp string
	key ed25519.PrivateKey
}

var _ network.Ledger = (*Client)(nil)

// Client returns a ledger client acting as mspID, signing with key. The
// identity must have been registered with AddIdentity.
func (s *Server) Client(mspID string, key ed25519.PrivateKey) *Client {
	c := &Client{s: s, msp: mspID, key: key}
	c.ledgerOps = ledgerOps{c}
	return c
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
// signed as this client, and stores the contract's own result in out.
func (c *Client) call(ctx context.Context, fn string, out any, args ...string) error {
	if err := ctx.Err(); err != nil {
		return &network.Error{Op: fn, Kind: network.ErrUnavailable, Msg: err.Error()}
	}
	tx, err := c.proposal(fn, args...)
	if err != nil {
		return err
	}
	v, err := c.s.run(tx)
	if out != nil && v != nil {
		// The table's result is the contract method's own type, which
		// out points to: no encoding in process.
		reflect.ValueOf(out).Elem().Set(reflect.ValueOf(v))
	}
	return mapErr(fn, err)
}

func marshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Subscribe implements network.Events.
func (c *Client) Subscribe(ctx context.Context, from network.Position) (<-chan network.Event, error) {
	return c.s.subscribe(ctx, from)
}
