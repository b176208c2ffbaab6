package receipts

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/prdcredit/ccnode/credit"
)

// AdoptLedger makes the outbox say what the ledger says: latest (ok false:
// the ledger holds no checkpoint of this region) becomes the last anchored
// checkpoint, the anchored history above it is dropped, and a pending
// checkpoint whose proof does not start from it is dropped (the next round
// builds one that does). After a restore the store and the ledger come from
// different moments (a backup taken before an anchoring, or a ledger
// restored from an older backup than the store); the caller has checked
// that the local log extends latest.
func (o *Outbox) AdoptLedger(latest credit.AnchoredCheckpoint, ok bool) error {
	var size uint64
	if ok {
		size = latest.Size
	}
	err := o.db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: outboxHistory})
		var drop [][]byte
		for it.Seek(historyKey(size + 1)); it.Valid(); it.Next() {
			drop = append(drop, it.Item().KeyCopy(nil))
		}
		it.Close()
		for _, k := range drop {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		item, err := txn.Get(outboxPending)
		switch {
		case err == nil:
			var p Pending
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &p) }); err != nil {
				return fmt.Errorf("%w: pending: %w", ErrCorrupt, err)
			}
			if p.FromSize != size || p.Checkpoint.Size <= size {
				if err := txn.Delete(outboxPending); err != nil {
					return err
				}
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		if !ok {
			return txn.Delete(outboxAnchored)
		}
		b, err := json.Marshal(latest)
		if err != nil {
			return err
		}
		if err := txn.Set(historyKey(size), b); err != nil {
			return err
		}
		return txn.Set(outboxAnchored, b)
	})
	if err == nil {
		err = o.sync.Sync()
	}
	if err != nil {
		return fmt.Errorf("outbox: adopt the ledger's checkpoint at %d: %w", size, err)
	}
	return nil
}

// ForgetView drops the cached ledger view, so that the node rebuilds it
// from the ledger's events from the first. A restored store's view may be
// newer than the ledger it will run on (a ledger restored from an older
// backup, or kept while the store came from a newer one): its position
// would skip the ledger's events up to there, and its consents would
// include some the ledger never held.
func (o *Outbox) ForgetView() error {
	err := o.db.Update(func(txn *badger.Txn) error { return txn.Delete(outboxView) })
	if err == nil {
		err = o.sync.Sync()
	}
	if err != nil {
		return fmt.Errorf("outbox: forget the ledger view: %w", err)
	}
	return nil
}
