package node

import (
	"fmt"
	"sync"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/store"
)

// Disk states of the store's filesystem (ccnode_store_disk_state).
const (
	diskOK   = 0 // at or above store.min_free_bytes
	diskLow  = 1 // below the floor: imports refused, queries answered
	diskFull = 2 // below what the receipt log needs: queries refused
)

// diskMeasureEvery bounds how often the free space is measured (a
// statfs): the hot path reads the last measure.
const diskMeasureEvery = time.Second

// diskWatch remembers the last measure of the store's filesystem.
type diskWatch struct {
	mu    sync.Mutex
	at    time.Time
	state int
	avail uint64
}

// diskState measures the store's filesystem (at most once a second) and
// says which state it is in, and the bytes available.
func (n *Node) diskState() (state int, avail uint64) {
	d := &n.disk
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	if !d.at.IsZero() && now.Sub(d.at) < diskMeasureEvery {
		return d.state, d.avail
	}
	d.at = now
	dir := n.deps.Store.Dir()
	if dir == "" {
		return diskOK, 0
	}
	avail, _, ok := store.FreeSpace(dir)
	if !ok {
		return diskOK, 0
	}
	state = diskOK
	switch {
	case avail < n.deps.Store.WriteReserve():
		state = diskFull
	case avail < n.cfg.Store.MinFreeBytesOrDefault():
		state = diskLow
	}
	if state != d.state {
		switch state {
		case diskFull:
			n.log.Error("disk too full to log receipts durably; refusing queries until space is freed", "dir", dir, "free", avail, "needs", n.deps.Store.WriteReserve())
		case diskLow:
			n.log.Warn("disk below store.min_free_bytes; refusing imports, still answering", "dir", dir, "free", avail, "floor", n.cfg.Store.MinFreeBytesOrDefault())
		default:
			n.log.Info("disk space back above store.min_free_bytes", "dir", dir, "free", avail)
		}
	}
	d.state, d.avail = state, avail
	return state, avail
}

// diskRefusal is the refusal of a query when the disk cannot hold the
// receipt its answer logs (fail closed: Badger would die on the write),
// else nil.
func (n *Node) diskRefusal() error {
	state, avail := n.diskState()
	if state != diskFull {
		return nil
	}
	return credit.Refuse(credit.CodeDiskFull, "%d bytes free on the filesystem of %s, below the %d the receipt log needs to log durably; free space there",
		avail, n.deps.Store.Dir(), n.deps.Store.WriteReserve())
}

// ImportSpaceCheck refuses an import into the running node that needs
// about need bytes of the store's filesystem when the node is below its
// free-space floor (store.min_free_bytes) or the import would take it
// there. The error wraps store.ErrNoSpace.
func (n *Node) ImportSpaceCheck(need uint64) error {
	dir := n.deps.Store.Dir()
	if dir == "" {
		return nil
	}
	floor := n.cfg.Store.MinFreeBytesOrDefault()
	if err := store.CheckSpace(dir, "import", need+floor); err != nil {
		return fmt.Errorf("%w (store.min_free_bytes %d is kept free for answering)", err, floor)
	}
	return nil
}

// diskWarning is what /readyz adds while the node is below its floor but
// still answering, else "".
func (n *Node) diskWarning() string {
	state, avail := n.diskState()
	if state != diskLow {
		return ""
	}
	return fmt.Sprintf("disk low: %d bytes free on the filesystem of %s, below store.min_free_bytes %d: imports are refused; queries are answered while the receipt log can log durably (%d bytes)",
		avail, n.deps.Store.Dir(), n.cfg.Store.MinFreeBytesOrDefault(), n.deps.Store.WriteReserve())
}
