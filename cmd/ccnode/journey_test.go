package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// The README's "Three nodes on one machine" section drives this test: its
// sh blocks, each preceded by a journey marker, are run in order, command
// by command, as separate processes of the built binary. Markers without a
// block are steps the reader does by hand (watch `status`, press Ctrl-C).
const (
	journeySection = "## Three nodes on one machine"
	markCommands   = "<!-- journey -->"
	markWait       = "<!-- journey: wait until every node has anchored its receipts -->"
	markStop       = "<!-- journey: stop the nodes -->"
	// The backup and restore steps (being built elsewhere) go at this
	// marker in the README; the test runs whatever sh block follows it.
	markBackup = "<!-- journey: backup and restore of one node go here -->"
)

// journeyStep is one marker of the section and the commands of its block.
type journeyStep struct {
	mark     string
	line     int // of the marker in README.md
	commands [][]string
}

// readJourney extracts the section's steps from the README.
func readJourney(t *testing.T, readme string) []journeyStep {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	start := -1
	for i, l := range lines {
		if l == journeySection {
			start = i + 1
			break
		}
	}
	if start < 0 {
		t.Fatalf("%s has no section %q", readme, journeySection)
	}
	var steps []journeyStep
	for i := start; i < len(lines) && !strings.HasPrefix(lines[i], "## "); i++ {
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "<!-- journey") {
			continue
		}
		switch l {
		case markCommands, markWait, markStop, markBackup:
		default:
			t.Fatalf("README.md:%d: unknown journey marker %q", i+1, l)
		}
		st := journeyStep{mark: l, line: i + 1}
		if i+1 < len(lines) && lines[i+1] == "```sh" {
			var block []string
			for i += 2; i < len(lines) && lines[i] != "```"; i++ {
				block = append(block, lines[i])
			}
			cmds, err := shellCommands(strings.Join(block, "\n"))
			if err != nil {
				t.Fatalf("README.md:%d: %v", st.line, err)
			}
			st.commands = cmds
		} else if l == markCommands {
			t.Fatalf("README.md:%d: %s is not followed by a ```sh block", i+1, l)
		}
		steps = append(steps, st)
	}
	return steps
}

// shellCommands splits a block into commands and words as sh would for
// the plain commands a reader types: quotes, backslash-newline and
// comments. Anything else the shell would interpret is refused, so that
// the README never shows a command this test does not run as written.
func shellCommands(block string) ([][]string, error) {
	var (
		cmds         [][]string
		words        []string
		word         strings.Builder
		inWord       bool
		quote        rune
		escaped      bool
		commentUntil = func(rs []rune, i int) int {
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
			return i
		}
	)
	flushWord := func() {
		if inWord {
			words = append(words, word.String())
			word.Reset()
			inWord = false
		}
	}
	flushCmd := func() {
		flushWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
			words = nil
		}
	}
	rs := []rune(block)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case escaped:
			escaped = false
			if r != '\n' {
				word.WriteRune(r)
				inWord = true
			}
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				word.WriteRune(r)
			}
		case r == '\\':
			escaped = true
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == '#' && !inWord:
			i = commentUntil(rs, i) - 1
		case r == '\n':
			flushCmd()
		case r == ' ' || r == '\t':
			flushWord()
		case strings.ContainsRune("|&;<>$`*?(){}", r):
			return nil, fmt.Errorf("%q: the journey runs commands without a shell; keep its blocks to plain commands", string(r))
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, errors.New("unterminated quote")
	}
	flushCmd()
	return cmds, nil
}

// journeyNode is a `ccnode run` the journey started.
type journeyNode struct {
	config string
	cmd    *exec.Cmd
	done   chan error
	bank   string // bank API URL
	ca     string // its TLS certificate, as banks trust it
}

type journey struct {
	t     *testing.T
	bin   string
	dir   string
	env   []string
	subst []string // old, new pairs applied to every later command's words
	nodes []*journeyNode
	// samples holds each sample config as shipped (its fixed addresses),
	// by the path the README names it with; the copies listen on port 0.
	samples map[string]node.Config
}

// TestThreeNodesJourney runs the README's "Three nodes on one machine" as
// an operator would: init from the sample configs, compose the bootstrap,
// run three nodes, import into them while they serve, register a bank,
// grant a consent, query (parts from all three regions), back up and
// restore one node, export from the running nodes and audit with zero
// findings, stop. The README's order is the test's.
func TestThreeNodesJourney(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three nodes")
	}
	j := newJourney(t)
	steps := readJourney(t, "../../README.md")
	ran := map[string]int{}
	for _, st := range steps {
		switch st.mark {
		case markWait:
			j.waitAnchored()
		case markStop:
			j.stopNodes()
		case markBackup:
			t.Logf("README.md:%d: backup and restore: %d commands", st.line, len(st.commands))
		}
		for _, args := range st.commands {
			ran[j.run(st.line, args)]++
		}
	}
	// The journey must have done what the issue asks of it, whatever the
	// README's wording.
	for _, want := range []string{"init", "consortium bootstrap", "import", "run", "bank register", "consent grant", "query", "backup", "restore", "receipts export", "audit"} {
		if ran[want] == 0 {
			t.Errorf("the README's journey never runs ccnode %s", want)
		}
	}
	if ran["run"] != 3 {
		t.Errorf("the journey runs %d nodes, want 3", ran["run"])
	}
}

// newJourney prepares a journey in a fresh folder: the built binary, the
// environment without the runner's CCNODE_ settings, and copies of the
// repository's configs listening on port 0.
func newJourney(t *testing.T) *journey {
	j := &journey{t: t, bin: testkit.CCNode(t), dir: t.TempDir(), samples: map[string]node.Config{}}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "CCNODE_") {
			j.env = append(j.env, e)
		}
	}
	j.copyRepoFiles()
	return j
}

// copyRepoFiles copies configs/ into the work folder, each config with its
// listen addresses on port 0 (no fixed port in a test), and links ./ccnode
// to the test's binary.
func (j *journey) copyRepoFiles() {
	t := j.t
	if err := os.Symlink(j.bin, filepath.Join(j.dir, "ccnode")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(j.dir, "configs"), os.DirFS("../../configs")); err != nil {
		t.Fatal(err)
	}
	paths, _ := filepath.Glob(filepath.Join(j.dir, "configs", "*.yaml"))
	for _, p := range paths {
		cfg, err := node.LoadConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		s := string(b)
		own := append([]string{cfg.HTTP.Addr, cfg.Admin.Addr}, cfg.P2P.Listen...)
		if cfg.Ledger.ServeAddr != "" {
			own = append(own, cfg.Ledger.ServeAddr)
		}
		for _, a := range own {
			s = strings.ReplaceAll(s, " "+a+"\n", " "+portZero(a)+"\n")
		}
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := node.LoadConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range append([]string{got.HTTP.Addr, got.Admin.Addr, got.Ledger.ServeAddr}, got.P2P.Listen...) {
			if a != "" && portZero(a) != a {
				t.Fatalf("%s: address %s left on a fixed port", filepath.Base(p), a)
			}
		}
		j.samples[filepath.ToSlash(filepath.Join("configs", filepath.Base(p)))] = cfg
	}
}

// portZero is addr (host:port or a /tcp/ multiaddr) on port 0.
func portZero(addr string) string {
	if strings.HasPrefix(addr, "/") {
		return regexp.MustCompile(`/(tcp|udp)/\d+`).ReplaceAllString(addr, "/$1/0")
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return net.JoinHostPort(host, "0")
}

// run runs one README command and returns what it was ("query", "bank
// register", ...), for the test's tally.
func (j *journey) run(line int, args []string) string {
	t := j.t
	t.Helper()
	if len(args) >= 1 && args[0] == "go" {
		if strings.Join(args, " ") != "go build -o ccnode ./cmd/ccnode" {
			t.Fatalf("README.md:%d: unexpected go command %q", line, args)
		}
		return "build" // ./ccnode is the binary the test built from this tree
	}
	if args[0] != "./ccnode" || len(args) < 2 {
		t.Fatalf("README.md:%d: %q: a journey command is ./ccnode ...", line, args)
	}
	args = j.substitute(args[1:])
	what := args[0]
	if len(args) > 1 && !strings.HasPrefix(args[1], "-") && (what == "consortium" || what == "bank" || what == "consent" || what == "receipts" || what == "authority") {
		what += " " + args[1]
	}
	if what == "audit" && len(args) > 1 && args[1] == "snapshot" {
		what = "audit snapshot"
	}
	if what == "run" {
		j.startNode(line, args)
		return what
	}
	var out string
	var err error
	if what == "query" {
		// A region's view may lag the fresh consent by a moment
		// (consent_not_found, "retrying helps"): the reader asks again.
		err = testkit.Poll(30*time.Second, func() error {
			if out, err = j.exec(args); err != nil {
				return err
			}
			return checkQuery(out)
		})
	} else {
		out, err = j.exec(args)
	}
	if err != nil {
		t.Fatalf("README.md:%d: ccnode %s: %v\n%s", line, strings.Join(args, " "), err, out)
	}
	t.Logf("README.md:%d: ccnode %s\n%s", line, strings.Join(args, " "), out)
	switch what {
	case "bank register":
		var b credit.BankMember
		if err := json.Unmarshal([]byte(out), &b); err != nil || b.Status != credit.StatusActive || b.UpdatedAt.IsZero() || b.Region != "440300" {
			t.Fatalf("bank register printed %s (%v), want the ledger's record: active, home 440300, with its time", out, err)
		}
	case "audit":
		if !strings.Contains(out, "result: no findings") {
			t.Fatalf("audit found something:\n%s", out)
		}
		for _, r := range []string{"440100", "440300", "440400"} {
			if !regexp.MustCompile(`(?m)^` + r + `\s+[1-9]`).MatchString(out) {
				t.Fatalf("audit report has no receipts of region %s:\n%s", r, out)
			}
		}
	}
	return what
}

// runToQuery runs the README's journey up to its wait step (three nodes
// running, the bank's first query answered) and returns that query's
// command and the index of the first step not run.
func (j *journey) runToQuery(steps []journeyStep) ([]string, int) {
	var query []string
	i := 0
	for ; i < len(steps) && steps[i].mark == markCommands; i++ {
		for _, args := range steps[i].commands {
			if j.run(steps[i].line, args) == "query" {
				query = args
			}
		}
	}
	if query == nil {
		j.t.Fatal("the README's journey runs no query before its wait step")
	}
	return query, i
}

// regionPart runs a query command (with --json added) and returns the
// part of region's answer in the consolidated report.
func (j *journey) regionPart(query []string, region credit.RegionID) (node.RegionStatus, error) {
	args := append(append([]string{}, query...), "--json")
	out, err := j.exec(args)
	if err != nil {
		return node.RegionStatus{}, fmt.Errorf("query: %v\n%s", err, out)
	}
	var res node.Consolidated
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return node.RegionStatus{}, err
	}
	for _, r := range res.Regions {
		if r.Region == region {
			return r, nil
		}
	}
	return node.RegionStatus{}, fmt.Errorf("no part from region %s:\n%s", region, out)
}

// substitute points the sample configs' addresses at the running nodes.
func (j *journey) substitute(args []string) []string {
	out := make([]string, len(args))
	r := strings.NewReplacer(j.subst...)
	for i, a := range args {
		out[i] = r.Replace(a)
	}
	return out
}

func (j *journey) exec(args []string) (string, error) {
	// Generous for a busy machine; a command that hangs fails the test
	// instead of holding it until go test's own timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, j.bin, args...)
	cmd.Dir, cmd.Env = j.dir, j.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

// checkQuery wants a consolidated report with records from each of the
// three regions, each part answered.
func checkQuery(out string) error {
	rows := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	inTable := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) > 0 && f[0] == "REGION" && len(f) > 2 && f[2] == "RECORDS":
			inTable = true
		case inTable && len(f) == 0:
			inTable = false
		case inTable && len(f) >= 3:
			if n, err := strconv.Atoi(f[2]); err == nil && f[1] == "ok" && n > 0 {
				rows[f[0]] = f[2]
			} else {
				rows[f[0]] = ""
			}
		}
	}
	for _, r := range []string{"440100", "440300", "440400"} {
		if rows[r] == "" {
			return fmt.Errorf("no records answered by region %s:\n%s", r, out)
		}
	}
	return nil
}

// startNode starts `ccnode run` as a terminal would, reads the addresses
// it prints, and points later commands (and the configs that name its
// served ledger) at them.
func (j *journey) startNode(line int, args []string) {
	t := j.t
	var cfgPath string
	for i, a := range args {
		if (a == "--config" || a == "-c") && i+1 < len(args) {
			cfgPath = args[i+1]
		}
	}
	sample, ok := j.samples[cfgPath]
	if !ok {
		t.Fatalf("README.md:%d: run --config %q: not a sample config", line, cfgPath)
	}
	logPath := filepath.Join(j.dir, strings.ReplaceAll(cfgPath, "/", "_")+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(j.bin, args...)
	cmd.Dir, cmd.Env, cmd.Stderr = j.dir, j.env, logf
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &journeyNode{config: cfgPath, cmd: cmd, done: make(chan error, 1), ca: sample.HTTP.TLSCertFile}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-n.done
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", cfgPath, tail(string(b), 40))
		}
	})
	br := bufio.NewReader(stdout)
	want := []string{"bank API on ", "admin API on "}
	if sample.Ledger.ServeAddr != "" {
		want = append(want, "embedded ledger served on ")
	}
	var got []string
	for _, prefix := range want {
		l, err := br.ReadString('\n')
		_, u, ok := strings.Cut(strings.TrimSpace(l), prefix)
		if err != nil || !ok {
			cmd.Process.Kill()
			cmd.Wait()
			b, _ := os.ReadFile(logPath)
			t.Fatalf("README.md:%d: ccnode %s printed %q, want %s...: %v\n%s", line, strings.Join(args, " "), l, prefix, err, tail(string(b), 40))
		}
		got = append(got, u)
	}
	go func() { io.Copy(io.Discard, br); n.done <- cmd.Wait() }()
	n.bank = got[0]
	bank, _ := url.Parse(got[0])
	j.subst = append(j.subst, sample.HTTP.Addr, bank.Host, "http://"+sample.Admin.Addr, got[1])
	if len(got) == 3 {
		// The other configs reach this node's ledger at its sample
		// address: point their copies at the real one.
		for p := range j.samples {
			full := filepath.Join(j.dir, p)
			b, _ := os.ReadFile(full)
			if err := os.WriteFile(full, bytes.ReplaceAll(b, []byte("http://"+sample.Ledger.ServeAddr), []byte(got[2])), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	j.nodes = append(j.nodes, n)
	t.Logf("README.md:%d: ccnode %s: bank API %s, admin API %s", line, strings.Join(args, " "), got[0], got[1])
}

// waitAnchored waits, as the reader watching `ccnode status` does, until
// each node's anchored checkpoint covers its whole receipt log.
func (j *journey) waitAnchored() {
	t := j.t
	for _, n := range j.nodes {
		tc, err := node.ClientTLS(filepath.Join(j.dir, n.ca), "", "")
		if err != nil {
			t.Fatal(err)
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 5 * time.Second}
		testkit.Eventually(t, 60*time.Second, func() error {
			m, err := scrape(hc, n.bank+"/metrics")
			if err != nil {
				return err
			}
			size, ok := m["ccnode_receipt_log_size"]
			if !ok || m["ccnode_anchored_log_size"] != size {
				return fmt.Errorf("%s: anchored %v of %v receipts", n.config, m["ccnode_anchored_log_size"], m["ccnode_receipt_log_size"])
			}
			return nil
		})
		hc.CloseIdleConnections()
	}
}

func scrape(hc *http.Client, u string) (map[string]float64, error) {
	resp, err := hc.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && !strings.HasPrefix(f[0], "#") {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				m[f[0]] = v
			}
		}
	}
	return m, sc.Err()
}

// stopNodes interrupts the nodes as Ctrl-C does, the ledger's host last,
// and wants each to exit cleanly.
func (j *journey) stopNodes() {
	t := j.t
	for i := len(j.nodes) - 1; i >= 0; i-- {
		n := j.nodes[i]
		if err := n.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		select {
		case err := <-n.done:
			n.done <- err // for the cleanup
			if err != nil {
				t.Fatalf("%s: run exited after Ctrl-C: %v", n.config, err)
			}
		case <-ctx.Done():
			t.Fatalf("%s: run still running 30 s after Ctrl-C", n.config)
		}
		cancel()
	}
	j.nodes = nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestShellCommands(t *testing.T) {
	got, err := shellCommands("./ccnode a --name \"Two Words\" \\\n  --x 'y z' # note\n\n# a comment line\n./ccnode b\n")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"./ccnode", "a", "--name", "Two Words", "--x", "y z"}, {"./ccnode", "b"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"./ccnode a | head", "./ccnode a > f", "X=$(./ccnode a)", "./ccnode a && ./ccnode b", "./ccnode a data/*.jsonl", "./ccnode 'a"} {
		if _, err := shellCommands(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}
