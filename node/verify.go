package node

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prdcredit/ccnode/store"
)

// startVerify checks every table and value of the store before the node
// serves: Badger's iterators end a table's scan at a block whose checksum
// fails without an error, so a read alone would answer with fewer records
// than the store holds, and a receipt would be signed over that. A store
// found corrupted does not stop the node: the store refuses every report
// from then on, and /readyz and ccnode_store_checksum_failures_total say
// so, while the operator restores the data.
func (n *Node) startVerify(ctx context.Context) (func() error, error) {
	start := time.Now()
	res, err := n.deps.Store.Verify(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		n.log.Error("store verification failed; refusing to answer from the store", "err", err)
		return func() error { return nil }, nil
	}
	n.log.Info("store verified", "tables", res.Tables, "keys", res.Keys, "took", time.Since(start).Round(time.Millisecond))
	return func() error { return nil }, nil
}

// VerifyReport is the admin API's answer to POST /v1/verify: what was read
// and, when OK is false, what is wrong (the tables that fail their
// checksums).
type VerifyReport struct {
	OK bool `json:"ok"`
	store.VerifyResult
	Problem string `json:"problem,omitempty"`
}

// handleVerify checks the running node's store, as ccnode verify does
// offline (the node holds Badger's directory lock while it runs). A
// corrupted store is the answer, not a failure of the call.
func (n *Node) handleVerify(w http.ResponseWriter, r *http.Request) {
	res, err := n.deps.Store.Verify(r.Context())
	switch {
	case errors.Is(err, store.ErrCorrupt):
		writeJSON(w, http.StatusOK, VerifyReport{VerifyResult: res, Problem: err.Error()})
	case err != nil:
		n.fail(w, err)
	default:
		writeJSON(w, http.StatusOK, VerifyReport{OK: true, VerifyResult: res})
	}
}
