package synth

import (
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/prdcredit/ccnode/credit"
)

// sources holds a region's department ids and the authority names that go
// with them, built once per generator.
type sources struct {
	amr, eeb, emb, tax, hrss, hpf, water, power, gas, court, customs, cnipa, credit, audit, fin string

	amrName, eebName, embName, taxName, hrssName, hpfName, customsName, creditName, finName string
	waterName, powerName, gasName                                                           string
	cityCourt, penaltyTag                                                                   string
}

func newSources(c city) sources {
	p := c.prefix + "-"
	n := c.name + "市"
	return sources{
		amr: p + "amr", eeb: p + "eeb", emb: p + "emb", tax: p + "tax", hrss: p + "hrss", hpf: p + "hpf",
		water: p + "water", power: p + "power", gas: p + "gas", court: p + "court", customs: p + "customs",
		cnipa: p + "cnipa", credit: p + "credit", audit: p + "audit", fin: p + "fin",

		amrName: n + "市场监督管理局", eebName: n + "生态环境局", embName: n + "应急管理局",
		taxName: "国家税务总局" + n + "税务局", hrssName: n + "社会保险基金管理局", hpfName: n + "住房公积金管理中心",
		customsName: c.name + "海关", creditName: n + "社会信用体系建设领导小组", finName: n + "财政局",
		waterName: n + "水务集团", powerName: n + "供电局", gasName: n + "燃气集团",
		cityCourt: n + "中级人民法院", penaltyTag: firstRune(c.name),
	}
}

func firstRune(s string) string {
	for i := range s {
		if i > 0 {
			return s[:i]
		}
	}
	return s
}

var (
	industries = []string{"C3971", "C3914", "F5191", "F5261", "I6513", "I6421", "L7212", "M7320", "E4813",
		"C3311", "C2438", "G5438", "H6210", "K7010", "O8010", "C3831", "F5137", "M7484"}
	surnames    = []string{"陈", "李", "张", "王", "刘", "黄", "林", "吴", "周", "郑", "何", "梁", "罗", "谢", "许"}
	givenNames  = []string{"伟", "芳", "敏", "静", "强", "磊", "洋", "艳", "杰", "娟", "志明", "晓东", "建华", "丽娜", "国强", "海涛"}
	regEvents   = []string{"change_address", "change_legal_rep", "change_scope", "change_capital", "annual_report", "change_shareholder", "annual_report"}
	licTypes    = []string{"食品经营许可证", "排污许可证", "安全生产许可证", "建筑业企业资质", "医疗器械经营许可证", "道路运输经营许可证"}
	licScopes   = []string{"预包装食品销售", "大气污染物排放", "危险化学品经营", "施工总承包", "第二类医疗器械批发", "普通货运"}
	violations  = []string{"未按规定公示年度报告", "销售不合格产品", "超标排放污染物", "未落实安全生产责任", "虚假宣传", "无证经营"}
	taxKinds    = []string{"vat", "cit", "iit_withholding", "stamp_duty", "urban_maintenance", "property_tax"}
	taxGrades   = []string{"A", "A", "B", "B", "B", "M", "C", "D"}
	causes      = []string{"买卖合同纠纷", "劳动争议", "借款合同纠纷", "租赁合同纠纷", "建设工程施工合同纠纷", "知识产权纠纷"}
	caseKinds   = []string{"民初", "民初", "执", "商初", "知民初"}
	roles       = []string{"defendant", "plaintiff", "defendant", "executed", "third_party"}
	ipKinds     = []string{"invention", "utility_model", "design", "trademark", "trademark", "software_copyright"}
	ipTitles    = []string{"一种智能终端散热结构", "数据采集系统及方法", "电池管理装置", "包装盒外观设计", "物流调度平台软件", "图形商标"}
	honorTitles = []string{"守合同重信用企业", "纳税信用A级纳税人", "高新技术企业", "专精特新中小企业", "诚信示范企业"}
	auditors    = []string{"立信会计师事务所", "天健会计师事务所", "大华会计师事务所", "致同会计师事务所", "信永中和会计师事务所"}
)

func one[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// lognormal cents: a typical amount of exp(mu) yuan.
func amount(r *rand.Rand, mu, sigma float64) int64 {
	return int64(math.Exp(mu+sigma*r.NormFloat64()) * 100)
}

// obj appends a flat JSON object whose keys the caller gives in sorted
// order, so that credit.CanonicalAttrs takes its no-allocation path. Values
// never need escaping: they come from the tables above and from numbers.
type obj struct{ b []byte }

func (o *obj) key(k string) {
	if len(o.b) == 0 || o.b[len(o.b)-1] != '{' {
		o.b = append(o.b, ',')
	}
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

func (o *obj) str(k, v string) {
	o.key(k)
	o.b = append(o.b, '"')
	o.b = append(o.b, v...)
	o.b = append(o.b, '"')
}

func (o *obj) int(k string, v int64) {
	o.key(k)
	o.b = strconv.AppendInt(o.b, v, 10)
}

func (o *obj) money(k string, cents int64) {
	o.key(k)
	if cents < 0 {
		o.b = append(o.b, '-')
		cents = -cents
	}
	o.b = strconv.AppendInt(o.b, cents/100, 10)
	c := cents % 100
	o.b = append(o.b, '.', byte('0'+c/10), byte('0'+c%10))
}

// strParts writes a string value made of several pieces.
func (o *obj) strParts(k string, parts ...string) {
	o.key(k)
	o.b = append(o.b, '"')
	for _, p := range parts {
		o.b = append(o.b, p...)
	}
	o.b = append(o.b, '"')
}

// attrs appends the attributes of record j and returns its source
// department and the tag that starts its source record id. Keys within each
// case are in sorted order.
func (g *Generator) attrs(b []byte, r *rand.Rand, e *enterprise, j int, cat credit.Category, date string, day int) (source, tag string, out []byte) {
	s := &g.src
	o := obj{b: append(b, '{')}
	period := date[:7]
	switch cat {
	case credit.Registration:
		source, tag = s.amr, "REG"
		event := "establish"
		if j > 0 {
			event = one(r, regEvents)
		}
		o.str("authority", s.amrName)
		o.int("capital_cny", e.capital)
		o.str("event", event)
		o.str("industry", e.industry)
		o.str("legal_rep", e.rep)
		o.str("status", "存续")
	case credit.Licensing:
		source, tag = s.amr, "LIC"
		name := s.amrName
		switch r.IntN(5) {
		case 0:
			source, name = s.eeb, s.eebName
		case 1:
			source, name = s.emb, s.embName
		}
		k := r.IntN(len(licTypes))
		o.str("authority", name)
		o.str("issued", date)
		o.key("licence_no")
		o.b = append(o.b, '"', 'L')
		o.b = append(o.b, e.place.code...)
		o.b = appendPadded(o.b, r.IntN(10000000), 7)
		o.b = append(o.b, '"')
		o.str("scope", licScopes[k])
		o.str("type", licTypes[k])
		o.key("valid_until")
		o.b = append(o.b, '"')
		o.b = strconv.AppendInt(o.b, int64(yearOf(date)+5), 10)
		if md := date[4:]; md == "-02-29" {
			o.b = append(o.b, "-02-28"...)
		} else {
			o.b = append(o.b, md...)
		}
		o.b = append(o.b, '"')
	case credit.Penalty:
		source, tag = s.amr, "PEN"
		name, abbr := s.amrName, "市监"
		switch r.IntN(6) {
		case 0:
			source, name, abbr = s.eeb, s.eebName, "环"
		case 1:
			source, name, abbr = s.emb, s.embName, "应急"
		}
		o.money("amount_cny", amount(r, 8.5, 1.2))
		o.str("authority", name)
		o.strParts("basis", "《中华人民共和国行政处罚法》第", strconv.Itoa(8+r.IntN(30)), "条")
		o.strParts("decision_no", s.penaltyTag, abbr, "罚〔", date[:4], "〕", strconv.Itoa(1+r.IntN(9999)), "号")
		if r.IntN(5) == 0 {
			o.str("status", "未履行")
		} else {
			o.str("status", "已履行")
		}
		o.str("violation", one(r, violations))
	case credit.Tax:
		source, tag = s.tax, "TAX"
		o.money("amount_cny", amount(r, 9.5, 1.5))
		o.str("authority", s.taxName)
		o.str("credit_grade", one(r, taxGrades))
		o.strParts("declared", period, "-", strconv.Itoa(10+r.IntN(6)))
		o.str("kind", one(r, taxKinds))
		o.str("period", period)
		if r.IntN(25) == 0 {
			o.str("status", "arrears")
		} else {
			o.str("status", "paid")
		}
	case credit.SocialInsurance, credit.HousingFund:
		source, tag = s.hrss, "SI"
		name, per := s.hrssName, int64(1500)
		if cat == credit.HousingFund {
			source, tag, name, per = s.hpf, "HPF", s.hpfName, 900
		}
		emp := max(1, e.employees+r.IntN(5)-2)
		o.str("authority", name)
		o.money("base_cny", int64(2360+r.IntN(30000))*100)
		o.int("employees", int64(emp))
		o.money("paid_cny", int64(emp)*per*100+int64(r.IntN(100000)))
		o.str("period", period)
		if r.IntN(30) == 0 {
			o.str("status", "arrears")
		} else {
			o.str("status", "paid")
		}
	case credit.Utilities:
		kind, unit, name := "water", "m3", s.waterName
		source, tag = s.water, "WAT"
		switch r.IntN(3) {
		case 1:
			kind, unit, name, source, tag = "electricity", "kWh", s.powerName, s.power, "ELE"
		case 2:
			kind, unit, name, source, tag = "gas", "m3", s.gasName, s.gas, "GAS"
		}
		o.key("account")
		o.b = append(o.b, '"')
		o.b = append(o.b, tag...)
		o.b = append(o.b, e.uscc[10:17]...)
		o.b = append(o.b, '"')
		o.money("amount_cny", amount(r, 7, 1.3))
		o.str("kind", kind)
		o.key("meter_no")
		o.b = append(o.b, '"')
		o.b = append(o.b, e.place.code[2:]...)
		o.b = appendPadded(o.b, e.index%1000000, 6)
		o.b = append(o.b, '"')
		overdue := int64(0)
		if r.IntN(20) == 0 {
			overdue = int64(1 + r.IntN(120))
		}
		o.int("overdue_days", overdue)
		o.str("period", period)
		o.str("provider", name)
		o.str("unit", unit)
		o.int("usage", int64(math.Exp(6+1.4*r.NormFloat64())))
	case credit.Judicial:
		source, tag = s.court, "JUD"
		court := s.cityCourt
		if e.place.name != "" && r.IntN(4) != 0 {
			court = g.city.name + "市" + e.place.name + "人民法院"
		}
		o.money("amount_cny", amount(r, 11, 1.5))
		o.strParts("case_no", "（", date[:4], "）粤", e.place.code[2:], one(r, caseKinds), strconv.Itoa(1+r.IntN(99999)), "号")
		o.str("cause", one(r, causes))
		o.str("court", court)
		o.str("role", one(r, roles))
		if day < HistoryDays-365 || r.IntN(2) == 0 {
			o.str("status", "closed")
		} else {
			o.str("status", "pending")
		}
	case credit.Customs:
		source, tag = s.customs, "CUS"
		o.str("authority", s.customsName)
		lvl := "general"
		switch r.IntN(10) {
		case 0, 1:
			lvl = "advanced"
		case 2:
			lvl = "discredited"
		}
		o.str("credit_level", lvl)
		o.int("declarations", int64(1+r.IntN(400)))
		o.str("period", period)
		o.money("value_usd", amount(r, 12, 1.5))
	case credit.IP:
		source, tag = s.cnipa, "IP"
		k := r.IntN(len(ipKinds))
		o.str("authority", "国家知识产权局")
		o.str("kind", ipKinds[k])
		o.strParts("number", "CN", date[:4], strconv.Itoa(10000000+r.IntN(89999999)))
		if r.IntN(3) == 0 {
			o.str("status", "pending")
		} else {
			o.str("status", "granted")
		}
		o.str("title", ipTitles[k])
	case credit.Honors:
		source, tag = s.credit, "HON"
		o.str("authority", s.creditName)
		o.str("level", one(r, []string{"municipal", "municipal", "provincial", "national"}))
		o.str("title", one(r, honorTitles))
		o.int("year", int64(yearOf(date)))
	case credit.Financial:
		source, tag = s.audit, "FIN"
		if r.IntN(2) == 0 {
			source = s.fin
		}
		rev := amount(r, 15, 1.6)
		assets := rev * int64(5+r.IntN(20)) / 10
		o.money("assets_cny", assets)
		o.str("auditor", one(r, auditors))
		o.money("liabilities_cny", assets*int64(2+r.IntN(7))/10)
		o.money("net_profit_cny", rev*int64(r.IntN(40)-10)/100)
		o.str("period", strconv.Itoa(yearOf(date)-1))
		o.money("revenue_cny", rev)
	}
	o.b = append(o.b, '}')
	return source, tag, o.b
}

func yearOf(date string) int {
	return int(date[0]-'0')*1000 + int(date[1]-'0')*100 + int(date[2]-'0')*10 + int(date[3]-'0')
}
