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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// README sections drive the journey tests: a section's sh blocks, each
// preceded by a journey marker, are run in order, command by command, as
// separate processes of the built binary. Markers without a block are steps
// the reader does by hand (watch `status`, press Ctrl-C). A section runs
// from its heading to the next heading of any level, so a subsection (the
// Fabric variant of a journey) is a section of its own.
const (
	threeNodesSection = "## Three nodes on one machine"
	changesSection    = "### Changing the consortium"
	markCommands      = "<!-- journey -->"
	markWait          = "<!-- journey: wait until every node has anchored its receipts -->"
	markStop          = "<!-- journey: stop the nodes -->"
	// The backup and restore steps (being built elsewhere) go at this
	// marker in the README; the test runs whatever sh block follows it.
	markBackup = "<!-- journey: backup and restore of one node go here -->"
	// Ctrl-C in a node's terminal, then the block's `run` again.
	markRestart = "<!-- journey: stop the node and run it again -->"
)

// journeyStep is one marker of the section and the commands of its block.
type journeyStep struct {
	mark     string
	line     int // of the marker in README.md
	commands [][]string
}

var (
	headingLine = regexp.MustCompile(`^#{1,6} `)
	// The known markers, and whether a block must follow (one may follow
	// any).
	blockRequired = map[string]bool{markCommands: true, markRestart: true, markWait: false, markStop: false, markBackup: false}
)

// readJourney extracts a section's steps from the README.
func readJourney(t *testing.T, readme, section string) []journeyStep {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	start := slices.Index(lines, section) + 1
	if start == 0 {
		t.Fatalf("%s has no section %q", readme, section)
	}
	var steps []journeyStep
	inFence := false
	for i := start; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "```") {
			inFence = !inFence
		}
		if !inFence && headingLine.MatchString(lines[i]) {
			break
		}
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "<!-- journey") {
			continue
		}
		needsBlock, known := blockRequired[l]
		if !known {
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
		} else if needsBlock {
			t.Fatalf("README.md:%d: %s is not followed by a ```sh block", i+1, l)
		}
		steps = append(steps, st)
	}
	if len(steps) == 0 {
		t.Fatalf("%s: section %q has no journey markers", readme, section)
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
	// members is what a query's report must show of each region as the
	// commands change the consortium: StatusOK (a part with records) or
	// StatusRetired.
	members map[credit.RegionID]string
	// events is every command run and node restarted, with its times, for
	// a test to hold what happened meanwhile against.
	events []journeyEvent
}

// journeyEvent is one command of the README (what as run returns it) or a
// restart ("restart"), from just before it began to just after it ended.
type journeyEvent struct {
	line       int
	what       string
	args       []string
	out        string
	start, end time.Time
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
	ran := map[string]int{}
	for _, st := range readJourney(t, "../../README.md", threeNodesSection) {
		for _, what := range j.step(st) {
			ran[what]++
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

// step does one marker's step: what the test does for the reader (wait,
// stop, restart), then the block's commands. It returns what each command
// was, for the test's tally.
func (j *journey) step(st journeyStep) []string {
	t := j.t
	switch st.mark {
	case markWait:
		j.waitAnchored()
	case markStop:
		j.stopNodes()
	case markBackup:
		t.Logf("README.md:%d: backup and restore: %d commands", st.line, len(st.commands))
	case markRestart:
		for _, args := range st.commands {
			cfg := flagValue(args, "--config")
			if len(args) < 2 || args[1] != "run" || cfg == "" {
				t.Fatalf("README.md:%d: %q: a restart's block runs nodes (./ccnode run --config FILE)", st.line, args)
			}
			j.stopNode(cfg)
		}
	}
	var ran []string
	for _, args := range st.commands {
		ran = append(ran, j.run(st.line, args))
	}
	return ran
}

// flagValue is the value of flag in a command's words, or "".
func flagValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

// newJourney prepares a journey in a fresh folder: the built binary, the
// environment without the runner's CCNODE_ settings, and copies of the
// repository's configs listening on port 0.
func newJourney(t *testing.T) *journey {
	j := &journey{t: t, bin: testkit.CCNode(t), dir: t.TempDir(), samples: map[string]node.Config{},
		// The three regions of the README's bootstrap file.
		members: map[credit.RegionID]string{"440300": node.StatusOK, "440100": node.StatusOK, "440400": node.StatusOK}}
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
	if len(args) > 1 && !strings.HasPrefix(args[1], "-") && slices.Contains([]string{"consortium", "bank", "consent", "receipts", "authority", "region", "keys"}, what) {
		what += " " + args[1]
	}
	if what == "audit" && len(args) > 1 && args[1] == "snapshot" {
		what = "audit snapshot"
	}
	ev := journeyEvent{line: line, what: what, args: args, start: time.Now()}
	defer func() { ev.end = time.Now(); j.events = append(j.events, ev) }()
	if what == "run" {
		j.startNode(line, args)
		return what
	}
	var out string
	var err error
	if what == "query" {
		// A region's view may lag the fresh consent or membership change by
		// a moment (consent_not_found, "retrying helps"): the reader asks
		// again.
		err = testkit.Poll(30*time.Second, func() error {
			if out, err = j.exec(args); err != nil {
				return err
			}
			return j.checkQuery(out)
		})
	} else {
		out, err = j.exec(args)
	}
	ev.out = out
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
	case "region propose", "region approve", "region retire":
		j.followVote(line, what, out)
	case "audit":
		if !strings.Contains(out, "result: no findings") {
			t.Fatalf("audit found something:\n%s", out)
		}
		for r := range j.members {
			if !regexp.MustCompile(`(?m)^` + string(r) + `\s+[1-9]`).MatchString(out) {
				t.Fatalf("audit report has no receipts of region %s:\n%s", r, out)
			}
		}
	}
	return what
}

// followVote reads what a region command printed and, when its vote
// decided, what later queries must show of the region.
func (j *journey) followVote(line int, what, out string) {
	t := j.t
	var p credit.RegionProposal
	if what == "region propose" {
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatalf("README.md:%d: %s printed %s: %v", line, what, out, err)
		}
	} else {
		var v credit.RegionVote
		if err := json.Unmarshal([]byte(out), &v); err != nil || !v.Counted {
			t.Fatalf("README.md:%d: %s printed %s (%v), want a counted vote", line, what, out, err)
		}
		p = v.Proposal
	}
	if want := credit.Majority(j.active()); p.Needed != want {
		t.Fatalf("README.md:%d: %s: %d votes needed, want %d of %d active regions", line, what, p.Needed, want, j.active())
	}
	if p.Status != credit.ProposalAccepted {
		return
	}
	switch p.Kind {
	case credit.ProposalJoin:
		j.members[p.Region.ID] = node.StatusOK
	case credit.ProposalRetire:
		j.members[p.Region.ID] = node.StatusRetired
	}
}

// active is how many regions the journey has made active.
func (j *journey) active() int {
	n := 0
	for _, st := range j.members {
		if st == node.StatusOK {
			n++
		}
	}
	return n
}

// runToQuery runs the README's journey up to its wait step (three nodes
// running, the bank's first query answered) and returns that query's
// command and the index of the first step not run.
func (j *journey) runToQuery(steps []journeyStep) ([]string, int) {
	var query []string
	i := 0
	for ; i < len(steps) && steps[i].mark == markCommands; i++ {
		for k, what := range j.step(steps[i]) {
			if what == "query" {
				query = steps[i].commands[k]
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

// checkQuery wants a consolidated report as the consortium now stands:
// records from each active region, each part answered, and each retired
// region reported retired.
func (j *journey) checkQuery(out string) error {
	rows := map[credit.RegionID][]string{}
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
			rows[credit.RegionID(f[0])] = f[1:3]
		}
	}
	for r, want := range j.members {
		row := rows[r]
		switch {
		case row == nil:
			return fmt.Errorf("no part of region %s:\n%s", r, out)
		case row[0] != want:
			return fmt.Errorf("region %s's part is %s, want %s:\n%s", r, row[0], want, out)
		case want == node.StatusOK && (row[1] == "0" || strings.Trim(row[1], "0123456789") != ""):
			return fmt.Errorf("no records answered by region %s:\n%s", r, out)
		}
		delete(rows, r)
	}
	for r := range rows {
		return fmt.Errorf("a part of region %s, not a member:\n%s", r, out)
	}
	return nil
}

// startNode starts `ccnode run` as a terminal would, reads the addresses
// it prints, and points later commands (and the configs that name its
// served ledger) at them.
func (j *journey) startNode(line int, args []string) {
	t := j.t
	cfgPath := flagValue(args, "--config")
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
	// The addresses come on a goroutine, which then waits for the
	// process, so that a node that never prints them, or exits, fails the
	// test instead of holding it (the cleanup waits on n.done).
	type printed struct {
		addrs []string
		err   error
	}
	ch := make(chan printed, 1)
	go func() {
		var p printed
		for _, prefix := range want {
			l, err := br.ReadString('\n')
			_, u, ok := strings.Cut(strings.TrimSpace(l), prefix)
			if err != nil || !ok {
				p.err = fmt.Errorf("printed %q, want %s...: %v", l, prefix, err)
				break
			}
			p.addrs = append(p.addrs, u)
		}
		ch <- p
		io.Copy(io.Discard, br)
		n.done <- cmd.Wait()
	}()
	var p printed
	select {
	case p = <-ch:
	case <-time.After(2 * time.Minute):
		p.err = errors.New("printed no addresses within 2 minutes")
	}
	if p.err != nil {
		cmd.Process.Kill() // the cleanup logs the node's log
		t.Fatalf("README.md:%d: ccnode %s %v", line, strings.Join(args, " "), p.err)
	}
	got := p.addrs
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
	for i := len(j.nodes) - 1; i >= 0; i-- {
		j.interrupt(j.nodes[i])
	}
	j.nodes = nil
}

// stopNode interrupts the node run with config as Ctrl-C does, wants it to
// exit cleanly, and forgets its addresses, so that later commands reach
// the node started next with that config.
func (j *journey) stopNode(config string) {
	t := j.t
	k := slices.IndexFunc(j.nodes, func(n *journeyNode) bool { return n.config == config })
	if k < 0 {
		t.Fatalf("no node of %s is running", config)
	}
	sample := j.samples[config]
	if sample.Ledger.ServeAddr != "" {
		// The other nodes' configs name the address it served on.
		t.Fatalf("%s serves the ledger: the journey does not restart it", config)
	}
	ev := journeyEvent{what: "stop", args: []string{config}, start: time.Now()}
	j.interrupt(j.nodes[k])
	ev.end = time.Now()
	j.events = append(j.events, ev)
	j.nodes = slices.Delete(j.nodes, k, k+1)
	var subst []string
	for p := 0; p < len(j.subst); p += 2 {
		if old := j.subst[p]; old != sample.HTTP.Addr && old != "http://"+sample.Admin.Addr {
			subst = append(subst, j.subst[p], j.subst[p+1])
		}
	}
	j.subst = subst
}

// interrupt sends n Ctrl-C's signal and wants it to exit cleanly.
func (j *journey) interrupt(n *journeyNode) {
	t := j.t
	if err := n.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-n.done:
		n.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("%s: run exited after Ctrl-C: %v", n.config, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: run still running 30 s after Ctrl-C", n.config)
	}
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
