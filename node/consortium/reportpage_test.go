package consortium

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node/bankclient"
)

var screenshotDir = flag.String("screenshot-dir", "", "where TestReportPageInChromium keeps its screenshots and PDF (default: the test's temporary folder)")

// chromium finds Debian's chromium; without it the test skips, except in
// CI (CI=true), where .ci/run installs it and its absence is a failure.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed; .ci/run installs Debian's chromium and fonts-noto-cjk")
	}
	t.Skip("chromium is not installed (apt-get install chromium fonts-noto-cjk): the report page is not checked in a browser")
	return ""
}

// cjkFonts: without a CJK font Chromium draws Chinese as empty boxes.
func cjkFonts(t *testing.T) {
	t.Helper()
	out, err := exec.Command("fc-list", ":lang=zh", "family").Output()
	if err == nil && strings.TrimSpace(string(out)) != "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("no font with Chinese glyphs (fc-list :lang=zh: %v); .ci/run installs fonts-noto-cjk", err)
	}
	t.Skip("no font with Chinese glyphs (apt-get install fonts-noto-cjk): a screenshot would show boxes")
}

// runChromium runs headless Chromium on args and returns its stdout.
func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	profile := t.TempDir()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--user-data-dir=" + profile, "--hide-scrollbars"}, args...)
	cmd := exec.CommandContext(ctx, bin, all...)
	cmd.Env = append(os.Environ(), "HOME="+profile)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// TestReportPageInChromium: the bank API's printable page of a real
// consolidated report (Shenzhen answering with records, Guangzhou with
// none, Zhuhai refusing) opens in headless Chromium, whose rendered DOM
// holds the enterprise, the consent, every region's section with its
// status, each answered region's receipt id and signer, the refusal with
// its reason, the records by category with local dates and amounts, all
// labelled in Chinese; a screenshot and a print PDF are kept.
func TestReportPageInChromium(t *testing.T) {
	bin := chromium(t)
	cjkFonts(t)
	ctx := context.Background()
	s := startBankScenario(t)
	q, err := s.client.NewQuery(bankclient.QueryRequest{Consent: s.consent})
	if err != nil {
		t.Fatal(err)
	}
	page, err := s.client.SendHTML(ctx, q, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := *screenshotDir
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	htmlFile := filepath.Join(dir, "report-zh.html")
	if err := os.WriteFile(htmlFile, page, 0o644); err != nil {
		t.Fatal(err)
	}
	url := "file://" + htmlFile
	dom := string(runChromium(t, bin, "--dump-dom", url))

	receipt := func(r credit.RegionID) string {
		id, err := credit.ReceiptID(r, q)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	for _, want := range []string{
		`<html lang="zh-CN">`, "企业信用综合报告", "统一社会信用代码", string(q.Subject), "授权信息", q.ConsentID, "贷款申请",
		`id="region-440300"`, `id="region-440100"`, `id="region-440400"`,
		"深圳 (440300)", "已答复", "广州 (440100)", "珠海 (440400)", "暂不可用",
		`data-receipt-id="` + receipt("440300") + `"`, `data-receipt-id="` + receipt("440100") + `"`,
		`<dd class="signer">深圳 (440300)</dd>`, `<dd class="signer">广州 (440100)</dd>`,
		`data-code="ledger_view_stale"`, "拒绝原因", "节点账本视图过旧",
		`data-category="tax"`, "纳税信息", `data-category="penalty"`, "行政处罚",
		"2026年3月15日", "¥16,501.07", "¥1,234,567.50", "¥20,000.00", "深圳市税务局", "金额",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page Chromium rendered lacks %q", want)
		}
	}
	if strings.Contains(dom, `data-receipt-id="`+receipt("440400")+`"`) {
		t.Error("the refusing region shows a receipt")
	}
	if t.Failed() {
		t.Logf("rendered DOM:\n%s", dom)
	}

	shot := filepath.Join(dir, "report-zh.png")
	runChromium(t, bin, "--window-size=1240,2400", "--screenshot="+shot, url)
	pdf := filepath.Join(dir, "report-zh.pdf")
	runChromium(t, bin, "--no-pdf-header-footer", "--print-to-pdf="+pdf, url)
	for _, f := range []string{shot, pdf} {
		if fi, err := os.Stat(f); err != nil || fi.Size() < 10<<10 {
			t.Fatalf("%s: %v (want a rendered file)", f, err)
		}
	}
	t.Logf("report page: %s\nscreenshot: %s\nprint PDF: %s", htmlFile, shot, pdf)

	// English on request: the same page, other words.
	q2, err := s.client.NewQuery(bankclient.QueryRequest{Consent: s.consent})
	if err != nil {
		t.Fatal(err)
	}
	en, err := s.client.SendHTML(ctx, q2, "en")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<html lang="en">`, "Consolidated enterprise credit report", "Shenzhen (440300)", "Node&#39;s ledger view is stale", "2026-03-15", "¥16,501.07"} {
		if !strings.Contains(string(en), want) {
			t.Errorf("the English page lacks %q", want)
		}
	}
}
