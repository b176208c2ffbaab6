package reporthtml

import (
	"bytes"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node/bankclient"
)

// TestEveryWordTranslated: both languages name every label, category,
// purpose, region status and refusal code of the closed list.
func TestEveryWordTranslated(t *testing.T) {
	for _, lang := range []Lang{Chinese, English} {
		l := reflect.ValueOf(labelsOf[lang])
		for i := range l.NumField() {
			if l.Field(i).String() == "" {
				t.Errorf("%s: label %s is empty", lang, l.Type().Field(i).Name)
			}
		}
		for _, c := range credit.AllCategories() {
			if categoryNames[lang][c] == "" {
				t.Errorf("%s: category %s has no name", lang, c)
			}
		}
		for _, c := range credit.Codes() {
			if reasonNames[lang][c] == "" {
				t.Errorf("%s: refusal code %s has no reason", lang, c)
			}
		}
		if len(reasonNames[lang]) != len(credit.Codes()) {
			t.Errorf("%s: %d reasons for %d codes", lang, len(reasonNames[lang]), len(credit.Codes()))
		}
		for _, p := range []credit.Purpose{credit.PurposeLoanApplication, credit.PurposeCreditReview, credit.PurposePostLoan, credit.PurposeGuarantee} {
			if purposeNames[lang][p] == "" {
				t.Errorf("%s: purpose %s has no name", lang, p)
			}
		}
		for _, st := range []string{bankclient.StatusOK, bankclient.StatusDenied, bankclient.StatusUnavailable, bankclient.StatusInvalidReceipt} {
			if statusNames[lang][st] == "" {
				t.Errorf("%s: status %s has no name", lang, st)
			}
		}
	}
}

func TestFormatAmount(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{
		{16501.07, "¥16,501.07"}, {0, "¥0.00"}, {100, "¥100.00"}, {1000, "¥1,000.00"}, {999999.99, "¥999,999.99"},
		{1234567.5, "¥1,234,567.50"}, {-1200, "-¥1,200.00"}, {0.004, "¥0.00"}, {12.345678, "¥12.35"},
	} {
		if got := FormatAmount("¥", c.v); got != c.want {
			t.Errorf("FormatAmount(%v) = %s, want %s", c.v, got, c.want)
		}
	}
}

func TestLangOf(t *testing.T) {
	for _, c := range []struct {
		url, accept string
		want        Lang
	}{
		{"/v1/query", "", Chinese},
		{"/v1/query?lang=en", "", English},
		{"/v1/query?lang=zh", "en", Chinese},
		{"/v1/query", "en-US,en;q=0.9", English},
		{"/v1/query", "zh-CN,zh;q=0.9,en;q=0.8", Chinese},
		{"/v1/query", "fr-FR", Chinese},
		{"/v1/query", "fr, en;q=0.5", English},
		{"/v1/query", "en;q=0, zh", Chinese},
		{"/v1/query", "zh;q=0.3, en;q=0.7", English},
	} {
		r := httptest.NewRequest("POST", c.url, nil)
		r.Header.Set("Accept-Language", c.accept)
		if got := LangOf(r); got != c.want {
			t.Errorf("%s with Accept-Language %q: %s, want %s", c.url, c.accept, got, c.want)
		}
	}
}

// TestRenderRefusalsAndEscaping: a refused region shows its reason in
// the reader's language with its code; records from departments are
// text, never markup.
func TestRenderRefusalsAndEscaping(t *testing.T) {
	u := credit.USCC("91440300MA5ABCDE1X")
	q := &credit.Query{Bank: "bank-a", Subject: u, Purpose: credit.PurposeCreditReview, Time: time.Date(2026, 12, 6, 1, 2, 3, 0, time.UTC)}
	rep := credit.NewReport(u, []credit.Record{{Subject: u, Source: "深圳市税务局", SourceID: "x-1", Category: credit.Tax, Date: "2026-12-06",
		Attrs: []byte(`{"note":"<script>alert(1)</script>","paid_cny":16501.07}`)}})
	idx := uint64(4)
	c := &bankclient.Consolidated{Subject: u, Bank: "bank-a", Home: "440300", RecordCount: 1, Regions: []bankclient.RegionStatus{
		{Region: "440300", Status: bankclient.StatusOK, RecordCount: 1, Report: &rep, LeafIndex: &idx,
			Receipt: &credit.Receipt{ID: "receipt-abc", Answerer: "440300", Time: q.Time, Sig: []byte{1, 2, 3}}},
		{Region: "440100", Status: bankclient.StatusDenied, Reason: credit.CodeConsentRevoked, Message: "consent c-1 was revoked"},
	}}
	var zh, en bytes.Buffer
	if err := Render(&zh, q, c, Chinese, q.Time); err != nil {
		t.Fatal(err)
	}
	if err := Render(&en, q, c, English, q.Time); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"授权已撤销", `data-code="consent_revoked"`, "consent c-1 was revoked", "2026年12月6日", "2026年12月6日 09:02:03",
		"¥16,501.07", "实缴金额", "授信审查", `data-receipt-id="receipt-abc"`, "&lt;script&gt;", "查询未附授权书"} {
		if !strings.Contains(zh.String(), want) {
			t.Errorf("Chinese page lacks %q", want)
		}
	}
	if strings.Contains(zh.String(), "<script>") {
		t.Error("a record's text became markup")
	}
	for _, want := range []string{"Consent revoked", "2026-12-06", "2026-12-06 09:02:03", "Credit review", "Refused"} {
		if !strings.Contains(en.String(), want) {
			t.Errorf("English page lacks %q", want)
		}
	}
}
