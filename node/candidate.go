package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// A region with no ledger record yet runs as a candidate: its bank and
// admin APIs are up so that its operator can propose it (`ccnode region
// propose`), but it answers no bank and no region, anchors nothing and
// publishes nothing. Once the active regions' vote makes its record active
// it becomes a member in place: it starts its ledger view (which admits
// the other regions' peers), publishes its addresses and anchors.

// candidatePoll is how often a candidate asks the ledger for its record.
// A backend may refuse the candidate every read until it is admitted (the
// embedded ledger registers its identity at acceptance), so the candidate
// asks instead of following events.
const candidatePoll = time.Second

// candidacy is the node's state while it waits for admission.
type candidacy struct {
	waiting atomic.Bool
	// why is the ledger's last word on the region's record.
	why    atomic.Pointer[string]
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// viewUp: admission started the view, which the stop must close.
	viewUp atomic.Bool
}

// isCandidate reads this region's ledger record: none (or a ledger that
// knows not yet this node's identity) makes the node a candidate.
func (n *Node) isCandidate(ctx context.Context) (bool, error) {
	_, err := n.deps.Ledger.Region(ctx, n.cfg.Region)
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, network.ErrNotFound), errors.Is(err, network.ErrDenied):
		n.cand.why.Store(new(err.Error()))
		return true, nil
	default:
		return false, fmt.Errorf("reading region %s's ledger record: %w", n.cfg.Region, err)
	}
}

// candidateRefusal is why a candidate answers nothing, nil for a member.
func (n *Node) candidateRefusal() error {
	if !n.cand.waiting.Load() {
		return nil
	}
	return credit.Refuse(credit.CodeNotMember,
		"region %s is a candidate awaiting approval: the ledger has no active record of it yet; "+
			"propose it with 'ccnode region propose' and have a majority of the active regions approve it ('ccnode region approve'); "+
			"it answers nothing until then (ledger: %s)", n.cfg.Region, *n.cand.why.Load())
}

// startCandidate takes the place of the ledger check and view for a
// candidate; awaitAdmission starts them once the region is admitted.
func (n *Node) startCandidate(context.Context) (func() error, error) {
	n.log.Warn("region is not on the ledger: starting as a candidate awaiting approval; it answers no query and anchors nothing until admitted. "+
		"Propose it with 'ccnode region propose --admin ADMIN-URL --operator-token-file FILE --descriptor DATA_DIR/member.json'",
		"ledger", *n.cand.why.Load())
	return func() error {
		if n.cand.cancel != nil {
			n.cand.cancel()
		}
		n.cand.wg.Wait()
		if n.cand.viewUp.Load() {
			return n.view.Close()
		}
		return nil
	}, nil
}

// awaitAdmission polls the ledger until this region's record is active,
// then makes the node a member.
func (n *Node) awaitAdmission() {
	ctx, cancel := context.WithCancel(context.Background())
	n.cand.cancel = cancel
	n.cand.wg.Go(func() {
		tick := time.NewTicker(candidatePoll)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			m, err := n.deps.Ledger.Region(ctx, n.cfg.Region)
			if err != nil {
				if why := err.Error(); why != *n.cand.why.Load() {
					n.cand.why.Store(&why)
					n.log.Info("candidate: still awaiting approval", "ledger", why)
				}
				continue
			}
			if m.Status != credit.StatusActive {
				continue
			}
			n.log.Info("candidate: the ledger records the region as active; joining the consortium", "since", m.UpdatedAt)
			if err := n.admitted(ctx); err != nil {
				if ctx.Err() == nil {
					n.log.Error("candidate: joining failed; retrying", "err", err)
				}
				continue
			}
			return
		}
	})
}

// admitted does at admission what a member's start does: the receipt log
// against the ledger, the ledger view (and with it the p2p members), the
// publication of its addresses; then the node answers and anchors.
func (n *Node) admitted(ctx context.Context) error {
	if _, err := n.startLedgerCheck(ctx); err != nil {
		return err
	}
	if !n.cand.viewUp.Load() {
		if err := n.view.Start(ctx); err != nil {
			return err
		}
		n.cand.viewUp.Store(true)
	}
	if err := publishSelf(ctx, n.deps.Ledger, n.cfg, n.key.Public().(ed25519.PublicKey), n.hostAddrs(), n.log); err != nil {
		return err
	}
	// The log check and the view are written before this store: a reader
	// that sees a member sees them.
	n.cand.waiting.Store(false)
	n.log.Info("candidate admitted: the node is a member region; it answers, anchors and admits its peers")
	select {
	case n.kick <- struct{}{}:
	default:
	}
	return nil
}
