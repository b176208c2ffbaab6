package fabric

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hyperledger/fabric-gateway/pkg/client"

	"github.com/prdcredit/ccnode/chaincode"
	"github.com/prdcredit/ccnode/network"
)

// checkpoint adapts a network.Position to the gateway's resume point: the
// block to read from and the last transaction already processed in it,
// whose events (and those before it in the block) the peer skips.
type checkpoint network.Position

func (c checkpoint) BlockNumber() uint64   { return c.Block }
func (c checkpoint) TransactionID() string { return c.TxID }

// Subscribe delivers the contract's events after from, in ledger order,
// then new ones as they commit. From the zero Position it reads from the
// channel's first block; from a Position without a TxID, from the block
// after it. The channel closes when ctx ends, the Ledger
// closes, or the gateway stream fails; the caller resubscribes from the
// last Position it processed.
func (l *Ledger) Subscribe(ctx context.Context, from network.Position) (<-chan network.Event, error) {
	if l.closed() {
		return nil, &network.Error{Op: "Subscribe", Kind: network.ErrUnavailable, Msg: errClosed.Error()}
	}
	var opt client.ChaincodeEventsOption
	switch {
	case from == (network.Position{}):
		// The gateway's default is the next commit, which would miss
		// history; the zero Position means "from the beginning".
		opt = client.WithStartBlock(0)
	case from.TxID == "":
		// A position naming only a block has processed all of it, as on
		// the embedded ledger.
		opt = client.WithStartBlock(from.Block + 1)
	default:
		opt = client.WithCheckpoint(checkpoint(from))
	}
	var (
		sctx   context.Context
		cancel context.CancelFunc
		in     <-chan *client.ChaincodeEvent
		ep     *endpoint
		idx    int
		err    error
	)
	// An unreachable endpoint fails the stream's opening; try the others.
	for range l.eps.list {
		ep, idx = l.use()
		sctx, cancel, in, err = openEvents(ctx, ep, l.cfg.Chaincode, opt)
		if err == nil || !l.outcome(ep, idx, err) {
			break
		}
	}
	if err != nil {
		return nil, mapError("Subscribe", err)
	}
	l.log.Debug("event stream opened", "endpoint", ep.addr)
	out := make(chan network.Event)
	go func() {
		defer close(out)
		defer func() {
			cancel()
			// The gateway's reader goroutine blocks on its send until read;
			// drain it so it sees the cancelled stream and exits.
			for range in {
			}
		}()
		for {
			var ce *client.ChaincodeEvent
			var ok bool
			select {
			case ce, ok = <-in:
				if !ok {
					if ctx.Err() == nil && !l.closed() {
						// A stream ends by itself only when its peer went
						// away: pass that endpoint over on resubscription.
						l.eps.failed(idx)
						l.log.Warn("event stream ended; subscriber should resubscribe", "endpoint", ep.addr)
					}
					return
				}
			case <-sctx.Done():
				return
			case <-l.done:
				return
			}
			evs, err := mapEvents(ce)
			if err != nil {
				// A payload this client cannot read would stop every
				// resubscription at the same place; log it and go on.
				l.log.Error("skipping unreadable chaincode event", "block", ce.BlockNumber, "tx", ce.TransactionID, "name", ce.EventName, "err", err)
				continue
			}
			for _, ev := range evs {
				select {
				case out <- ev:
				case <-sctx.Done():
					return
				case <-l.done:
					return
				}
			}
		}
	}()
	return out, nil
}

// openEvents opens ep's chaincode event stream under a context of its own;
// on error that context is already cancelled.
func openEvents(ctx context.Context, ep *endpoint, chaincode string, opt client.ChaincodeEventsOption) (context.Context, context.CancelFunc, <-chan *client.ChaincodeEvent, error) {
	sctx, cancel := context.WithCancel(ctx)
	in, err := ep.network.ChaincodeEvents(sctx, chaincode, opt)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return sctx, cancel, in, nil
}

// errEvent is wrapped by mapEvent's errors.
var errEvent = errors.New("chaincode event")

// eventPayload is the contract's event payload, plus a transaction time
// the contract may send (Fabric's chaincode events carry none).
type eventPayload struct {
	Time *time.Time `json:"time,omitempty"`
	chaincode.EventPayload
}

// mapEvents turns a chaincode event into network.Events: one per member
// for the bootstrap's event, which lists every member it wrote (Fabric
// keeps one chaincode event per transaction), else mapEvent's one. The
// events of one transaction share its Position.
func mapEvents(ce *client.ChaincodeEvent) ([]network.Event, error) {
	if network.EventKind(ce.EventName) == network.EventMemberChanged {
		var p eventPayload
		if err := json.Unmarshal(ce.Payload, &p); err != nil {
			return nil, fmt.Errorf("%w %s: %w", errEvent, ce.EventName, err)
		}
		if len(p.Regions) > 0 || len(p.Banks) > 0 {
			pos := network.Position{Block: ce.BlockNumber, TxID: ce.TransactionID}
			out := make([]network.Event, 0, len(p.Regions)+len(p.Banks))
			for i := range p.Regions {
				out = append(out, network.Event{Position: pos, Kind: network.EventMemberChanged,
					Time: p.Regions[i].UpdatedAt.UTC(), Region: &p.Regions[i]})
			}
			for i := range p.Banks {
				out = append(out, network.Event{Position: pos, Kind: network.EventMemberChanged,
					Time: p.Banks[i].UpdatedAt.UTC(), Bank: &p.Banks[i]})
			}
			return out, nil
		}
	}
	ev, err := mapEvent(ce)
	if err != nil {
		return nil, err
	}
	return []network.Event{ev}, nil
}

// mapEvent turns a chaincode event into a network.Event. Fabric's chaincode
// events carry no timestamp, so Time is the payload's time if the contract
// sent one, else the transaction time the contract stamped on the record
// (UpdatedAt, RecordedAt, RevokedAt, AnchoredAt, RegisteredAt, RetiredAt).
func mapEvent(ce *client.ChaincodeEvent) (network.Event, error) {
	ev := network.Event{
		Position: network.Position{Block: ce.BlockNumber, TxID: ce.TransactionID},
		Kind:     network.EventKind(ce.EventName),
	}
	var p eventPayload
	if err := json.Unmarshal(ce.Payload, &p); err != nil {
		return ev, fmt.Errorf("%w %s: %w", errEvent, ce.EventName, err)
	}
	var t time.Time
	switch ev.Kind {
	case network.EventMemberChanged:
		switch {
		case p.Region != nil && p.Bank == nil:
			ev.Region, t = p.Region, p.Region.UpdatedAt
		case p.Bank != nil && p.Region == nil:
			ev.Bank, t = p.Bank, p.Bank.UpdatedAt
		default:
			return ev, fmt.Errorf("%w %s: want exactly one of region, bank", errEvent, ce.EventName)
		}
		ev.Proposal = p.Proposal // set when a vote decided a join or retirement
	case network.EventRegionProposed, network.EventRegionApproved:
		if p.Proposal == nil {
			return ev, fmt.Errorf("%w %s: no proposal", errEvent, ce.EventName)
		}
		ev.Proposal, t = p.Proposal, p.Proposal.ProposedAt
		if n := len(p.Proposal.Approvals); n > 0 {
			t = p.Proposal.Approvals[n-1].At
		}
	case network.EventConsentRecorded, network.EventConsentRevoked:
		if p.Consent == nil {
			return ev, fmt.Errorf("%w %s: no consent", errEvent, ce.EventName)
		}
		ev.Consent, t = p.Consent, p.Consent.RecordedAt
		if ev.Kind == network.EventConsentRevoked && p.Consent.RevokedAt != nil {
			t = *p.Consent.RevokedAt
		}
	case network.EventCheckpointAnchored:
		if p.Checkpoint == nil {
			return ev, fmt.Errorf("%w %s: no checkpoint", errEvent, ce.EventName)
		}
		ev.Checkpoint, t = p.Checkpoint, p.Checkpoint.AnchoredAt
	case network.EventAuthorityChanged:
		if p.Authority == nil {
			return ev, fmt.Errorf("%w %s: no authority", errEvent, ce.EventName)
		}
		ev.Authority, t = p.Authority, p.Authority.RegisteredAt
		if p.Authority.RetiredAt != nil {
			t = *p.Authority.RetiredAt
		}
	case network.EventCertRevoked:
		if p.Revocation == nil {
			return ev, fmt.Errorf("%w %s: no revocation", errEvent, ce.EventName)
		}
		ev.Revocation, t = p.Revocation, p.Revocation.RevokedAt
	default:
		return ev, fmt.Errorf("%w: unknown name %q", errEvent, ce.EventName)
	}
	if p.Time != nil {
		t = *p.Time
	}
	ev.Time = t.UTC()
	return ev, nil
}
