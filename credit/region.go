package credit

import (
	"fmt"
	"sort"
	"strings"
)

// RegionID names a regional node of the consortium. By convention it is the
// six-digit division code of the region's city (440300 for Shenzhen), but any
// short lower-case identifier is accepted.
type RegionID string

// ValidateRegionID reports whether id is a well-formed region identifier.
func ValidateRegionID(id RegionID) error {
	if !regionIDShape.match(string(id)) {
		return fmt.Errorf("region id %s: want 1-32 characters of a-z, 0-9, _ and -, starting with a letter or digit", Quote(string(id)))
	}
	return nil
}

// Region describes which division codes a region serves.
type Region struct {
	ID   RegionID `json:"id" yaml:"id"`
	Name string   `json:"name" yaml:"name"`
	// Divisions are prefixes of six-digit division codes (usually the
	// four-digit city prefix, such as 4403). A USCC belongs to the region
	// whose prefix is the longest match of its division code.
	Divisions []string `json:"divisions" yaml:"divisions"`
}

// PearlRiverDelta returns the default regions: the nine Pearl River Delta
// cities, each with its city division prefix. It is data, not logic: nodes
// read the regions actually in force from the ledger's member records.
func PearlRiverDelta() []Region {
	return []Region{
		{ID: "440100", Name: "Guangzhou", Divisions: []string{"4401"}},
		{ID: "440300", Name: "Shenzhen", Divisions: []string{"4403"}},
		{ID: "440400", Name: "Zhuhai", Divisions: []string{"4404"}},
		{ID: "440600", Name: "Foshan", Divisions: []string{"4406"}},
		{ID: "440700", Name: "Jiangmen", Divisions: []string{"4407"}},
		{ID: "441200", Name: "Zhaoqing", Divisions: []string{"4412"}},
		{ID: "441300", Name: "Huizhou", Divisions: []string{"4413"}},
		{ID: "441900", Name: "Dongguan", Divisions: []string{"4419"}},
		{ID: "442000", Name: "Zhongshan", Divisions: []string{"4420"}},
	}
}

// RegionMap resolves division codes to regions by longest prefix.
type RegionMap struct {
	prefixes []string // sorted longest first
	region   map[string]RegionID
}

// NewRegionMap builds a map from regions. It refuses a prefix that is not 1-6
// digits and a prefix claimed by two regions.
func NewRegionMap(regions []Region) (*RegionMap, error) {
	m := &RegionMap{region: make(map[string]RegionID)}
	for _, r := range regions {
		if err := ValidateRegionID(r.ID); err != nil {
			return nil, err
		}
		for _, p := range r.Divisions {
			if len(p) == 0 || len(p) > 6 || strings.Trim(p, "0123456789") != "" {
				return nil, fmt.Errorf("region %s: division prefix %s: want 1-6 digits", r.ID, Quote(p))
			}
			if other, dup := m.region[p]; dup && other != r.ID {
				return nil, fmt.Errorf("division prefix %s claimed by both %s and %s", p, other, r.ID)
			}
			if _, dup := m.region[p]; !dup {
				m.prefixes = append(m.prefixes, p)
			}
			m.region[p] = r.ID
		}
	}
	sort.Slice(m.prefixes, func(i, j int) bool {
		if len(m.prefixes[i]) != len(m.prefixes[j]) {
			return len(m.prefixes[i]) > len(m.prefixes[j])
		}
		return m.prefixes[i] < m.prefixes[j]
	})
	return m, nil
}

// RegionOf returns the region that registered the subject, from the
// division code inside its USCC.
func (m *RegionMap) RegionOf(u USCC) (RegionID, bool) {
	return m.RegionOfDivision(u.Division())
}

// RegionOfDivision returns the region serving a six-digit division code.
func (m *RegionMap) RegionOfDivision(div string) (RegionID, bool) {
	for _, p := range m.prefixes {
		if strings.HasPrefix(div, p) {
			return m.region[p], true
		}
	}
	return "", false
}
