package node

import (
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// A region record changed by a ledger event (a node publishing its p2p
// addresses at start) reaches the p2p membership at once, not at the
// view's next periodic refresh.
func TestViewEventRegionReachesMembership(t *testing.T) {
	v := NewView(nil, nil, time.Minute, time.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	v.regions["440300"] = credit.RegionMember{ID: "440300", Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}
	var got [][]credit.RegionMember
	v.onRegions = func(rs []credit.RegionMember) { got = append(got, rs) }

	v.apply(network.Event{Kind: network.EventMemberChanged, Bank: &credit.BankMember{ID: "bank-a"}})
	if len(got) != 0 {
		t.Fatalf("a bank event told the membership %d times", len(got))
	}
	gz := credit.RegionMember{ID: "440100", Addrs: []string{"/ip4/127.0.0.1/tcp/2"}}
	v.apply(network.Event{Kind: network.EventMemberChanged, Region: &gz})
	if len(got) != 1 {
		t.Fatalf("membership told %d times, want once", len(got))
	}
	ids := []credit.RegionID{}
	for _, r := range got[0] {
		ids = append(ids, r.ID)
		if r.ID == "440100" && !slices.Equal(r.Addrs, gz.Addrs) {
			t.Fatalf("440100 addrs %v, want %v", r.Addrs, gz.Addrs)
		}
	}
	if !slices.Equal(ids, []credit.RegionID{"440100", "440300"}) {
		t.Fatalf("membership told regions %v, want every region sorted", ids)
	}
}
