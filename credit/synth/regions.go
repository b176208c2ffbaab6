package synth

import (
	"errors"
	"fmt"

	"github.com/prdcredit/ccnode/credit"
)

// place is a division code that registers enterprises, with the Chinese
// name its court and district offices carry.
type place struct {
	code  string // six digits
	name  string // e.g. 福田区; empty for the city level
	share int    // relative weight among the region's places
}

// city describes a region: its source prefix, its Chinese name and its places.
type city struct {
	prefix string // department id prefix: sz-amr, gz-tax, ...
	name   string // 深圳
	places []place
}

// cities maps a region code to its registering divisions. Most enterprises in
// a Pearl River Delta city are registered at the city level (91440300...),
// the rest by district bureaus. Regions not listed fall back to their own
// code (see regionCity).
var cities = map[string]city{
	"440300": {"sz", "深圳", []place{
		{"440300", "", 50}, {"440303", "罗湖区", 5}, {"440304", "福田区", 8}, {"440305", "南山区", 9},
		{"440306", "宝安区", 10}, {"440307", "龙岗区", 9}, {"440308", "盐田区", 1}, {"440309", "龙华区", 5},
		{"440310", "坪山区", 1}, {"440311", "光明区", 2},
	}},
	"440100": {"gz", "广州", []place{
		{"440101", "", 40}, {"440103", "荔湾区", 5}, {"440104", "越秀区", 6}, {"440105", "海珠区", 6},
		{"440106", "天河区", 10}, {"440111", "白云区", 9}, {"440112", "黄埔区", 6}, {"440113", "番禺区", 8},
		{"440114", "花都区", 4}, {"440115", "南沙区", 3}, {"440117", "从化区", 1}, {"440118", "增城区", 2},
	}},
	"440400": {"zh", "珠海", []place{
		{"440400", "", 60}, {"440402", "香洲区", 25}, {"440403", "斗门区", 7}, {"440404", "金湾区", 8},
	}},
	"440600": {"fs", "佛山", []place{
		{"440600", "", 40}, {"440604", "禅城区", 12}, {"440605", "南海区", 20}, {"440606", "顺德区", 20},
		{"440607", "三水区", 4}, {"440608", "高明区", 4},
	}},
	"440700": {"jm", "江门", []place{
		{"440700", "", 45}, {"440703", "蓬江区", 15}, {"440704", "江海区", 8}, {"440705", "新会区", 12},
		{"440781", "台山市", 8}, {"440783", "开平市", 6}, {"440784", "鹤山市", 4}, {"440785", "恩平市", 2},
	}},
	"441200": {"zq", "肇庆", []place{
		{"441200", "", 45}, {"441202", "端州区", 15}, {"441203", "鼎湖区", 5}, {"441204", "高要区", 10},
		{"441223", "广宁县", 5}, {"441224", "怀集县", 5}, {"441225", "封开县", 4}, {"441226", "德庆县", 4},
		{"441284", "四会市", 7},
	}},
	"441300": {"hz", "惠州", []place{
		{"441300", "", 45}, {"441302", "惠城区", 20}, {"441303", "惠阳区", 12}, {"441322", "博罗县", 10},
		{"441323", "惠东县", 9}, {"441324", "龙门县", 4},
	}},
	"441900": {"dg", "东莞", []place{{"441900", "", 1}}},
	"442000": {"zs", "中山", []place{{"442000", "", 1}}},
}

// ErrRegion is returned for a region code the generator cannot use.
var ErrRegion = errors.New("synth: region must be a six-digit division code of a real province")

// regionCity returns the city of a region code, falling back to the code
// itself as the only division (checked by making a USCC with it).
func regionCity(region credit.RegionID) (city, error) {
	if c, ok := cities[string(region)]; ok {
		return c, nil
	}
	code := string(region)
	if len(code) != 6 {
		return city{}, fmt.Errorf("%w: %q", ErrRegion, code)
	}
	if _, err := credit.CompleteUSCC("91" + code + "MA5F00000"); err != nil {
		return city{}, fmt.Errorf("%w: %q: %w", ErrRegion, code, err)
	}
	return city{prefix: "r" + code, name: code, places: []place{{code, "", 1}}}, nil
}
