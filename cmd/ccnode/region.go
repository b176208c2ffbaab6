package main

import (
	"fmt"
	"strings"

	"github.com/prdcredit/ccnode/credit"
)

// checkRegion refuses a region id that is not a division code this build
// knows. A node's member record serves the divisions its id starts with
// (node.Open trims the trailing zeros), so `guangzhou` or `110000` would
// make a region that owns no Pearl River Delta enterprise, or all of them.
// where names the flag or config key the id came from.
func checkRegion(where string, id credit.RegionID) error {
	known := credit.PearlRiverDelta()
	m, err := credit.NewRegionMap(known)
	if err != nil {
		return err
	}
	s := string(id)
	isCode := len(s) == 6 && strings.Trim(s, "0123456789") == ""
	if isCode {
		if _, ok := m.RegionOfDivision(s); ok {
			return nil
		}
	}
	names := make([]string, len(known))
	for i, r := range known {
		names[i] = fmt.Sprintf("%s %s", r.ID, r.Name)
	}
	what := "is not a six-digit division code"
	if isCode {
		what = "is not a division code of a region this build knows"
	}
	return fmt.Errorf("%s %s %s; known regions: %s (or a district code inside one of them, such as 440305)",
		where, credit.Quote(s), what, strings.Join(names, ", "))
}
