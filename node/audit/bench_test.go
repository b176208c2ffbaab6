package audit

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"

	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// BenchmarkAudit audits one region's export of n receipts (each with the
// bank's query signature, the region's receipt signature, the requester's
// acknowledgement and a consent from a pool of 1,000), anchored every
// 10,000 receipts. It reports receipts verified per second and the peak
// heap in use during the audit. The export is generated once per size and
// kept in the system temporary folder (about 2.3 KB per receipt):
//
//	go test -run XXX -bench 'Audit/receipts=1000000' -benchtime 1x -count 3 ./node/audit/
func BenchmarkAudit(b *testing.B) {
	for _, n := range []int{20_000, 200_000, 1_000_000} {
		b.Run(fmt.Sprintf("receipts=%d", n), func(b *testing.B) {
			path, snap := benchExport(b, n)
			var peak uint64
			var elapsed, cpu time.Duration
			for b.Loop() {
				stop := sampleHeap(&peak)
				cpu0 := cpuTime()
				start := time.Now()
				rep, err := Run(context.Background(), Inputs{Exports: []Source{FileSource(path)}}, snap,
					Options{Now: snap.TakenAt, AnchorDelay: time.Hour})
				elapsed += time.Since(start)
				cpu += cpuTime() - cpu0
				stop()
				if err != nil {
					b.Fatal(err)
				}
				if !rep.OK() || rep.Regions[0].Verified != uint64(n) {
					b.Fatalf("audit of the generated export: %d findings %v, verified %d", rep.Total, rep.ByRule, rep.Regions[0].Verified)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/elapsed.Seconds(), "receipts/s")
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
			if hwm := peakRSS(); hwm > 0 {
				b.ReportMetric(float64(hwm)/(1<<20), "peak-rss-MB")
			}
			// CPU time spent, so that a figure taken on a machine shared
			// with other work still says what one core does.
			b.ReportMetric(float64(n)*float64(b.N)/cpu.Seconds(), "receipts/cpu-s")
		})
	}
}

// peakRSS is the process's peak resident set (VmHWM) in bytes, 0 when
// unknown. It covers the whole process: generating an export that is not
// cached yet counts too.
func peakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sampleHeap records the largest heap in use (live and not yet swept
// objects) seen until stop is called. runtime/metrics does not stop the
// world as ReadMemStats would.
func sampleHeap(peak *uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for {
			metrics.Read(s)
			*peak = max(*peak, s[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

const benchBanks, benchConsents, benchCheckpointEvery = 48, 1000, 10_000

// benchExport generates (or reuses) an export of n receipts and the
// snapshot it audits against.
func benchExport(b *testing.B, n int) (string, *Snapshot) {
	b.Helper()
	dir := filepath.Join(os.TempDir(), "ccnode-audit-bench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf("sz-%d.v2.jsonl", n))
	snapPath := path + ".snapshot.json"
	if f, err := os.Open(snapPath); err == nil {
		defer f.Close()
		snap, err := ReadSnapshot(f)
		if err == nil {
			if _, err := os.Stat(path); err == nil {
				return path, snap
			}
		}
	}
	b.Logf("generating %d receipts into %s", n, path)
	start := time.Now()
	snap, err := generateExport(path, n)
	if err != nil {
		b.Fatal(err)
	}
	if err := writeSnapshotFile(snapPath, snap); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated in %s", time.Since(start).Round(time.Second))
	return path, snap
}

func writeSnapshotFile(path string, s *Snapshot) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := s.Write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// benchConsent makes the i-th consent document of a benchmark's exports,
// granted to grantee, signed by its enterprise and countersigned by its
// home region, and records its commitment in snap as active before start.
func benchConsent(snap *Snapshot, i int, grantee credit.BankID, home credit.RegionID, start time.Time) (credit.ConsentGrant, error) {
	u, err := credit.CompleteUSCC(fmt.Sprintf("9144030070%07d", i))
	if err != nil {
		return credit.ConsentGrant{}, err
	}
	// One authority, registered for the whole province, certifies every
	// enterprise of the benchmarks.
	caKey := key("bench-authority")
	var ca []byte
	for _, a := range snap.AuthorityRecords {
		ca = a.Cert
	}
	if ca == nil {
		if ca, err = credit.NewAuthorityCert("Bench Identity Authority", caKey, start.Add(-365*24*time.Hour), start.Add(5*365*24*time.Hour)); err != nil {
			return credit.ConsentGrant{}, err
		}
		snap.AddAuthority(credit.IdentityAuthority{ID: credit.AuthorityID(ca), Name: "Bench Identity Authority", Cert: ca, Region: home,
			Divisions: []string{"44"}, Status: credit.StatusActive, RegisteredAt: start.Add(-2 * time.Hour)})
	}
	ek := key("enterprise-" + string(u))
	leaf, err := credit.IssueEnterpriseCert(ca, caKey, u, "Enterprise "+string(u), ek.Public(), start.Add(-30*24*time.Hour), start.Add(365*24*time.Hour))
	if err != nil {
		return credit.ConsentGrant{}, err
	}
	g := credit.ConsentGrant{Version: credit.ConsentVersion, ID: fmt.Sprintf("consent-%06d", i), Subject: u, Grantee: grantee,
		Categories: []credit.Category{credit.Penalty, credit.Tax, credit.Judicial}, Purpose: credit.PurposeLoanApplication,
		ValidFrom: start.Add(-time.Hour), ValidUntil: start.Add(60 * 24 * time.Hour), Region: home}
	if err := g.SignEnterprise(ek, [][]byte{leaf}, start.Add(-2*time.Minute)); err != nil {
		return g, err
	}
	if err := g.Countersign(key(string(home))); err != nil {
		return g, err
	}
	c, err := g.Commitment()
	if err != nil {
		return g, err
	}
	snap.ConsentRecords[g.ID] = credit.ConsentCommitment{ID: g.ID, Commitment: c[:], Region: home, ValidFrom: g.ValidFrom,
		ValidUntil: g.ValidUntil, Status: credit.ConsentActive, RecordedAt: start.Add(-time.Minute)}
	return g, nil
}

func generateExport(path string, n int) (*Snapshot, error) {
	snap := NewSnapshot()
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	for _, r := range []credit.RegionID{sz, gz} {
		snap.AddRegion(credit.RegionMember{ID: r, Name: string(r), PubKey: pub(string(r)), Status: credit.StatusActive, UpdatedAt: start.Add(-time.Hour)})
	}
	banks := make([]credit.BankID, benchBanks)
	for i := range banks {
		banks[i] = credit.BankID(fmt.Sprintf("bank-%02d", i))
		snap.AddBank(credit.BankMember{ID: banks[i], Region: gz, PubKey: pub(string(banks[i])), Status: credit.StatusActive, UpdatedAt: start.Add(-time.Hour)})
	}
	bankKeys := make(map[credit.BankID][]byte, len(banks))
	for _, id := range banks {
		bankKeys[id] = key(string(id))
	}
	docs := make([]credit.ConsentGrant, benchConsents)
	for i := range docs {
		g, err := benchConsent(snap, i, banks[i%len(banks)], sz, start)
		if err != nil {
			return nil, err
		}
		docs[i] = g
	}
	when := func(i int) time.Time { return start.Add(time.Duration(i) * 100 * time.Millisecond) }

	f, err := os.Create(path + ".tmp")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := credit.NewExportWriter(bw, credit.ExportHeader{Kind: credit.ExportAnswered, Region: sz, Size: uint64(n), ExportedAt: when(n)})
	if err != nil {
		return nil, err
	}
	type chunk struct {
		lines []credit.ExportLine
		err   error
		done  chan struct{}
	}
	const chunkSize = 1000
	szKey, gzKey := key("sz"), key("gz")
	gen := func(c *chunk, from, to int) {
		defer close(c.done)
		for i := from; i < to; i++ {
			doc := &docs[i%len(docs)]
			at := when(i)
			q := credit.Query{Version: 1, Bank: doc.Grantee, Subject: doc.Subject, Categories: []credit.Category{credit.Penalty, credit.Tax},
				Purpose: doc.Purpose, ConsentID: doc.ID, Consent: doc, Nonce: fmt.Sprintf("nonce-%09d", i), Time: at.Add(-time.Second)}
			if c.err = q.Sign(bankKeys[doc.Grantee]); c.err != nil {
				return
			}
			id, err := credit.ReceiptID(sz, &q)
			if err != nil {
				c.err = err
				return
			}
			var seed [8]byte
			binary.BigEndian.PutUint64(seed[:], uint64(i))
			d := sha256.Sum256(seed[:])
			r := credit.Receipt{Version: 1, ID: id, Query: q, Requester: gz, Answerer: sz, Categories: q.Categories,
				ReportDigest: d[:], RecordCount: 40 + i%100, Time: at}
			if c.err = r.Sign(szKey); c.err != nil {
				return
			}
			ack, err := credit.NewAck(&r, gz, at.Add(100*time.Millisecond), gzKey)
			if err != nil {
				c.err = err
				return
			}
			leaf, err := r.LeafBytes()
			if err != nil {
				c.err = err
				return
			}
			c.lines = append(c.lines, credit.ExportLine{Index: uint64(i), Receipt: leaf, Acks: []credit.Ack{ack}})
		}
	}
	order := make(chan *chunk, 4*runtime.GOMAXPROCS(0))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	go func() {
		defer close(order)
		for from := 0; from < n; from += chunkSize {
			c := &chunk{done: make(chan struct{})}
			order <- c
			sem <- struct{}{}
			go func(from int) {
				defer func() { <-sem }()
				gen(c, from, min(from+chunkSize, n))
			}(from)
		}
	}()
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	rng := rf.NewEmptyRange(0)
	size := 0
	var firstErr error
	for c := range order {
		<-c.done
		if firstErr != nil {
			continue
		}
		if c.err != nil {
			firstErr = c.err
			continue
		}
		for _, l := range c.lines {
			if err := w.Write(l); err != nil {
				firstErr = err
				break
			}
			h := leafHash(l.Receipt)
			if err := rng.Append(h[:], nil); err != nil {
				firstErr = err
				break
			}
			size++
			if size%benchCheckpointEvery == 0 || size == n {
				root, err := rng.GetRootHash(nil)
				if err != nil {
					firstErr = err
					break
				}
				cp := credit.Checkpoint{Region: sz, Size: uint64(size), Root: root}
				if err := cp.Sign("test", szKey); err != nil {
					firstErr = err
					break
				}
				snap.AddCheckpoint(credit.AnchoredCheckpoint{Checkpoint: cp, AnchoredAt: when(size - 1).Add(time.Minute), TxID: "tx-" + strconv.Itoa(size)})
			}
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	snap.TakenAt = when(n).Add(2 * time.Minute)
	return snap, os.Rename(path+".tmp", path)
}
