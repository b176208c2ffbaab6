package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/urfave/cli/v2"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "print a one-screen summary of a running node (readiness, regions, ledger view, anchoring, receipts, imports, store)",
		Description: "Reads the node's /readyz and /metrics on its bank API (--node) and, with --admin, the admin\n" +
			"API's /healthz. Exits 1 when the node is not ready, after printing what it could read.",
		Flags: append([]cli.Flag{nodeFlag,
			&cli.StringFlag{Name: "admin", Category: catNetwork, EnvVars: []string{"CCNODE_ADMIN"},
				Usage: "the node's admin API URL, to check it answers too (not checked when empty)"},
			&cli.DurationFlag{Name: "timeout", Category: catNetwork, Value: 10 * time.Second, Usage: "for each request"},
		}, tlsFlags...),
		Action: runStatus,
	}
}

// notReadyError: the node answered that it is not ready.
type notReadyError struct{ why string }

func (e notReadyError) Error() string { return "the node is not ready: " + e.why }
func (e notReadyError) ExitCode() int { return 1 }

func runStatus(c *cli.Context) error {
	cl, err := nodeClient(c)
	if err != nil {
		return err
	}
	hc := cl.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	base := strings.TrimRight(c.String("node"), "/")
	get := func(url string) (int, []byte, error) {
		ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		return resp.StatusCode, b, err
	}

	st, body, err := get(base + "/readyz")
	if err != nil {
		return fmt.Errorf("--node %s: %w", base, err)
	}
	var ready error
	readyLine := "ready"
	if st != http.StatusOK {
		var e struct{ Code, Message string }
		json.Unmarshal(body, &e)
		ready = notReadyError{why: fmt.Sprintf("%s: %s", e.Code, e.Message)}
		readyLine = fmt.Sprintf("NOT READY (%d %s: %s)", st, e.Code, e.Message)
	}
	st, body, err = get(base + "/metrics")
	if err != nil {
		return fmt.Errorf("--node %s/metrics: %w", base, err)
	}
	if st != http.StatusOK {
		return fmt.Errorf("--node %s/metrics: status %d", base, st)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		return fmt.Errorf("--node %s/metrics: %w", base, err)
	}
	m := scraped(fams)

	w := c.App.Writer
	line := func(k, format string, a ...any) { fmt.Fprintf(w, "%-10s %s\n", k, fmt.Sprintf(format, a...)) }
	line("node", "%s: %s", base, readyLine)
	if a := strings.TrimRight(c.String("admin"), "/"); a != "" {
		if st, _, err := get(a + "/healthz"); err != nil {
			line("admin", "%s: unreachable (%v)", a, err)
		} else if st != http.StatusOK {
			line("admin", "%s: status %d", a, st)
		} else {
			line("admin", "%s: ok", a)
		}
	}
	for _, ls := range m.labelSets("ccnode_build_info") {
		line("build", "ccnode %s, revision %s, %s", ls["version"], ls["revision"], ls["goversion"])
	}
	line("peers", "%.0f regions connected over libp2p", m.sum("ccnode_peers_connected", nil))
	line("ledger", "view %s old", secs(m.sum("ccnode_ledger_view_age_seconds", nil)))
	logSize, anchored := m.sum("ccnode_receipt_log_size", nil), m.sum("ccnode_anchored_log_size", nil)
	line("anchoring", "%.0f of %.0f receipts anchored; oldest unanchored %s; %.0f checkpoints, %.0f failed attempts since start",
		anchored, logSize, secs(m.sum("ccnode_unanchored_age_seconds", nil)),
		m.sum("ccnode_checkpoints_anchored_total", nil), m.sum("ccnode_anchor_failures_total", nil))
	line("receipts", "%.0f issued since start", m.sum("ccnode_receipts_total", nil))
	if running := m.sum("ccnode_imports_running", nil); running > 0 {
		line("imports", "%.0f in progress: %.0f lines read, %.0f records stored, %.0f rejected",
			running, m.sum("ccnode_import_lines", nil), m.sum("ccnode_import_records", nil), m.sum("ccnode_import_rejected_lines", nil))
	} else {
		line("imports", "none in progress")
	}
	line("queries", "%s (since start)", m.breakdown("ccnode_queries_total", "outcome", nil))
	regions := m.values("ccnode_fanout_answers_total", "region")
	if len(regions) == 0 {
		line("regions", "no query fanned out since start")
	}
	for _, r := range regions {
		line("regions", "%s: %s", r, m.breakdown("ccnode_fanout_answers_total", "outcome", map[string]string{"region": r}))
	}
	for _, l := range m.values("ccnode_http_responses_total", "listener") {
		line("http", "%s: %s", l, m.breakdown("ccnode_http_responses_total", "code", map[string]string{"listener": l}))
	}
	store := fmt.Sprintf("lsm %s, vlog %s", bytesOf(m.sum("ccnode_store_bytes", map[string]string{"part": "lsm"})),
		bytesOf(m.sum("ccnode_store_bytes", map[string]string{"part": "vlog"})))
	if size := m.sum("ccnode_store_filesystem_size_bytes", nil); size > 0 {
		avail := m.sum("ccnode_store_filesystem_avail_bytes", nil)
		store += fmt.Sprintf("; filesystem %s free of %s (%.0f%%)", bytesOf(avail), bytesOf(size), 100*avail/size)
	}
	line("store", "%s", store)
	return ready
}

// scraped is a node's metrics as scraped: each series' labels and value.
type scraped map[string]*dto.MetricFamily

func labelsOf(m *dto.Metric) map[string]string {
	ls := map[string]string{}
	for _, l := range m.Label {
		ls[l.GetName()] = l.GetValue()
	}
	return ls
}

func matches(ls, want map[string]string) bool {
	for k, v := range want {
		if ls[k] != v {
			return false
		}
	}
	return true
}

// sum adds the counters and gauges of name whose labels include want.
func (s scraped) sum(name string, want map[string]string) float64 {
	var total float64
	if f := s[name]; f != nil {
		for _, m := range f.Metric {
			if matches(labelsOf(m), want) {
				total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return total
}

func (s scraped) labelSets(name string) []map[string]string {
	var out []map[string]string
	if f := s[name]; f != nil {
		for _, m := range f.Metric {
			out = append(out, labelsOf(m))
		}
	}
	return out
}

// values is label's distinct values on name, sorted.
func (s scraped) values(name, label string) []string {
	seen := map[string]bool{}
	for _, ls := range s.labelSets(name) {
		seen[ls[label]] = true
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// breakdown is "a 3, b 1": name's series matching want, summed by label.
func (s scraped) breakdown(name, label string, want map[string]string) string {
	var parts []string
	for _, v := range s.values(name, label) {
		w := map[string]string{label: v}
		for k, x := range want {
			w[k] = x
		}
		if n := s.sum(name, w); n > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", v, n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func secs(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}

func bytesOf(b float64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%.0f B", b)
	}
	div, exp := float64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", b/div, "KMGTPE"[exp])
}
