package consortium

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// busyNodeMetrics starts a consortium with on-disk stores, has a bank
// query a subject through the Shenzhen node's HTTPS API (a consent
// recorded on its admin API first), and returns that node's /metrics as
// scraped, parsed.
func busyNodeMetrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	// Badger measures its files when it opens and then once a minute:
	// records put before a restart are in the size the node reports.
	dir := t.TempDir()
	opts := Options{Logger: testkit.LoggerAt(t, slog.LevelWarn), Mocknet: true, Dir: dir, Tune: fastTune}
	c, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	u := testkit.USCC(t, "440300", 5)
	mustPut(t, c.Region("440300"), rec(t, u, credit.Tax, 1))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if c, err = Start(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sz := c.Region("440300")
	api := newAPIClient(t, c.HTTPClient(), sz.Node.HTTPURL())
	adm := newAPIClient(t, c.HTTPClient(), "http://"+sz.Node.AdminAddr())
	bank := c.Banks[0]
	ent := certified(t, c, u)
	grant, _ := ent.Grant(bank.ID, sz.ID, []credit.Category{credit.Tax}, credit.PurposeCreditReview, time.Now(), time.Hour)
	st, b := adm.do("POST", "/v1/consents", c.OperatorToken, grant)
	if st != 201 {
		t.Fatalf("record consent: %d %s", st, b)
	}
	var cr node.ConsentResponse
	if err := json.Unmarshal(b, &cr); err != nil {
		t.Fatal(err)
	}
	q, _ := bank.Query(u, []credit.Category{credit.Tax}, credit.PurposeCreditReview, cr.Consent, time.Now())
	if st, b := api.do("POST", "/v1/query", "", q); st != 200 {
		t.Fatalf("query: %d %s", st, b)
	}
	// The same query again: the replayed nonce is refused at home.
	if st, b := api.do("POST", "/v1/query", "", q); st != 401 {
		t.Fatalf("replayed query: %d %s", st, b)
	}
	// Guangzhou's node stops: its part of the next query is unavailable.
	gz := c.Region("440100")
	gz.Node.Close()
	gz.host.Close()
	q, _ = bank.Query(u, []credit.Category{credit.Tax}, credit.PurposeCreditReview, cr.Consent, time.Now())
	if st, b := api.do("POST", "/v1/query", "", q); st != 200 {
		t.Fatalf("query with Guangzhou down: %d %s", st, b)
	}
	st, b = api.do("GET", "/metrics", "", nil)
	if st != 200 {
		t.Fatalf("GET /metrics: %d %s", st, b)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, b)
	}
	return fams
}

// series is every series of family name as its labels, "k=v,k=v" sorted,
// with its value.
func series(fams map[string]*dto.MetricFamily, name string) map[string]float64 {
	out := map[string]float64{}
	f := fams[name]
	if f == nil {
		return out
	}
	for _, m := range f.Metric {
		var ls []string
		for _, l := range m.Label {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(ls)
		v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
		out[strings.Join(ls, ",")] = v
	}
	return out
}

// TestMetricsExported scrapes a node that answered, refused and fanned
// out to a region that was down, and finds each metric /metrics promises
// operators: build info, fan-out outcomes per region, HTTP responses per
// listener and route, the store's size and its filesystem's space.
func TestMetricsExported(t *testing.T) {
	fams := busyNodeMetrics(t)
	want := func(name, labels string, ok func(v float64) bool) {
		t.Helper()
		all := series(fams, name)
		v, found := all[labels]
		if !found || !ok(v) {
			t.Errorf("%s{%s}: got %v (found %v); all series: %v", name, labels, v, found, all)
		}
	}
	is := func(n float64) func(float64) bool { return func(v float64) bool { return v == n } }
	positive := func(v float64) bool { return v > 0 }

	bi := series(fams, "ccnode_build_info")
	if len(bi) != 1 {
		t.Errorf("ccnode_build_info: want one series, got %v", bi)
	}
	for ls, v := range bi {
		if v != 1 || !strings.Contains(ls, "goversion="+runtime.Version()) || !strings.Contains(ls, "revision=") || !strings.Contains(ls, "version=") {
			t.Errorf("ccnode_build_info{%s} = %v, want goversion=%s, revision and version labels, value 1", ls, v, runtime.Version())
		}
	}
	// Two queries reached every region; Guangzhou was down for the second.
	want("ccnode_fanout_answers_total", "outcome=ok,region=440300", is(2))
	want("ccnode_fanout_answers_total", "outcome=ok,region=440400", is(2))
	want("ccnode_fanout_answers_total", "outcome=ok,region=440100", is(1))
	want("ccnode_fanout_answers_total", "outcome=unavailable,region=440100", is(1))
	want("ccnode_http_responses_total", "code=200,listener=bank,route=POST /v1/query", is(2))
	want("ccnode_http_responses_total", "code=401,listener=bank,route=POST /v1/query", is(1))
	want("ccnode_http_responses_total", "code=201,listener=admin,route=POST /v1/consents", is(1))
	want("ccnode_store_bytes", "part=lsm", positive)
	want("ccnode_store_bytes", "part=vlog", positive)
	want("ccnode_store_filesystem_avail_bytes", "", positive)
	want("ccnode_store_filesystem_size_bytes", "", positive)
}

// TestMonitoringConfigsUseExportedMetrics reads every expression of the
// shipped alert rules and Grafana dashboard and fails if one names a
// metric or label a running node does not export: a renamed metric
// would otherwise leave an alert that can never fire.
func TestMonitoringConfigsUseExportedMetrics(t *testing.T) {
	fams := busyNodeMetrics(t)
	metrics := map[string]bool{"up": true} // Prometheus's own, per scrape target
	labels := map[string]bool{"instance": true, "job": true, "le": true}
	for name, f := range fams {
		metrics[name] = true
		if f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY {
			metrics[name+"_bucket"], metrics[name+"_sum"], metrics[name+"_count"] = true, true, true
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				labels[l.GetName()] = true
			}
		}
	}

	var exprs []string
	b, err := os.ReadFile("../../configs/monitoring/ccnode-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("configs/monitoring/ccnode-alerts.yml: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	if len(exprs) < 6 {
		t.Fatalf("configs/monitoring/ccnode-alerts.yml: %d rules, want the alerts the README lists", len(exprs))
	}
	b, err = os.ReadFile("../../configs/monitoring/ccnode-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("configs/monitoring/ccnode-dashboard.json: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((\w+),\s*(\w+)\)$`)
	for _, v := range dash.Templating.List {
		if m := labelValues.FindStringSubmatch(v.Definition); m != nil {
			exprs = append(exprs, m[1])
			if !labels[m[2]] {
				t.Errorf("dashboard variable %q: no exported metric has label %q", v.Definition, m[2])
			}
		} else if v.Definition != "" {
			t.Errorf("dashboard variable %q: this test reads only label_values(metric, label)", v.Definition)
		}
	}

	for _, e := range exprs {
		names, ls := promqlNames(e)
		if len(names) == 0 {
			t.Errorf("expression names no metric: %s", e)
		}
		for _, n := range names {
			if !metrics[n] {
				t.Errorf("metric %s is not exported by a node (/metrics), in: %s", n, e)
			}
		}
		for _, l := range ls {
			if !labels[l] {
				t.Errorf("label %s is on no exported metric, in: %s", l, e)
			}
		}
	}
}

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers = regexp.MustCompile(`\{([^}]*)\}`)
	promMatcher  = regexp.MustCompile(`([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	promRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][\w:]*`)
	promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true}
)

// promqlNames is the metric and label names a PromQL expression uses:
// enough of PromQL for these files (selectors, ranges, groupings,
// functions), not a parser.
func promqlNames(e string) (metrics, labels []string) {
	e = promString.ReplaceAllString(e, `""`)
	for _, m := range promMatchers.FindAllStringSubmatch(e, -1) {
		for _, l := range promMatcher.FindAllStringSubmatch(m[1], -1) {
			labels = append(labels, l[1])
		}
	}
	e = promMatchers.ReplaceAllString(e, " ")
	for _, g := range promGrouping.FindAllStringSubmatch(e, -1) {
		for _, l := range strings.Split(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				labels = append(labels, l)
			}
		}
	}
	e = promGrouping.ReplaceAllString(e, " ")
	e = promRange.ReplaceAllString(e, " ")
	for _, m := range promIdent.FindAllStringIndex(e, -1) {
		name := e[m[0]:m[1]]
		if m[0] > 0 && strings.ContainsAny(e[m[0]-1:m[0]], "0123456789.$") {
			continue // a number's exponent, a duration's unit, a variable
		}
		if strings.HasPrefix(strings.TrimSpace(e[m[1]:]), "(") || promKeywords[strings.ToLower(name)] {
			continue // a function or aggregation, or an operator
		}
		metrics = append(metrics, name)
	}
	return metrics, labels
}
