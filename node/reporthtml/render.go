// Package reporthtml renders a consolidated report as a printable HTML
// page for people: the enterprise, each region's section with its records
// by category, each receipt's id and signer, refusals with their reasons,
// and the consent the query was given under. Chinese by default, for loan
// officers at Chinese banks, English on request; dates and amounts in
// local conventions. The bank API (Accept: text/html) and `ccnode query
// --html` both render through Render. It reads the answer only: it checks
// nothing (bankclient verifies).
package reporthtml

import (
	"bytes"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node/bankclient"
)

//go:embed report.html.tmpl
var pageSource string

var page = template.Must(template.New("report").Parse(pageSource))

// beijing is China Standard Time: UTC+8 all year, so no tz database is
// needed.
var beijing = time.FixedZone("UTC+8", 8*3600)

// Render writes the page of c, the answer to q, in lang; now is when the
// page is made (printed in its footer).
func Render(w io.Writer, q *credit.Query, c *bankclient.Consolidated, lang Lang, now time.Time) error {
	if _, ok := labelsOf[lang]; !ok {
		lang = Chinese
	}
	v := build(q, c, lang, now)
	var buf bytes.Buffer
	if err := page.Execute(&buf, v); err != nil {
		return fmt.Errorf("report page: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

type view struct {
	L                                       labels
	Subject, Enterprise, Bank, Purpose      string
	QueryTime, Home, QueryDigest, Generated string
	Records                                 string
	Consent                                 *consentView
	Regions                                 []regionView
}

type consentView struct {
	ID, Subject, Grantee, Purpose, From, Until, SignedAt, Region, Certifier string
	Categories                                                              []string
}

type regionView struct {
	ID, Name, Status, StatusCode string
	Records                      string
	Reason                       *reasonView
	Message                      string
	Receipt                      *receiptView
	Sections                     []sectionView
}

type reasonView struct{ Code, Text string }

type receiptView struct {
	ID, Signer, Signature, Time, ReportDigest, LeafIndex, Ack string
}

type sectionView struct {
	Category, Name, Count string
	Records               []recordView
}

type recordView struct {
	Date, Source, SourceID string
	Attrs                  []attrView
}

type attrView struct{ Name, Value string }

func build(q *credit.Query, c *bankclient.Consolidated, lang Lang, now time.Time) view {
	v := view{L: labelsOf[lang], Subject: string(c.Subject), Bank: string(c.Bank), Home: regionName(lang, c.Home),
		QueryDigest: c.QueryDigest, Generated: formatTime(lang, now), Records: formatCount(lang, c.RecordCount)}
	if q != nil {
		v.Purpose = name(purposeNames[lang], q.Purpose)
		v.QueryTime = formatTime(lang, q.Time)
		if g := q.Consent; g != nil {
			v.Consent = consentOf(lang, g)
			v.Enterprise, _ = certNames(g)
		}
	}
	for _, st := range c.Regions {
		v.Regions = append(v.Regions, regionOf(lang, st))
	}
	return v
}

func consentOf(lang Lang, g *credit.ConsentGrant) *consentView {
	cv := &consentView{ID: g.ID, Subject: string(g.Subject), Grantee: string(g.Grantee),
		Purpose: name(purposeNames[lang], g.Purpose), From: formatTime(lang, g.ValidFrom), Until: formatTime(lang, g.ValidUntil),
		SignedAt: formatTime(lang, g.SignedAt), Region: regionName(lang, g.Region)}
	for _, cat := range credit.NormalizeCategories(g.Categories) {
		cv.Categories = append(cv.Categories, name(categoryNames[lang], cat))
	}
	_, cv.Certifier = certNames(g)
	return cv
}

// certNames reads the enterprise's name and its certifier's from the
// leaf of the consent's certificate chain (its subject and issuer common
// names); empty when there is none.
func certNames(g *credit.ConsentGrant) (enterprise, issuer string) {
	if len(g.EnterpriseCert) == 0 {
		return "", ""
	}
	leaf, err := x509.ParseCertificate(g.EnterpriseCert[0])
	if err != nil {
		return "", ""
	}
	return leaf.Subject.CommonName, leaf.Issuer.CommonName
}

func regionOf(lang Lang, st bankclient.RegionStatus) regionView {
	rv := regionView{ID: string(st.Region), Name: regionName(lang, st.Region), StatusCode: st.Status,
		Status: name(statusNames[lang], st.Status), Records: formatCount(lang, st.RecordCount), Message: st.Message}
	if st.Reason != "" {
		rv.Reason = &reasonView{Code: string(st.Reason), Text: name(reasonNames[lang], st.Reason)}
	}
	if r := st.Receipt; r != nil {
		rc := &receiptView{ID: r.ID, Signer: regionName(lang, r.Answerer), Signature: shortHex(r.Sig),
			Time: formatTime(lang, r.Time), ReportDigest: shortHex(r.ReportDigest)}
		if st.LeafIndex != nil {
			rc.LeafIndex = strconv.FormatUint(*st.LeafIndex, 10)
		}
		if a := st.Ack; a != nil {
			rc.Ack = regionName(lang, a.Requester) + " · " + formatTime(lang, a.Time)
		}
		rv.Receipt = rc
	}
	if st.Report != nil {
		for _, s := range st.Report.Sections {
			sv := sectionView{Category: string(s.Category), Name: name(categoryNames[lang], s.Category), Count: formatCount(lang, len(s.Records))}
			for _, rec := range s.Records {
				sv.Records = append(sv.Records, recordView{Date: formatDate(lang, rec.Date), Source: rec.Source,
					SourceID: rec.SourceID, Attrs: attrsOf(lang, rec.Attrs)})
			}
			rv.Sections = append(rv.Sections, sv)
		}
	}
	return rv
}

func name[K ~string](names map[K]string, k K) string {
	if s, ok := names[k]; ok {
		return s
	}
	return string(k)
}

func regionName(lang Lang, id credit.RegionID) string {
	if n, ok := regionNames[lang][id]; ok {
		return n + " (" + string(id) + ")"
	}
	return string(id)
}

// attrsOf lists a record's attributes in key order, amounts (keys ending
// in _cny or _usd) with their currency, thousands separators and two
// decimals.
func attrsOf(lang Lang, raw json.RawMessage) []attrView {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return []attrView{{Value: string(raw)}}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]attrView, 0, len(keys))
	for _, k := range keys {
		out = append(out, attrView{Name: name(attrNames[lang], k), Value: attrValue(k, m[k])})
	}
	return out
}

func attrValue(key string, raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var f float64
	if json.Unmarshal(raw, &f) == nil {
		switch {
		case strings.HasSuffix(key, "_cny"):
			return FormatAmount("¥", f)
		case strings.HasSuffix(key, "_usd"):
			return FormatAmount("US$", f)
		}
		return string(raw)
	}
	return string(raw)
}

// FormatAmount writes an amount with its currency symbol, thousands
// separators and two decimals: ¥16,501.07, -¥1,200.00.
func FormatAmount(symbol string, v float64) string {
	neg := v < 0
	cents := int64(math.Round(math.Abs(v) * 100))
	digits := strconv.FormatInt(cents/100, 10)
	var b strings.Builder
	if neg && cents != 0 {
		b.WriteByte('-')
	}
	b.WriteString(symbol)
	for i, d := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	fmt.Fprintf(&b, ".%02d", cents%100)
	return b.String()
}

// formatDate: 2026年12月6日 in Chinese, 2026-12-06 in English.
func formatDate(lang Lang, d credit.Date) string {
	t, err := time.Parse(time.DateOnly, string(d))
	if err != nil {
		return string(d)
	}
	if lang == Chinese {
		return fmt.Sprintf("%d年%d月%d日", t.Year(), t.Month(), t.Day())
	}
	return t.Format(time.DateOnly)
}

// formatTime is a moment in Beijing time, as the reader's clock shows it.
func formatTime(lang Lang, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.In(beijing)
	if lang == Chinese {
		return fmt.Sprintf("%d年%d月%d日 %s", t.Year(), t.Month(), t.Day(), t.Format("15:04:05"))
	}
	return t.Format("2006-01-02 15:04:05")
}

func formatCount(lang Lang, n int) string {
	s := strconv.Itoa(n)
	if lang == Chinese {
		return s + " 条"
	}
	if n == 1 {
		return "1 record"
	}
	return s + " records"
}

// shortHex is enough of a signature or digest to compare by eye.
func shortHex(b []byte) string {
	h := hex.EncodeToString(b)
	if len(h) > 32 {
		return h[:32] + "…"
	}
	return h
}
