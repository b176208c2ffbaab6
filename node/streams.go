package node

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node/audit"
)

// Long answers of the admin API that read what the running node owns: its
// receipt log and its ledger. `ccnode receipts export` and `ccnode audit
// snapshot` use them when the node runs (it holds Badger's directory lock).

// TrailerError is the HTTP trailer a streamed answer sets when it failed
// after its status was sent: the body is then incomplete.
const TrailerError = "Ccnode-Error"

// handleReceiptsExport streams the receipt export (GET
// /v1/receipts/export?kind=answered|received&from=N), in the format and
// order of the offline export.
func (n *Node) handleReceiptsExport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	kind := credit.ExportKind(q.Get("kind"))
	if kind == "" {
		kind = credit.ExportAnswered
	}
	var from uint64
	if v := q.Get("from"); v != "" {
		var err error
		if from, err = strconv.ParseUint(v, 10, 64); err != nil {
			n.fail(w, credit.Refuse(credit.CodeInvalidQuery, "from: want a leaf index (a decimal integer)"))
			return
		}
	}
	if kind != credit.ExportAnswered && kind != credit.ExportReceived {
		n.fail(w, credit.Refuse(credit.CodeInvalidQuery, "kind %s: want answered or received", credit.Quote(string(kind))))
		return
	}
	noteTarget(r, string(kind))
	if n.rlog == nil {
		n.fail(w, ErrNotReady)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Trailer", TrailerError)
	w.Header().Set("Content-Type", "application/x-ndjson")
	bw := bufio.NewWriterSize(newDeadlineWriter(w, rc, n.cfg.HTTP.WriteTimeout), 64<<10)
	var count int
	var err error
	if kind == credit.ExportAnswered {
		if err := n.Settle(r.Context()); err != nil {
			n.log.Warn("exporting answered receipts while exchanges are still in progress: their acks may be missing", "err", err)
		}
		count, err = ExportAnswered(bw, n.cfg.Region, n.rlog, from, n.now())
	} else {
		count, err = ExportReceived(bw, n.cfg.Region, n.requested, n.now())
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		n.log.Warn("receipt export failed", "kind", kind, "after", count, "err", err)
		w.Header().Set(TrailerError, credit.BoundError(err).Error())
	}
}

// handleLedgerSnapshot streams what an audit needs from the ledger (GET
// /v1/ledger/snapshot?quiet=500ms&timeout=2m), read through the node's own
// ledger client: for a node that runs its embedded ledger, the only
// process that may open its folder.
func (n *Node) handleLedgerSnapshot(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	quiet, timeout := 500*time.Millisecond, 2*time.Minute
	for _, x := range []struct {
		name string
		dst  *time.Duration
	}{{"quiet", &quiet}, {"timeout", &timeout}} {
		if v := q.Get(x.name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				n.fail(w, credit.Refuse(credit.CodeInvalidQuery, "%s: want a positive duration such as 2m", x.name))
				return
			}
			*x.dst = d
		}
	}
	rc := http.NewResponseController(w)
	// Taking it may outlast the write timeout before the first byte.
	rc.SetWriteDeadline(time.Now().Add(timeout + n.cfg.HTTP.WriteTimeout))
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	snap, err := audit.TakeSnapshot(ctx, n.deps.Ledger, quiet, n.now())
	if err != nil {
		n.fail(w, fmt.Errorf("ledger snapshot: %w", err))
		return
	}
	w.Header().Set("Trailer", TrailerError)
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(newDeadlineWriter(w, rc, n.cfg.HTTP.WriteTimeout), 64<<10)
	if err := snap.Write(bw); err != nil {
		w.Header().Set(TrailerError, credit.BoundError(err).Error())
		return
	}
	if err := bw.Flush(); err != nil {
		w.Header().Set(TrailerError, credit.BoundError(err).Error())
	}
}
