package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
	"github.com/prdcredit/ccnode/store/receipts"
)

// ErrForked: the ledger holds a checkpoint of this region that the local
// log does not extend. Anchoring stops; an operator must look.
var ErrForked = errors.New("anchored checkpoint is not a prefix of the local log")

// anchorLoop anchors on the interval or when MaxLeaves receipts are
// waiting, retrying with backoff while the ledger is unavailable. It runs
// beside the query path and never holds anything a query needs.
func (n *Node) anchorLoop(ctx context.Context) {
	tick := time.NewTicker(n.cfg.Anchor.Interval)
	defer tick.Stop()
	backoff := n.cfg.Anchor.RetryMin
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-n.kick:
		}
		for {
			err := n.anchorOnce(ctx)
			if err == nil || ctx.Err() != nil {
				backoff = n.cfg.Anchor.RetryMin
				break
			}
			n.metrics.anchorFails.Inc()
			if errors.Is(err, ErrForked) {
				n.log.Error("anchoring stopped", "err", err)
				return
			}
			n.log.Warn("anchoring failed; retrying", "in", backoff, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, n.cfg.Anchor.RetryMax)
		}
	}
}

// receiptAppended is told of every durable receipt: it wakes the anchoring loop when
// the size threshold is reached.
func (n *Node) receiptAppended() {
	last := n.lastAnchoredSize.Load()
	if n.rlog.Size()-last >= n.cfg.Anchor.MaxLeaves {
		select {
		case n.kick <- struct{}{}:
		default:
		}
	}
}

// AnchorNow runs one anchoring round synchronously: the outbox's pending
// checkpoint if any, else a new one if the log grew.
func (n *Node) AnchorNow(ctx context.Context) error {
	return n.anchorOnce(ctx)
}

func (n *Node) anchorOnce(ctx context.Context) error {
	if n.cand.waiting.Load() {
		return nil // a candidate anchors nothing; admission kicks the loop
	}
	if n.logFork != nil {
		return fmt.Errorf("%w: %w", ErrForked, n.logFork)
	}
	n.anchorMu.Lock()
	defer n.anchorMu.Unlock()
	p, ok, err := n.outbox.Pending()
	if err != nil {
		return err
	}
	if ok && (p.Checkpoint.Note == "" || p.Checkpoint.Verify(n.key.Public().(ed25519.PublicKey)) != nil) {
		// Signed before checkpoints were signed notes, or by the key this
		// node ran on before a rotation (the record now names the new one,
		// so the contract would refuse it for good): sign it again.
		if err := n.outbox.ClearPending(); err != nil {
			return err
		}
		ok = false
	}
	if !ok {
		if p, ok, err = n.prepareCheckpoint(); err != nil || !ok {
			return err
		}
	}
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t0 := time.Now()
	ac, err := n.deps.Ledger.AnchorCheckpoint(actx, p.Checkpoint, p.Proof)
	n.metrics.anchorTx.Observe(time.Since(t0).Seconds())
	if errors.Is(err, network.ErrConflict) || errors.Is(err, network.ErrDenied) {
		// Perhaps the ledger already holds a newer checkpoint of ours
		// (anchored before a crash lost the outbox update): reconcile.
		latest, rerr := n.reconcile(ctx)
		if rerr != nil {
			return fmt.Errorf("anchor at %d: %w (reconcile: %w)", p.Checkpoint.Size, err, rerr)
		}
		if latest < p.Checkpoint.Size && latest != p.FromSize {
			// The pending proof starts from a base that is not the
			// ledger's latest: rebuild it next round.
			if cerr := n.outbox.ClearPending(); cerr != nil {
				return cerr
			}
		}
		if latest < p.Checkpoint.Size {
			return fmt.Errorf("anchor at %d: %w", p.Checkpoint.Size, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("anchor at %d: %w", p.Checkpoint.Size, err)
	}
	if err := n.outbox.MarkAnchored(ac); err != nil {
		return err
	}
	n.lastAnchoredSize.Store(ac.Size)
	n.metrics.anchored.Inc()
	if !p.OldestLeafAt.IsZero() {
		n.metrics.anchorLag.Observe(n.now().Sub(p.OldestLeafAt).Seconds())
	}
	n.log.Info("checkpoint anchored", "size", ac.Size, "tx", ac.TxID)
	return nil
}

// prepareCheckpoint signs a checkpoint of the current log with a proof
// from the last anchored size and stores it in the outbox first, so that a
// crash between signing and committing resends the same checkpoint.
func (n *Node) prepareCheckpoint() (receipts.Pending, bool, error) {
	last, _, err := n.outbox.LastAnchored()
	if err != nil {
		return receipts.Pending{}, false, err
	}
	size, root, err := n.rlog.Head()
	if err != nil {
		return receipts.Pending{}, false, err
	}
	if size <= last.Size {
		return receipts.Pending{}, false, nil
	}
	proof, err := n.rlog.ConsistencyProof(last.Size, size)
	if err != nil {
		return receipts.Pending{}, false, err
	}
	cp := credit.Checkpoint{Region: n.cfg.Region, Size: size, Root: root}
	if err := cp.Sign(n.cfg.P2P.NetworkID, n.key); err != nil {
		return receipts.Pending{}, false, err
	}
	p := receipts.Pending{Checkpoint: cp, FromSize: last.Size, Proof: proof, CreatedAt: n.now()}
	if e, err := n.rlog.Entry(last.Size); err == nil {
		p.OldestLeafAt = e.AppendedAt
	}
	if err := n.outbox.SetPending(p); err != nil {
		return receipts.Pending{}, false, err
	}
	return p, true, nil
}

// reconcile adopts the ledger's latest checkpoint of this region if the
// local log extends it.
func (n *Node) reconcile(ctx context.Context) (uint64, error) {
	ac, err := n.deps.Ledger.LatestCheckpoint(ctx, n.cfg.Region)
	if errors.Is(err, network.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if ac.Size > n.rlog.Size() {
		return 0, fmt.Errorf("%w: ledger at %d, log at %d", ErrForked, ac.Size, n.rlog.Size())
	}
	root, err := n.rlog.Root(ac.Size)
	if err != nil {
		return 0, err
	}
	if !bytes.Equal(root, ac.Root) {
		return 0, fmt.Errorf("%w: roots differ at %d", ErrForked, ac.Size)
	}
	if err := n.outbox.MarkAnchored(ac); err != nil {
		return 0, err
	}
	n.lastAnchoredSize.Store(ac.Size)
	return ac.Size, nil
}

// unanchoredAge is the age of the oldest receipt no anchored checkpoint
// covers.
func (n *Node) unanchoredAge() time.Duration {
	if n.rlog == nil {
		return 0
	}
	last := n.lastAnchoredSize.Load()
	if n.rlog.Size() <= last {
		return 0
	}
	e, err := n.rlog.Entry(last)
	if err != nil {
		return 0
	}
	return n.now().Sub(e.AppendedAt)
}

// eachReceipt orders anchor.mode per_receipt: receipt i's checkpoint (of
// size i+1) is submitted only after receipt i-1's committed, because each
// checkpoint carries a consistency proof from the one before it.
type eachReceipt struct {
	mu   sync.Mutex
	turn *sync.Cond
	next uint64 // index of the receipt whose checkpoint goes next
}

func (e *eachReceipt) start(next uint64) {
	e.turn = sync.NewCond(&e.mu)
	e.next = next
}

// anchorIfPerReceipt is the answering pipeline's step after a receipt is
// durable: in anchor.mode per_receipt it anchors the receipt before the
// answer may leave.
func (n *Node) anchorIfPerReceipt(ctx context.Context, idx uint64) error {
	if n.cfg.Anchor.Mode != AnchorPerReceipt {
		return nil
	}
	if err := n.anchorReceipt(ctx, idx); err != nil {
		return fmt.Errorf("anchoring receipt %d before answering: %w", idx, err)
	}
	return nil
}

// anchorReceipt anchors a checkpoint of exactly idx+1 leaves, in log
// order. A failed anchor still passes the turn on (the next receipt's
// checkpoint covers this one too), so one ledger error fails one answer,
// not every answer after it.
func (n *Node) anchorReceipt(ctx context.Context, idx uint64) error {
	e := &n.each
	e.mu.Lock()
	for e.next < idx {
		e.turn.Wait()
	}
	defer func() {
		e.next = max(e.next, idx+1)
		e.turn.Broadcast()
		e.mu.Unlock()
	}()
	if e.next > idx {
		return nil // already covered
	}
	n.anchorMu.Lock()
	defer n.anchorMu.Unlock()
	last, _, err := n.outbox.LastAnchored()
	if err != nil {
		return err
	}
	size := idx + 1
	if last.Size >= size {
		return nil
	}
	root, err := n.rlog.Root(size)
	if err != nil {
		return err
	}
	proof, err := n.rlog.ConsistencyProof(last.Size, size)
	if err != nil {
		return err
	}
	cp := credit.Checkpoint{Region: n.cfg.Region, Size: size, Root: root}
	if err := cp.Sign(n.cfg.P2P.NetworkID, n.key); err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t0 := time.Now()
	ac, err := n.deps.Ledger.AnchorCheckpoint(actx, cp, proof)
	n.metrics.anchorTx.Observe(time.Since(t0).Seconds())
	if err != nil {
		n.metrics.anchorFails.Inc()
		return fmt.Errorf("anchor at %d: %w", size, err)
	}
	if err := n.outbox.MarkAnchored(ac); err != nil {
		return err
	}
	n.lastAnchoredSize.Store(ac.Size)
	n.metrics.anchored.Inc()
	if en, err := n.rlog.Entry(last.Size); err == nil {
		n.metrics.anchorLag.Observe(n.now().Sub(en.AppendedAt).Seconds())
	}
	return nil
}
