package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/prdcredit/ccnode/store"
)

// verifier runs the node's start-up verification in the background: a
// whole-store read grows with the store (about 0.55 s per million
// records), and a node of billions must not wait for it to serve. Until
// it ends, each report is still checked where it reads (the store fails a
// report that meets a block failing its checksum); the verification finds
// what no query has read yet.
type verifier struct {
	state atomic.Int32          // verifyRunning, verifySound, verifyFailed
	fail  atomic.Pointer[error] // why, when failed (the store's own corruption shows through Corruption)
}

const (
	verifyRunning int32 = iota
	verifySound
	verifyFailed
)

// startVerify starts the verification of the store's tables and values,
// and of the embedded ledger's tables when this node hosts that ledger. A
// corrupted store makes the store refuse every report from then on;
// /readyz says why and ccnode_store_checksum_failures_total counts it;
// ccnode_store_verified is 1 once the verification found everything
// sound. The stop function cancels a verification still running.
func (n *Node) startVerify(context.Context) (func() error, error) {
	n.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ccnode_store_verified",
		Help: "1 once the background verification of the record store (and of the embedded ledger's tables, when hosted) found every checksum sound; 0 while it runs or when it failed.",
	}, func() float64 {
		if n.verify.state.Load() == verifySound {
			return 1
		}
		return 0
	}))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { n.verifyAll(ctx) })
	return func() error { cancel(); wg.Wait(); return nil }, nil
}

func (n *Node) verifyAll(ctx context.Context) {
	start := time.Now()
	n.log.Info("store verification started in the background")
	res, err := n.deps.Store.Verify(ctx)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		n.verifyFailed(fmt.Errorf("record store: %w", err))
		return
	}
	if dir := n.cfg.Ledger.EmbeddedDir; dir != "" {
		lres, err := store.VerifyBadgerDir(ctx, dir)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			n.verifyFailed(fmt.Errorf("embedded ledger: %w", err))
			return
		}
		n.log.Info("embedded ledger's tables verified", "tables", lres.Tables)
	}
	n.verify.state.Store(verifySound)
	n.log.Info("store verified", "tables", res.Tables, "keys", res.Keys, "took", time.Since(start).Round(time.Millisecond))
}

func (n *Node) verifyFailed(err error) {
	n.verify.fail.Store(&err)
	n.verify.state.Store(verifyFailed)
	n.log.Error("verification failed; not ready", "err", err)
}

// verifyProblem is why the background verification failed, or nil (also
// while it runs: reads are checked meanwhile).
func (n *Node) verifyProblem() error {
	if p := n.verify.fail.Load(); p != nil {
		return *p
	}
	return nil
}

// VerifyReport is the admin API's answer to POST /v1/verify: what was read
// and, when OK is false, what is wrong (the tables that fail their
// checksums). LedgerTables counts the embedded ledger's tables checked,
// when this node hosts the ledger.
type VerifyReport struct {
	OK bool `json:"ok"`
	store.VerifyResult
	LedgerTables int    `json:"ledger_tables,omitempty"`
	Problem      string `json:"problem,omitempty"`
}

// handleVerify checks the running node's store, as ccnode verify does
// offline (the node holds Badger's directory lock while it runs), and the
// embedded ledger's tables when it hosts them. A corrupted store is the
// answer, not a failure of the call.
func (n *Node) handleVerify(w http.ResponseWriter, r *http.Request) {
	res, err := n.deps.Store.Verify(r.Context())
	rep := VerifyReport{VerifyResult: res}
	if err == nil && n.cfg.Ledger.EmbeddedDir != "" {
		var lres store.VerifyResult
		lres, err = store.VerifyBadgerDir(r.Context(), n.cfg.Ledger.EmbeddedDir)
		rep.LedgerTables = lres.Tables
		if err != nil {
			err = fmt.Errorf("embedded ledger: %w", err)
		}
	}
	switch {
	case errors.Is(err, store.ErrCorrupt):
		rep.Problem = err.Error()
		writeJSON(w, http.StatusOK, rep)
	case err != nil:
		n.fail(w, err)
	default:
		rep.OK = true
		writeJSON(w, http.StatusOK, rep)
	}
}
