package node

import (
	"net/http"
	"runtime/debug"
	"strconv"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/store"
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
	fanout      *prometheus.CounterVec
	http        *prometheus.CounterVec
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
		fanout: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ccnode_fanout_answers_total", Help: "Regions' parts of the bank queries this home node fanned out, by answering region and outcome (ok, unavailable, invalid_receipt, or the refusal code).",
		}, []string{"region", "outcome"}),
		http: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ccnode_http_responses_total", Help: "HTTP responses by listener (bank, admin), route pattern and status code.",
		}, []string{"listener", "route", "code"}),
	}
	// Goroutines, heap, resident memory and open files, so an operator
	// sees a leak while a region is down or under attack (the fault suite
	// reads them too).
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(m.fanout, m.http, buildInfo(), storeCollector{n}, importCollector{n})
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

// answered counts one region's part of a fan-out by what the bank was
// told: a refusal by its code, so a region refusing everything shows.
func (m *metrics) answered(st RegionStatus) {
	outcome := st.Status
	if st.Status == StatusDenied && st.Reason != "" {
		outcome = string(st.Reason)
	}
	m.fanout.WithLabelValues(string(st.Region), outcome).Inc()
}

// instrument counts next's responses by listener, route pattern and
// status. The pattern (not the path) keeps the label set bounded: every
// receipt id is one route.
func (m *metrics) instrument(listener string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		// ServeMux sets r.Pattern on the request it was given; a
		// method no route allows matches no pattern.
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		m.http.WithLabelValues(listener, route, strconv.Itoa(sw.status)).Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// buildInfo is ccnode_build_info: constant 1, labelled with what was
// built, so a dashboard shows which version each region runs.
func buildInfo() prometheus.Collector {
	version, revision, goVersion := "unknown", "unknown", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		version, goVersion = bi.Main.Version, bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	if version == "" {
		version = "unknown"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ccnode_build_info", Help: "The running ccnode's module version, VCS revision and Go version (always 1).",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion},
	})
	g.Set(1)
	return g
}

var (
	storeBytesDesc = prometheus.NewDesc("ccnode_store_bytes",
		"Bytes of the record store on disk by part: lsm (tables) and vlog (value log), as Badger last measured them.", []string{"part"}, nil)
	fsAvailDesc = prometheus.NewDesc("ccnode_store_filesystem_avail_bytes",
		"Bytes available to the node on the filesystem of the store's directory.", nil, nil)
	fsSizeDesc = prometheus.NewDesc("ccnode_store_filesystem_size_bytes",
		"Size in bytes of the filesystem of the store's directory.", nil, nil)
	diskStateDesc = prometheus.NewDesc("ccnode_store_disk_state",
		"The store's filesystem: 0 above store.min_free_bytes; 1 below it (imports refused, queries answered); 2 below what the receipt log needs to log durably (queries refused with disk_full, not ready).", nil, nil)
)

// storeCollector reads the store's size and its filesystem's free space
// at each scrape, so an alert fires before the disk fills.
type storeCollector struct{ n *Node }

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- storeBytesDesc
	ch <- fsAvailDesc
	ch <- fsSizeDesc
	ch <- diskStateDesc
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.n.deps.Store == nil {
		return
	}
	bdb := c.n.deps.Store.Badger()
	lsm, vlog := bdb.Size()
	ch <- prometheus.MustNewConstMetric(storeBytesDesc, prometheus.GaugeValue, float64(lsm), "lsm")
	ch <- prometheus.MustNewConstMetric(storeBytesDesc, prometheus.GaugeValue, float64(vlog), "vlog")
	if dir := bdb.Opts().Dir; dir != "" && !bdb.Opts().InMemory {
		if avail, size, ok := store.FreeSpace(dir); ok {
			ch <- prometheus.MustNewConstMetric(fsAvailDesc, prometheus.GaugeValue, float64(avail))
			ch <- prometheus.MustNewConstMetric(fsSizeDesc, prometheus.GaugeValue, float64(size))
		}
		state, _ := c.n.diskState()
		ch <- prometheus.MustNewConstMetric(diskStateDesc, prometheus.GaugeValue, float64(state))
	}
}
