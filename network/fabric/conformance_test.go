package fabric

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network/ledgertest"
)

// TestConformanceSimulated runs the ONE conformance suite through this
// package's client against the simulated peer running the real contract:
// every rule, every refusal and the event stream cross gRPC, TLS, the
// fabric-gateway client's proposal/endorse/submit/commit-status flow and
// this package's error and event mapping. Fabric's own endorsement,
// ordering and validation are not in it; TestConformanceFabric has them.
func TestConformanceSimulated(t *testing.T) {
	msps := []string{"SZMSP", "GZMSP", "ZHMSP", "OUTSIDERMSP"}
	_, ls := startSim(t, testkit.LoggerAt(t, slog.LevelDebug), msps...)
	var h ledgertest.Harness
	for i, r := range []struct{ id, name, div string }{
		{"440300", "Shenzhen", "4403"},
		{"440100", "Guangzhou", "4401"},
		{"440400", "Zhuhai", "4404"},
	} {
		m, key := ledgertest.NewRegion(credit.RegionID(r.id), r.name, msps[i], r.div)
		h.Regions = append(h.Regions, ledgertest.Region{Member: m, Key: key, Ledger: ls[i]})
	}
	h.Outsider = ls[3]
	h.EventWait = 10 * time.Second
	ledgertest.Run(t, h)
}
