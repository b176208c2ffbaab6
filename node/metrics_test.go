package node

import (
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/prdcredit/ccnode/credit"
)

// TestFanoutOutcomeIsTheRefusalCode: a region's refusal is counted under
// its code, so a dashboard tells a region refusing consents from one that
// is down; other statuses are counted as they are.
func TestFanoutOutcomeIsTheRefusalCode(t *testing.T) {
	m := newMetrics(&Node{})
	m.answered(RegionStatus{Region: "440100", Status: StatusDenied, Reason: credit.CodeConsentNotFound})
	m.answered(RegionStatus{Region: "440100", Status: StatusDenied, Reason: credit.CodeConsentNotFound})
	m.answered(RegionStatus{Region: "440100", Status: StatusUnavailable})
	m.answered(RegionStatus{Region: "440400", Status: StatusInvalidReceipt})
	for _, c := range []struct {
		region, outcome string
		want            float64
	}{
		{"440100", string(credit.CodeConsentNotFound), 2},
		{"440100", StatusUnavailable, 1},
		{"440100", StatusDenied, 0},
		{"440400", StatusInvalidReceipt, 1},
	} {
		var got dto.Metric
		if err := m.fanout.WithLabelValues(c.region, c.outcome).Write(&got); err != nil {
			t.Fatal(err)
		}
		if got := got.GetCounter().GetValue(); got != c.want {
			t.Errorf("ccnode_fanout_answers_total{region=%q,outcome=%q} = %v, want %v", c.region, c.outcome, got, c.want)
		}
	}
}
