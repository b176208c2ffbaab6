package node

import (
	"github.com/prdcredit/ccnode/credit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are registered on the node's own registry, never the global
// one, so that several nodes can live in one process (the demo, tests).
type metrics struct {
	reg         *prometheus.Registry
	queries     *prometheus.CounterVec
	denials     *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	receipts    prometheus.Counter
	anchored    prometheus.Counter
	anchorFails prometheus.Counter
	anchorLag   prometheus.Histogram
	anchorTx    prometheus.Histogram
}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ccnode_queries_total", Help: "Bank queries received at this home node, by outcome (ok, denied, error).",
		}, []string{"outcome"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ccnode_denials_total", Help: "Refused queries by stage (home, answer) and reason.",
		}, []string{"stage", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ccnode_query_seconds", Help: "Query latency: home = whole bank query, answer = this region's answer incl. durable receipt.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"stage"}),
		receipts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ccnode_receipts_total", Help: "Receipts issued and durably logged.",
		}),
		anchored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ccnode_checkpoints_anchored_total", Help: "Checkpoints anchored on the ledger.",
		}),
		anchorFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ccnode_anchor_failures_total", Help: "Failed anchoring attempts (retried with backoff).",
		}),
		anchorLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ccnode_anchor_lag_seconds", Help: "Time from the oldest receipt a checkpoint newly covers to the checkpoint's anchoring.",
			// Steps of 25%, 10 ms to about a minute: fine enough for a
			// benchmark's p99 to mean something.
			Buckets: prometheus.ExponentialBuckets(0.01, 1.25, 40),
		}),
		anchorTx: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ccnode_anchor_tx_seconds", Help: "Time of each anchoring ledger transaction, from submit to commit (or failure).",
			Buckets: prometheus.ExponentialBuckets(0.001, 1.25, 50),
		}),
	}
	// Goroutines, heap, resident memory and open files, so an operator
	// sees a leak while a region is down or under attack (the fault suite
	// reads them too).
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(m.queries, m.denials, m.latency, m.receipts, m.anchored, m.anchorFails, m.anchorLag, m.anchorTx,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ccnode_ledger_view_age_seconds", Help: "Age of the node's confirmed view of the ledger; past the grace period the node refuses to answer.",
		}, func() float64 { return n.view.Age().Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ccnode_unanchored_age_seconds", Help: "Age of the oldest receipt not yet covered by an anchored checkpoint (0 if none).",
		}, func() float64 { return n.unanchoredAge().Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "ccnode_store_checksum_failures_total", Help: "Checksum mismatches found in the record store's tables or values (reads and verifications); after one the node refuses to answer from the store.",
		}, func() float64 { return float64(n.deps.Store.ChecksumFailures()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ccnode_anchored_log_size", Help: "Leaves of the receipt log covered by the last anchored checkpoint.",
		}, func() float64 { return float64(n.lastAnchoredSize.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ccnode_receipt_log_size", Help: "Leaves in the receipt log.",
		}, func() float64 {
			if n.rlog == nil {
				return 0
			}
			return float64(n.rlog.Size())
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ccnode_peers_connected", Help: "Consortium peers connected over libp2p.",
		}, func() float64 {
			if n.host == nil {
				return 0
			}
			return float64(len(n.host.Network().Peers()))
		}),
	)
	return m
}

// denied counts a refusal by its code; err that is no refusal is not
// counted.
func (m *metrics) denied(stage string, err error) {
	if r := credit.RefusalOf(err); r != nil {
		m.denials.WithLabelValues(stage, string(r.Code)).Inc()
	}
}
