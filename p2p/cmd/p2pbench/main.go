// Command p2pbench measures the report protocol between two regions in
// separate processes on loopback: a ~183-record (~40 KB) slice per answer
// through p2p.Server and p2p.Client, with the work an answering node does
// around the transport (the bank's signature checked, the slice's digest,
// the receipt signed and kept) and the requester's (the receipt's
// signature and the digest over the records received) included. It starts
// the answering region by re-executing itself, then asks at 1, 16 and 64
// requests in flight over TCP and QUIC and prints p50/p99 latency and
// answers per second, run by run and as medians.
//
// With -bare it also measures, alternately with the full exchange and over
// the same connection, the transport's floor: the same hosts, security,
// muxer, one stream per exchange, the same request bytes and the same
// ~40 KB answer bytes (one real answer encoded once at start), but no
// application work at all (no signature, digest, encoding, decoding or
// store read on either side).
//
//	go run ./p2p/cmd/p2pbench -runs 5
//	go run ./p2p/cmd/p2pbench -runs 3 -bare -inflight 1,16,64
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/p2p"
	"github.com/prdcredit/ccnode/p2p/pb"
)

const networkID = "bench"

// fixture is what the parent hands the answering child.
type fixture struct {
	Requester credit.RegionMember  `json:"requester"`
	Answerer  credit.RegionMember  `json:"answerer"`
	AnsKey    []byte               `json:"answerer_key"`
	Bank      credit.BankMember    `json:"bank"`
	Consent   *credit.ConsentGrant `json:"consent"`
	Subject   credit.USCC          `json:"subject"`
	Records   int                  `json:"records"`
	// BankKey lets the child make one real answer, whose bytes the bare
	// mode sends (a synthetic bank's key, made for this run).
	BankKey []byte `json:"bank_key"`
}

// bareProtocol is the bare mode's protocol: the report protocol's stream
// lifecycle with canned bytes.
const bareProtocol = "/ccnode/" + networkID + "/bench-bare/1.0.0"

// Exchange modes of a run.
const (
	modeFull = "full"
	modeBare = "bare"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "p2pbench:", err)
		os.Exit(1)
	}
}

func run() error {
	child := flag.String("child", "", "internal: serve as the answering region from this fixture file")
	transports := flag.String("transports", "tcp,quic", "transports to measure: tcp, quic")
	inflight := flag.String("inflight", "1,16,64", "requests in flight")
	runs := flag.Int("runs", 3, "runs per setting (medians reported)")
	records := flag.Int("records", 183, "records per answer")
	perLevel := flag.Int("n", 0, "requests per measurement (default: 2000 at 1 in flight, 15000 otherwise)")
	ack := flag.Bool("ack", false, "also send and check the signed ack of every answer")
	security := flag.String("security", p2p.SecurityTLS, "handshake of TCP connections: tls (the host's default) or noise (QUIC always uses TLS 1.3)")
	gogc := flag.Int("gogc", 100, "garbage collector target percentage (debug.SetGCPercent) in both processes; Go's default is 100")
	cpuprofile := flag.String("cpuprofile", "", "write CPU profiles of both processes, one pair per transport and run, to files starting with this path")
	bare := flag.Bool("bare", false, "also measure the transport alone (same hosts, streams and bytes, no application work), alternately with the full exchange")
	flag.Parse()
	debug.SetGCPercent(*gogc)
	if *child != "" {
		return serve(*child, flag.Arg(0), *security, *cpuprofile)
	}
	fmt.Printf("p2pbench: load average %s", loadavg())
	var levels []int
	for _, s := range strings.Split(*inflight, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-inflight %q", *inflight)
		}
		levels = append(levels, n)
	}
	fmt.Printf("p2pbench: %d records per answer, %d runs, ack=%v, security=%s, gogc=%d, bare=%v\n", *records, *runs, *ack, *security, *gogc, *bare)
	modes := []string{modeFull}
	if *bare {
		modes = append(modes, modeBare)
	}
	for _, tr := range strings.Split(*transports, ",") {
		listen := map[string]string{"tcp": "/ip4/127.0.0.1/tcp/0", "quic": "/ip4/127.0.0.1/udp/0/quic-v1"}[tr]
		if listen == "" {
			return fmt.Errorf("unknown transport %q", tr)
		}
		type key struct {
			mode  string
			level int
		}
		results := map[key][]stats{}
		for r := 0; r < *runs; r++ {
			prof := ""
			if *cpuprofile != "" {
				prof = fmt.Sprintf("%s-%s-run%d", *cpuprofile, tr, r+1)
			}
			// The order of the modes alternates from run to run, so that
			// neither always runs first on a warm or a cold machine.
			order := slices.Clone(modes)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			res, err := oneRun(listen, *security, *gogc, *records, levels, order, *perLevel, *ack, prof)
			if err != nil {
				return err
			}
			for i, l := range levels {
				for j, mode := range order {
					s := res[i*len(order)+j]
					results[key{mode, l}] = append(results[key{mode, l}], s)
					fmt.Printf("  %-4s %-4s run %d  %2d in flight: p50 %6.3f ms  p99 %6.3f ms  %7.0f answers/s  %.3f ms CPU/answer  (%d ok, %d failed)\n",
						tr, mode, r+1, l, ms(s.p50), ms(s.p99), s.rate, ms(s.cpu), s.ok, s.failed)
				}
			}
		}
		for _, l := range levels {
			for _, mode := range modes {
				rs := results[key{mode, l}]
				fmt.Printf("%-4s %-4s %2d in flight, median of %d: p50 %.3f ms  p99 %.3f ms  %.0f answers/s  %.3f ms CPU/answer (both processes)\n", tr, mode, l, len(rs),
					ms(median(rs, func(s stats) float64 { return float64(s.p50) })),
					ms(median(rs, func(s stats) float64 { return float64(s.p99) })),
					median(rs, func(s stats) float64 { return s.rate }),
					ms(median(rs, func(s stats) float64 { return float64(s.cpu) })))
			}
			if len(modes) == 2 {
				// Ratios run by run (each pair shared one run's load), then
				// their median.
				full, bare := results[key{modeFull, l}], results[key{modeBare, l}]
				var cpu, rate []stats
				for i := range full {
					cpu = append(cpu, stats{rate: float64(full[i].cpu) / float64(bare[i].cpu)})
					rate = append(rate, stats{rate: bare[i].rate / full[i].rate})
				}
				get := func(s stats) float64 { return s.rate }
				fmt.Printf("%-4s      %2d in flight, full against bare, median of %d runs: CPU per answer %.2fx, answers/s %.2fx lower; CPU of the application work %.3f ms per answer\n", tr, l, len(full),
					median(cpu, get), median(rate, get),
					ms(median(full, func(s stats) float64 { return float64(s.cpu) })-median(bare, func(s stats) float64 { return float64(s.cpu) })))
			}
		}
	}
	return nil
}

func ms[T ~int64 | ~float64](d T) float64 { return float64(d) / 1e6 }

type stats struct {
	p50, p99   time.Duration
	rate       float64
	ok, failed int
	// cpu is the CPU time (user+system) of both processes per answer: the
	// figure that does not depend on what else the machine runs.
	cpu time.Duration
}

// cpuTime reads a process's user+system CPU time from /proc (clock ticks
// of 10 ms, plenty over thousands of answers).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}

func median(rs []stats, f func(stats) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

// oneRun starts an answering child, measures every level and stops it.
// With prof set, the requester's CPU profile goes to prof-requester.pprof
// and the answering child's to prof-answerer.pprof, both covering the
// measured levels and the warm-up.
//
// Every level is measured once in each of modes, in that order; the
// results are level by level, mode by mode.
func oneRun(listen, security string, gogc, records int, levels []int, modes []string, perLevel int, ack bool, prof string) ([]stats, error) {
	dir, err := os.MkdirTemp("", "p2pbench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	req, err := newRegion("440300", "4403")
	if err != nil {
		return nil, err
	}
	ans, err := newRegion("440100", "4401")
	if err != nil {
		return nil, err
	}
	bank, err := newBank("bank-bench", "440300")
	if err != nil {
		return nil, err
	}
	subject, err := credit.CompleteUSCC("91440100MA5FABCD1")
	if err != nil {
		return nil, err
	}
	now := time.Now()
	cats := credit.AllCategories()
	g, err := newConsent("consent-bench-1", subject, bank.Member.ID, cats, ans, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		return nil, err
	}
	fx := fixture{Requester: req.Member, Answerer: ans.Member, AnsKey: ans.Key, Bank: bank.Member, Consent: g, Subject: subject, Records: records, BankKey: bank.Key}
	fxPath := filepath.Join(dir, "fixture.json")
	b, _ := json.Marshal(fx)
	if err := os.WriteFile(fxPath, b, 0o600); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"-child", fxPath, "-security", security, "-gogc", strconv.Itoa(gogc)}
	if prof != "" {
		args = append(args, "-cpuprofile", prof+"-answerer.pprof")
	}
	cmd := exec.Command(self, append(args, listen)...)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		stdin.Close() // the child exits when its stdin closes
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("child: %w", err)
	}
	ansMember := ans.Member
	ansMember.Addrs = strings.Fields(line)
	members := p2p.NewMembership(nil, nil)
	h, err := p2p.NewHost(p2p.HostConfig{Key: req.Key, Members: members, Security: security})
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if err := members.SetMembers([]credit.RegionMember{req.Member, ansMember}); err != nil {
		return nil, err
	}
	c, err := p2p.NewClient(p2p.ClientConfig{Host: h, NetworkID: networkID, Members: members, Timeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	rq := &requester{client: c, region: req, answerer: ans.Member, ack: ack}
	if prof != "" {
		stop, err := startProfile(prof + "-requester.pprof")
		if err != nil {
			return nil, err
		}
		defer stop()
	}
	ansPeer, ok := members.Peer(ans.Member.ID)
	if !ok {
		return nil, fmt.Errorf("answering region %s has no peer", ans.Member.ID)
	}
	var out []stats
	// Warm up: connection, protocol negotiation, caches.
	if _, err := measure(fullAsk(rq, bank, g, cats), 4, 200); err != nil {
		return nil, err
	}
	if slices.Contains(modes, modeBare) {
		if _, err := measure(bareAsk(h, ansPeer, bank, g, cats), 4, 200); err != nil {
			return nil, err
		}
	}
	for _, l := range levels {
		n := perLevel
		if n == 0 {
			n = 15000
			if l == 1 {
				n = 2000
			}
		}
		for _, mode := range modes {
			ask := fullAsk(rq, bank, g, cats)
			if mode == modeBare {
				ask = bareAsk(h, ansPeer, bank, g, cats)
			}
			// The bank signs its queries, not the node: they are made
			// before the clock and the CPU counters start.
			do, err := ask(n)
			if err != nil {
				return nil, err
			}
			c0 := cpuTime(os.Getpid()) + cpuTime(cmd.Process.Pid)
			s, err := measure(func(int) (func(int) error, error) { return do, nil }, l, n)
			if err != nil {
				return nil, err
			}
			s.cpu = (cpuTime(os.Getpid()) + cpuTime(cmd.Process.Pid) - c0) / time.Duration(s.ok)
			out = append(out, s)
		}
	}
	return out, nil
}

// asker prepares n exchanges (the queries signed by the bank) and returns
// the function that runs exchange i.
type asker func(n int) (func(i int) error, error)

// signQueries makes n queries the bank signed.
func signQueries(bank bankKey, g *credit.ConsentGrant, cats []credit.Category, n int) ([]*credit.Query, error) {
	qs := make([]*credit.Query, n)
	for i := range qs {
		q, err := newQuery(bank, g, cats, time.Now())
		if err != nil {
			return nil, err
		}
		qs[i] = q
	}
	return qs, nil
}

// fullAsk is the whole exchange: the query encoded once, Client.Ask, and
// the requester's checks of the answer (and its ack with -ack).
func fullAsk(rq *requester, bank bankKey, g *credit.ConsentGrant, cats []credit.Category) asker {
	return func(n int) (func(int) error, error) {
		qs, err := signQueries(bank, g, cats, n)
		if err != nil {
			return nil, err
		}
		return func(i int) error { return rq.ask(context.Background(), qs[i]) }, nil
	}
}

// bareAsk is the report protocol's stream lifecycle (Client.Ask's) with
// no work around it: the request's bytes are encoded before the
// clock starts and the answer's are read and dropped.
func bareAsk(h host.Host, p peer.ID, bank bankKey, g *credit.ConsentGrant, cats []credit.Category) asker {
	return func(n int) (func(int) error, error) {
		qs, err := signQueries(bank, g, cats, n)
		if err != nil {
			return nil, err
		}
		frames := make([][]byte, n)
		for i, q := range qs {
			qj, _, err := q.CanonicalAndDigest()
			if err != nil {
				return nil, err
			}
			frames[i] = p2p.EncodeRequest("440300", qj)
		}
		return func(i int) error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := h.NewStream(ctx, p, bareProtocol)
			if err != nil {
				return err
			}
			stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
			defer stop()
			dl, _ := ctx.Deadline()
			_ = st.SetDeadline(dl)
			if _, err := st.Write(frames[i]); err != nil {
				_ = st.Reset()
				return err
			}
			_ = st.CloseWrite()
			if _, err := p2p.ReadFrame(st, p2p.MaxResponseFrame); err != nil {
				_ = st.Reset()
				return err
			}
			for {
				b, err := p2p.ReadFrame(st, p2p.MaxChunkFrame)
				if err != nil {
					_ = st.Reset()
					return err
				}
				// The last chunk's flag is its final bytes (field 2, true).
				if bytes.HasSuffix(b, []byte{0x10, 0x01}) {
					break
				}
			}
			return st.Close()
		}, nil
	}
}

// measure prepares n exchanges with ask and runs them, inflight at a time.
func measure(ask asker, inflight, n int) (stats, error) {
	do, err := ask(n)
	if err != nil {
		return stats{}, err
	}
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < inflight; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				err := do(i)
				lat[i] = time.Since(t0)
				if err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
					lat[i] = -1
				}
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	ok := slices.DeleteFunc(lat, func(d time.Duration) bool { return d < 0 })
	if len(ok) == 0 {
		return stats{}, errors.Join(errors.New("no answers"), firstErr)
	}
	if firstErr != nil {
		fmt.Fprintln(os.Stderr, "p2pbench: first failure:", firstErr)
	}
	slices.Sort(ok)
	return stats{
		p50: ok[len(ok)/2], p99: ok[len(ok)*99/100], rate: float64(len(ok)) / wall.Seconds(),
		ok: len(ok), failed: int(failed.Load()),
	}, nil
}

// serve is the answering child: it prints its listen addresses on one line
// and serves until its stdin closes.
func serve(fxPath, listen, security, prof string) error {
	if prof != "" {
		stop, err := startProfile(prof)
		if err != nil {
			return err
		}
		defer stop()
	}
	b, err := os.ReadFile(fxPath)
	if err != nil {
		return err
	}
	var fx fixture
	if err := json.Unmarshal(b, &fx); err != nil {
		return err
	}
	recs := records(fx.Subject, fx.Records)
	members := p2p.NewMembership(nil, nil)
	if err := members.SetMembers([]credit.RegionMember{fx.Requester, fx.Answerer}); err != nil {
		return err
	}
	h, err := p2p.NewHost(p2p.HostConfig{Key: fx.AnsKey, Listen: []string{listen}, Members: members, Security: security})
	if err != nil {
		return err
	}
	defer h.Close()
	an := &answerer{region: fx.Answerer.ID, key: fx.AnsKey, bank: fx.Bank.PubKey, requester: fx.Requester.PubKey, records: recs}
	srv, err := p2p.NewServer(p2p.ServerConfig{NetworkID: networkID, Handler: an})
	if err != nil {
		return err
	}
	srv.Register(h)
	defer srv.Close()
	answer, err := bareAnswer(an, fx)
	if err != nil {
		return err
	}
	h.SetStreamHandler(bareProtocol, func(st network.Stream) {
		// The report handler's lifecycle: deadline, read, CloseRead,
		// write, Close.
		_ = st.SetDeadline(time.Now().Add(10 * time.Second))
		_, err := p2p.ReadFrame(st, p2p.MaxRequestFrame)
		_ = st.CloseRead()
		if err != nil {
			_ = st.Reset()
			return
		}
		if _, err := st.Write(answer); err != nil {
			_ = st.Reset()
			return
		}
		_ = st.Close()
	})
	var addrs []string
	for _, a := range h.Addrs() {
		addrs = append(addrs, a.String())
	}
	fmt.Println(strings.Join(addrs, " "))
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// bareAnswer is one real answer's frames (the Response and one Chunk, as
// the server sends a ~40 KB slice): the bytes the bare mode sends for
// every exchange.
func bareAnswer(an *answerer, fx fixture) ([]byte, error) {
	q, err := newQuery(bankKey{Member: fx.Bank, Key: fx.BankKey}, fx.Consent, credit.AllCategories(), time.Now())
	if err != nil {
		return nil, err
	}
	leaf, err := an.receipt(&p2p.Request{Requester: fx.Requester.ID, Query: *q})
	if err != nil {
		return nil, fmt.Errorf("the bare mode's answer: %w", err)
	}
	chunk := &pb.Chunk{Last: true}
	for _, r := range an.records {
		chunk.Records = append(chunk.Records, &pb.Record{Source: r.Source, SourceId: r.SourceID, Category: string(r.Category), Date: string(r.Date), Attrs: r.Attrs})
	}
	var frames bytes.Buffer
	for _, m := range []proto.Message{&pb.Response{Receipt: leaf, LeafIndex: 1}, chunk} {
		b, err := proto.Marshal(m)
		if err != nil {
			return nil, err
		}
		if err := p2p.WriteFrame(&frames, b); err != nil {
			return nil, err
		}
	}
	return frames.Bytes(), nil
}

// startProfile starts the CPU profiler writing to path; the returned
// function stops it and closes the file.
func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile %s: %w", path, err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown\n"
	}
	return string(b)
}
