package reporthtml

import (
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/prdcredit/ccnode/credit"
)

// Lang is the language a page is rendered in.
type Lang string

// The languages: Chinese, the default, for loan officers at Chinese
// banks; English on request.
const (
	Chinese Lang = "zh"
	English Lang = "en"
)

// ParseLang reads a language name ("zh", "zh-CN", "en", "en-GB", any
// case); anything else is Chinese.
func ParseLang(s string) Lang {
	primary, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "-")
	if primary == "en" {
		return English
	}
	return Chinese
}

// LangOf is the language a request asks for: ?lang= first, then the
// Accept-Language entry of highest weight that names Chinese or English;
// Chinese when it names neither.
func LangOf(r *http.Request) Lang {
	if v := r.URL.Query().Get("lang"); v != "" {
		return ParseLang(v)
	}
	type tag struct {
		lang Lang
		q    float64
	}
	var tags []tag
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		primary, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(name)), "-")
		if primary != "en" && primary != "zh" {
			continue
		}
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		if q > 0 {
			tags = append(tags, tag{Lang(primary), q})
		}
	}
	sort.SliceStable(tags, func(i, j int) bool { return tags[i].q > tags[j].q })
	if len(tags) > 0 {
		return tags[0].lang
	}
	return Chinese
}

// labels are a page's fixed words in one language.
type labels struct {
	HTMLLang, Title, Subject, Enterprise, Bank, Purpose, QueryTime, Home, Records, QueryDigest, Elapsed string
	Consent, ConsentID, Grantee, Categories, Validity, SignedAt, IssuedBy, Certifier, NoConsent         string
	Region, Status, Receipt, ReceiptID, Signer, Signature, SignedTime, ReportDigest, LeafIndex, Ack     string
	Reason, Message, Date, Source, SourceID, Details, NoRecords, RecordsUnit, Generated, TimeZone       string
	Verify, To, Colon, LParen, RParen, Sep                                                              string
}

var labelsOf = map[Lang]labels{
	Chinese: {
		HTMLLang: "zh-CN", Title: "企业信用综合报告", Subject: "统一社会信用代码", Enterprise: "企业名称", Bank: "查询机构",
		Purpose: "查询用途", QueryTime: "查询时间", Home: "受理地区", Records: "记录总数", QueryDigest: "查询摘要", Elapsed: "耗时",
		Consent: "授权信息", ConsentID: "授权书编号", Grantee: "被授权机构", Categories: "授权查询范围", Validity: "授权有效期",
		SignedAt: "企业签署时间", IssuedBy: "授权登记地区", Certifier: "企业证书签发机构", NoConsent: "查询未附授权书",
		Region: "地区", Status: "状态", Receipt: "查询回执", ReceiptID: "回执编号", Signer: "签发方", Signature: "签名",
		SignedTime: "签发时间", ReportDigest: "报告摘要", LeafIndex: "回执日志序号", Ack: "受理地区确认",
		Reason: "拒绝原因", Message: "节点说明", Date: "日期", Source: "来源部门", SourceID: "来源编号", Details: "内容",
		NoRecords: "该地区无相关记录", RecordsUnit: "条", Generated: "报告生成时间", TimeZone: "北京时间",
		Verify: "每份回执均由签发地区的节点密钥签名，可用 ccnode audit 或银行客户端离线核验。", To: "至",
		Colon: "：", LParen: "（", RParen: "）", Sep: "、",
	},
	English: {
		HTMLLang: "en", Title: "Consolidated enterprise credit report", Subject: "Unified social credit code", Enterprise: "Enterprise",
		Bank: "Requesting bank", Purpose: "Purpose", QueryTime: "Query time", Home: "Home region", Records: "Records",
		QueryDigest: "Query digest", Elapsed: "Elapsed",
		Consent: "Consent", ConsentID: "Consent id", Grantee: "Granted to", Categories: "Categories consented", Validity: "Valid",
		SignedAt: "Signed by the enterprise", IssuedBy: "Recorded in region", Certifier: "Certificate issued by", NoConsent: "The query carries no consent document",
		Region: "Region", Status: "Status", Receipt: "Receipt", ReceiptID: "Receipt id", Signer: "Signed by", Signature: "Signature",
		SignedTime: "Signed at", ReportDigest: "Report digest", LeafIndex: "Receipt log index", Ack: "Acknowledged by home region",
		Reason: "Reason refused", Message: "Node's message", Date: "Date", Source: "Source", SourceID: "Source id", Details: "Details",
		NoRecords: "No records in this region", RecordsUnit: "records", Generated: "Generated", TimeZone: "Beijing time (UTC+8)",
		Verify: "Every receipt is signed by its region's node key; check them offline with ccnode audit or the bank client.", To: "to",
		Colon: ": ", LParen: " (", RParen: ")", Sep: ", ",
	},
}

var categoryNames = map[Lang]map[credit.Category]string{
	Chinese: {
		credit.Registration: "登记注册", credit.Licensing: "行政许可", credit.Penalty: "行政处罚", credit.Tax: "纳税信息",
		credit.SocialInsurance: "社会保险", credit.HousingFund: "住房公积金", credit.Utilities: "水电气缴费", credit.Judicial: "司法信息",
		credit.Customs: "海关信息", credit.IP: "知识产权", credit.Honors: "荣誉表彰", credit.Financial: "财务信息",
	},
	English: {
		credit.Registration: "Registration", credit.Licensing: "Licences and permits", credit.Penalty: "Administrative penalties",
		credit.Tax: "Tax", credit.SocialInsurance: "Social insurance", credit.HousingFund: "Housing provident fund",
		credit.Utilities: "Utilities", credit.Judicial: "Judicial", credit.Customs: "Customs", credit.IP: "Intellectual property",
		credit.Honors: "Honours", credit.Financial: "Financial statements",
	},
}

var purposeNames = map[Lang]map[credit.Purpose]string{
	Chinese: {credit.PurposeLoanApplication: "贷款申请", credit.PurposeCreditReview: "授信审查",
		credit.PurposePostLoan: "贷后管理", credit.PurposeGuarantee: "担保审查"},
	English: {credit.PurposeLoanApplication: "Loan application", credit.PurposeCreditReview: "Credit review",
		credit.PurposePostLoan: "Post-loan monitoring", credit.PurposeGuarantee: "Guarantee"},
}

var statusNames = map[Lang]map[string]string{
	Chinese: {"ok": "已答复", "denied": "拒绝查询", "unavailable": "暂不可用", "invalid_receipt": "回执无效"},
	English: {"ok": "Answered", "denied": "Refused", "unavailable": "Unavailable", "invalid_receipt": "Invalid receipt"},
}

// reasonNames are the refusal codes of credit.Codes() for people; a test
// holds them to the closed list.
var reasonNames = map[Lang]map[credit.Code]string{
	Chinese: {
		credit.CodeInvalidQuery: "查询请求格式无效", credit.CodeTooLarge: "请求过大", credit.CodeUnauthorized: "未经授权的访问",
		credit.CodeNotFound: "未找到", credit.CodeConflict: "与账本记录冲突", credit.CodeDenied: "账本拒绝该身份的操作", credit.CodeNotMember: "非联盟成员节点",
		credit.CodeWrongHomeRegion: "非本行归属地区节点", credit.CodeBankUnknown: "查询机构未登记", credit.CodeBankInactive: "查询机构已停用",
		credit.CodeBadSignature: "签名验证失败", credit.CodeStaleQuery: "查询时间超出有效窗口", credit.CodeReplayedNonce: "查询请求重复提交",
		credit.CodeConsentNotFound: "授权书未在账本登记", credit.CodeConsentMismatch: "授权书与账本登记不符",
		credit.CodeConsentSignature: "授权书签名无效", credit.CodeConsentUncertified: "企业签名密钥未获认证",
		credit.CodeConsentRevoked: "授权已撤销", credit.CodeConsentExpired: "授权已过期", credit.CodeConsentNotYetValid: "授权尚未生效",
		credit.CodeConsentOtherBank: "授权对象为其他机构", credit.CodeSubjectMismatch: "授权企业与查询企业不符",
		credit.CodePurposeMismatch: "查询用途与授权不符", credit.CodeCategoryOutOfScope: "查询范围超出授权",
		credit.CodeLedgerViewStale: "节点账本视图过旧", credit.CodeLedgerUnavailable: "账本暂不可用",
		credit.CodeUnavailable: "节点暂不可用", credit.CodeInternal: "节点内部错误",
		credit.CodeNodeKeyMismatch: "节点密钥与账本登记不符", credit.CodeDiskFull: "节点磁盘空间不足",
	},
	English: {
		credit.CodeInvalidQuery: "Invalid query", credit.CodeTooLarge: "Request too large", credit.CodeUnauthorized: "Unauthorized",
		credit.CodeNotFound: "Not found", credit.CodeConflict: "Conflicts with the ledger", credit.CodeDenied: "Refused by the ledger for this identity", credit.CodeNotMember: "Not a consortium member",
		credit.CodeWrongHomeRegion: "Not the bank's home region", credit.CodeBankUnknown: "Bank not registered",
		credit.CodeBankInactive: "Bank retired", credit.CodeBadSignature: "Signature does not verify",
		credit.CodeStaleQuery: "Query time outside the window", credit.CodeReplayedNonce: "Query replayed",
		credit.CodeConsentNotFound: "Consent not on the ledger", credit.CodeConsentMismatch: "Consent differs from its ledger record",
		credit.CodeConsentSignature: "Consent signature invalid", credit.CodeConsentUncertified: "Enterprise key not certified",
		credit.CodeConsentRevoked: "Consent revoked", credit.CodeConsentExpired: "Consent expired",
		credit.CodeConsentNotYetValid: "Consent not yet valid", credit.CodeConsentOtherBank: "Consent granted to another bank",
		credit.CodeSubjectMismatch: "Consent given by another enterprise", credit.CodePurposeMismatch: "Purpose differs from the consent's",
		credit.CodeCategoryOutOfScope: "Categories outside the consent", credit.CodeLedgerViewStale: "Node's ledger view is stale",
		credit.CodeLedgerUnavailable: "Ledger unavailable", credit.CodeUnavailable: "Node unavailable", credit.CodeInternal: "Internal error",
		credit.CodeNodeKeyMismatch: "Node key differs from its ledger record", credit.CodeDiskFull: "Node disk full",
	},
}

// regionNames name the consortium's regions by their division codes
// (GB/T 2260); a region not listed is shown by its id.
var regionNames = map[Lang]map[credit.RegionID]string{
	Chinese: {"440100": "广州", "440300": "深圳", "440400": "珠海", "440600": "佛山", "440700": "江门",
		"441200": "肇庆", "441300": "惠州", "441900": "东莞", "442000": "中山"},
	English: {"440100": "Guangzhou", "440300": "Shenzhen", "440400": "Zhuhai", "440600": "Foshan", "440700": "Jiangmen",
		"441200": "Zhaoqing", "441300": "Huizhou", "441900": "Dongguan", "442000": "Zhongshan"},
}

// attrNames are the attribute keys departments' feeds use, for people;
// a key not listed is shown as it is.
var attrNames = map[Lang]map[string]string{
	Chinese: {
		"amount_cny": "金额", "assets_cny": "资产总额", "base_cny": "缴费基数", "capital_cny": "注册资本",
		"liabilities_cny": "负债总额", "net_profit_cny": "净利润", "paid_cny": "实缴金额", "revenue_cny": "营业收入",
		"value_usd": "货值（美元）", "declarations": "报关单数", "employees": "参保人数", "overdue_days": "逾期天数",
		"usage": "用量", "year": "年度", "account": "账户", "licence_no": "许可证号", "meter_no": "表号",
		"valid_until": "有效期至", "auditor": "审计机构", "authority": "决定机关", "cause": "案由", "court": "法院",
		"credit_grade": "信用等级", "credit_level": "信用级别", "event": "事项", "industry": "行业", "issued": "颁发",
		"kind": "类别", "legal_rep": "法定代表人", "level": "级别", "period": "所属期", "provider": "供应单位",
		"role": "诉讼地位", "scope": "经营范围", "status": "状态", "title": "名称", "type": "类型", "unit": "单位",
		"violation": "违法行为",
	},
	English: {},
}
