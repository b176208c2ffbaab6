//go:build linux

package faults

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/procfs"
	"gopkg.in/yaml.v3"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// Bin is the path of a built ccnode binary (testkit.CCNode).
type Bin string

// Result is what a finished ccnode command left.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs ccnode to completion. A command that could not start at all
// fails t; a non-zero exit is the caller's to judge.
func (b Bin) Run(t testing.TB, args ...string) Result {
	t.Helper()
	cmd := exec.Command(string(b), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ccnode %s: %v", strings.Join(args, " "), err)
	}
	return Result{stdout.String(), stderr.String(), code}
}

// Must runs ccnode and fails t unless it exits 0; it returns stdout.
func (b Bin) Must(t testing.TB, args ...string) string {
	t.Helper()
	r := b.Run(t, args...)
	if r.Code != 0 {
		t.Fatalf("ccnode %s: exit %d\n%s%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// Node is one region's `ccnode run` process, which may be killed and
// started again on the same config and data folder.
type Node struct {
	Bin    Bin
	Region credit.RegionID
	Dir    string // data folder (store in Dir/db, embedded ledger in Dir/ledger)
	Config string // its ccnode.yaml
	Token  string // operator token ("admin", made by ccnode init)
	// CAFile is the bank API's TLS certificate (Dir/tls.crt, self-signed
	// by `ccnode init --tls`) that clients trust: the --ca-file of the
	// bank-side commands. Set it with TrustCA.
	CAFile string
	Args   []string
	// Wrap, when set, is a command prefix the process runs under (such
	// as Netns.Exec, to run it inside a network namespace); it must exec
	// ccnode, so that the pid is ccnode's.
	Wrap []string
	// Owner is the test the node belongs to: a process left running is
	// killed when it ends (not when the subtest that started it ends).
	Owner testing.TB

	mu     sync.Mutex
	tc     *tls.Config  // trusts CAFile
	hc     *http.Client // with tc; made on first use
	cmd    *exec.Cmd
	exited chan struct{}
	logs   *lockedBuffer
	url    string
	admin  string
}

// InitEmbedded runs `ccnode init --tls` for a region on the embedded
// ledger in dir (its key, operator token and the bank API's self-signed
// certificate), then writes its config: the defaults for dir with the
// bank API on a free port serving TLS, changed by edit when not nil.
func InitEmbedded(t testing.TB, bin Bin, region credit.RegionID, dir string, edit func(*node.Config)) *Node {
	t.Helper()
	n := initNode(t, bin, region, dir)
	cfg := node.DefaultConfig(region, dir)
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Admin.Addr = "127.0.0.1:0"
	n.serveTLS(&cfg)
	if edit != nil {
		edit(&cfg)
	}
	n.WriteConfig(t, cfg)
	return n
}

// initNode runs `ccnode init --tls` (with extra arguments) for a region
// in dir and returns its Node, whose config the caller writes.
func initNode(t testing.TB, bin Bin, region credit.RegionID, dir string, extra ...string) *Node {
	t.Helper()
	bin.Must(t, append([]string{"init", "--region", string(region), "--dir", dir, "--tls",
		"--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, extra...)...)
	tok, err := os.ReadFile(filepath.Join(dir, "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{Bin: bin, Region: region, Dir: dir, Config: filepath.Join(dir, "ccnode.yaml"), Token: strings.TrimSpace(string(tok)), Owner: t}
	n.TrustCA(t, filepath.Join(dir, "tls.crt"))
	return n
}

// TrustCA makes the node's clients trust the PEM certificates in caFile
// for its bank API (and no other).
func (n *Node) TrustCA(t testing.TB, caFile string) {
	t.Helper()
	tc, err := node.ClientTLS(caFile, "", "")
	if err != nil {
		t.Fatalf("region %s: %v", n.Region, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.hc != nil {
		n.hc.CloseIdleConnections()
	}
	n.CAFile, n.tc, n.hc = caFile, tc, nil
}

// serveTLS points cfg's bank API at the certificate and key `ccnode init
// --tls` wrote.
func (n *Node) serveTLS(cfg *node.Config) {
	cfg.HTTP.TLSCertFile, cfg.HTTP.TLSKeyFile = filepath.Join(n.Dir, "tls.crt"), filepath.Join(n.Dir, "tls.key")
}

// ReissueTLS replaces the bank API's certificate (read at the node's
// next start) with a new self-signed one, as `ccnode init --tls` makes,
// that is also valid for hosts: for a node moved to another address.
func (n *Node) ReissueTLS(t testing.TB, hosts ...string) {
	t.Helper()
	cert, key := filepath.Join(n.Dir, "tls.crt"), filepath.Join(n.Dir, "tls.key")
	for _, p := range []string{cert, key} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := node.WriteDevTLS(cert, key, "ccnode "+string(n.Region), hosts, time.Now()); err != nil {
		t.Fatal(err)
	}
	n.TrustCA(t, cert)
}

// TLSConfig is a client's TLS configuration that trusts the bank API's
// certificate, for connections a test makes itself.
func (n *Node) TLSConfig() *tls.Config {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.tc.Clone()
}

// HTTPClient is an HTTP client of the bank API that trusts its
// certificate; one per certificate, so its connections are reused.
func (n *Node) HTTPClient() *http.Client {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = n.tc.Clone()
		n.hc = &http.Client{Transport: tr}
	}
	return n.hc
}

// EditConfig changes the node's config file (read at its next start).
func (n *Node) EditConfig(t testing.TB, edit func(*node.Config)) {
	t.Helper()
	cfg, err := node.LoadConfig(n.Config)
	if err != nil {
		t.Fatal(err)
	}
	edit(&cfg)
	n.WriteConfig(t, cfg)
}

// WriteConfig replaces the node's config file (read at its next start).
func (n *Node) WriteConfig(t testing.TB, cfg node.Config) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config of region %s: %v", n.Region, err)
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.Config, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Start runs `ccnode run --config n.Config` with n.Args and extra, and
// returns once it has printed its bank API address. A cleanup of n.Owner
// (or t) kills it if it is left running, and logs its output if that test
// failed.
func (n *Node) Start(t testing.TB, extra ...string) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		select {
		case <-n.exited:
		default:
			t.Fatalf("region %s: started while running", n.Region)
		}
	}
	args := append([]string{"run", "--config", n.Config, "--log-level", "info"}, n.Args...)
	args = append(args, extra...)
	name := string(n.Bin)
	if len(n.Wrap) > 0 {
		name, args = n.Wrap[0], append(append(slices.Clone(n.Wrap[1:]), string(n.Bin)), args...)
	}
	cmd := exec.Command(name, args...)
	logs := &lockedBuffer{}
	lines := make(chan string, 2)
	cmd.Stdout = &firstLines{w: logs, line: lines, n: 2}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	owner := n.Owner
	if owner == nil {
		owner = t
	}
	owner.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
		if owner.Failed() {
			owner.Logf("ccnode run %s (pid %d) output:\n%s", n.Region, cmd.Process.Pid, tailString(logs.String(), 6000))
		}
	})
	n.cmd, n.exited, n.logs = cmd, exited, logs
	// The bank API's address, then the admin API's.
	for _, what := range []struct {
		prefix string
		url    *string
	}{{"bank API on ", &n.url}, {"admin API on ", &n.admin}} {
		select {
		case line := <-lines:
			_, url, ok := strings.Cut(strings.TrimSpace(line), what.prefix)
			if !ok {
				t.Fatalf("ccnode run %s printed %q, not its %saddress", n.Region, line, what.prefix)
			}
			*what.url = url
		case <-exited:
			t.Fatalf("ccnode run %s exited before serving:\n%s", n.Region, logs.String())
		case <-time.After(2 * time.Minute):
			t.Fatalf("ccnode run %s printed no address in 2m:\n%s", n.Region, logs.String())
		}
	}
}

// URL is the bank API of the running process (a new port after each start).
func (n *Node) URL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.url
}

// AdminURL is the admin API of the running process.
func (n *Node) AdminURL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.admin
}

// Client is a client of the running process's bank API and of its admin
// API with the operator token.
func (n *Node) Client() *node.Client {
	return &node.Client{Base: n.URL(), Admin: n.AdminURL(), OperatorToken: n.Token, HTTP: n.HTTPClient()}
}

// Pid is the running process's id.
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd.Process.Pid
}

// Logs is what the current (or last) process wrote.
func (n *Node) Logs() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.logs.String()
}

// Running reports whether the process has not exited.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// WaitReady polls /readyz until it answers 200.
func (n *Node) WaitReady(t testing.TB, d time.Duration) {
	t.Helper()
	WaitFor(t, d, "region "+string(n.Region)+" ready", func() (bool, string) {
		if !n.Running() {
			t.Fatalf("ccnode run %s exited:\n%s", n.Region, n.Logs())
		}
		resp, err := n.HTTPClient().Get(n.URL() + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("%d %s", resp.StatusCode, b)
	})
}

// WaitAnchored polls until the node's latest anchored checkpoint covers
// its whole receipt log (ccnode_receipt_log_size on /metrics).
func (n *Node) WaitAnchored(t testing.TB, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	WaitFor(t, d, "region "+string(n.Region)+" anchored", func() (bool, string) {
		m, err := n.Metrics(ctx)
		if err != nil {
			return false, err.Error()
		}
		cp, err := n.Client().Checkpoint(ctx)
		if err != nil {
			return false, err.Error()
		}
		size := uint64(m["ccnode_receipt_log_size"])
		return cp.Size == size, fmt.Sprintf("anchored %d of %d", cp.Size, size)
	})
}

// Kill sends SIGKILL and waits until the process is gone; the process
// must die of that signal (not have exited already).
func (n *Node) Kill(t testing.TB) {
	t.Helper()
	n.signalAndWait(t, syscall.SIGKILL, time.Minute)
	if ws, ok := n.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("ccnode run %s did not die of SIGKILL: %v\n%s", n.Region, n.cmd.ProcessState, n.Logs())
	}
}

// Terminate sends SIGTERM, waits for the process to exit and returns its
// exit code.
func (n *Node) Terminate(t testing.TB) int {
	t.Helper()
	n.signalAndWait(t, syscall.SIGTERM, time.Minute)
	return n.cmd.ProcessState.ExitCode()
}

// Stop sends SIGTERM and waits for a clean exit.
func (n *Node) Stop(t testing.TB) {
	t.Helper()
	n.signalAndWait(t, syscall.SIGTERM, time.Minute)
	if code := n.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("ccnode run %s exited %d after SIGTERM:\n%s", n.Region, code, n.Logs())
	}
}

func (n *Node) signalAndWait(t testing.TB, sig syscall.Signal, d time.Duration) {
	t.Helper()
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	select {
	case <-exited:
		t.Fatalf("ccnode run %s had already exited (%v):\n%s", n.Region, cmd.ProcessState, n.Logs())
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s to ccnode run %s: %v", sig, n.Region, err)
	}
	select {
	case <-exited:
	case <-time.After(d):
		t.Fatalf("ccnode run %s still running %s after %s", n.Region, d, sig)
	}
}

// Export runs `ccnode receipts export` of the stopped node into a file
// and returns its path.
func (n *Node) Export(t testing.TB, kind credit.ExportKind, out string) string {
	t.Helper()
	n.Bin.Must(t, "receipts", "export", "--config", n.Config, "--kind", string(kind), "--out", out)
	return out
}

// ExportedReceipts reads an export: its header and the receipts of its
// lines by id, with each one's leaf index and acknowledgement count.
func ExportedReceipts(path string) (credit.ExportHeader, map[string]ExportedReceipt, error) {
	f, err := os.Open(path)
	if err != nil {
		return credit.ExportHeader{}, nil, fmt.Errorf("faults: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var h credit.ExportHeader
	got := map[string]ExportedReceipt{}
	for ln := 1; sc.Scan(); ln++ {
		if ln == 1 {
			if h, err = credit.DecodeExportHeader(sc.Bytes()); err != nil {
				return h, nil, fmt.Errorf("faults: %s header: %w", path, err)
			}
			continue
		}
		l, err := credit.DecodeExportLine(sc.Bytes())
		if err != nil {
			return h, nil, fmt.Errorf("faults: %s line %d: %w", path, ln, err)
		}
		r, err := credit.DecodeReceipt(l.Receipt)
		if err != nil {
			return h, nil, fmt.Errorf("faults: %s line %d receipt: %w", path, ln, err)
		}
		got[r.ID] = ExportedReceipt{Index: l.Index, Acks: len(l.Acks)}
	}
	if err := sc.Err(); err != nil {
		return h, nil, fmt.Errorf("faults: %s: %w", path, err)
	}
	return h, got, nil
}

// ExportedReceipt is one line of an export.
type ExportedReceipt struct {
	Index uint64
	Acks  int
}

// Metrics fetches the running process's /metrics (Metrics).
func (n *Node) Metrics(ctx context.Context) (map[string]float64, error) {
	return Metrics(ctx, n.HTTPClient(), n.URL())
}

// Metrics fetches a node's /metrics with hc and returns every sample by
// its name and labels as Prometheus prints them (name{k="v",...}).
func Metrics(ctx context.Context, hc *http.Client, base string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("faults: metrics of %s: %w", base, err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("faults: metrics of %s: %w", base, err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			key := name
			if len(m.GetLabel()) > 0 {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				key += "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Untyped != nil:
				out[key] = m.GetUntyped().GetValue()
			case m.Histogram != nil:
				out[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
				out[key+"_sum"] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out, nil
}

// Proc is what the kernel says about a process.
type Proc struct {
	RSS int64 // bytes resident
	// RSSAnon is the resident memory the process itself holds (heap,
	// stacks, Badger's memtables), without the pages of the files it maps:
	// Badger maps its tables and value log, whose resident pages are the
	// kernel's page cache, reclaimable, and grow with the store.
	RSSAnon int64
	Threads int
	FDs     int // open file descriptors (sockets included)
}

// ReadProc reads /proc/<pid>/status, stat and fd.
func ReadProc(pid int) (Proc, error) {
	pr, err := procfs.NewProc(pid)
	if err != nil {
		return Proc{}, fmt.Errorf("faults: %w", err)
	}
	status, err := pr.NewStatus()
	if err != nil {
		return Proc{}, fmt.Errorf("faults: %w", err)
	}
	// The thread count of status is not parsed by procfs; stat's is the
	// same counter.
	stat, err := pr.Stat()
	if err != nil {
		return Proc{}, fmt.Errorf("faults: %w", err)
	}
	fds, err := pr.FileDescriptorsLen()
	if err != nil {
		return Proc{}, fmt.Errorf("faults: %w", err)
	}
	return Proc{RSS: int64(status.VmRSS), RSSAnon: int64(status.RssAnon), Threads: stat.NumThreads, FDs: fds}, nil
}

// WaitFor is testkit.Eventually for a condition that says what it saw
// when it does not hold yet.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	testkit.Eventually(t, d, func() error {
		if ok, last := cond(); !ok {
			return fmt.Errorf("%s (last: %s)", what, last)
		}
		return nil
	})
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// lockedBuffer collects a child's output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// firstLines copies a child's stdout to w and sends its first n lines on
// line (which must hold n).
type firstLines struct {
	w    io.Writer
	line chan<- string
	n    int
	buf  []byte
}

func (f *firstLines) Write(p []byte) (int, error) {
	if f.n > 0 {
		f.buf = append(f.buf, p...)
		for i := bytes.IndexByte(f.buf, '\n'); i >= 0 && f.n > 0; i = bytes.IndexByte(f.buf, '\n') {
			f.line <- string(f.buf[:i+1])
			f.buf, f.n = f.buf[i+1:], f.n-1
		}
	}
	return f.w.Write(p)
}

// CertifiedEnterprise sets up the trust chain of the enterprise u as an
// operator does with the commands: a development identity authority
// created under dir and registered by n's region (whose divisions must
// hold u's), and u's signing key certified under it. It returns the key
// and certificate files 'ccnode consent grant' signs with.
func (n *Node) CertifiedEnterprise(t testing.TB, bin Bin, u credit.USCC, dir string) (keyFile, certFile string) {
	t.Helper()
	caDir, entDir := filepath.Join(dir, "authority"), filepath.Join(dir, "enterprise")
	bin.Must(t, "authority", "create", "--name", "Test authority of "+string(n.Region), "--out", caDir)
	bin.Must(t, "authority", "register", "--admin", n.AdminURL(), "--operator-token-file", filepath.Join(n.Dir, "operator.token"), "--authority", caDir)
	bin.Must(t, "authority", "issue", "--authority", caDir, "--uscc", string(u), "--name", "Test enterprise "+string(u), "--out", entDir)
	return filepath.Join(entDir, "enterprise.key"), filepath.Join(entDir, "enterprise.pem")
}
