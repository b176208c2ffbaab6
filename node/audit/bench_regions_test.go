package audit

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// BenchmarkAuditRegions audits what an auditor of the consortium is given:
// the answered export of each of three regions and the received export of
// each, for queries consolidated across the three regions. Each query, by
// one of 16 banks of each region, is answered by every region: the bank's
// signature is carried by three receipts, and each receipt answered for
// another region is acknowledged by it and held in both regions' exports.
// n is the number of receipts in the answered exports together (n/3
// queries); the received exports hold 2n/3 lines more. It reports answered
// receipts per second and per CPU-second and the peak heap:
//
//	go test -run XXX -bench 'AuditRegions' -benchtime 1x -count 3 ./node/audit/
func BenchmarkAuditRegions(b *testing.B) {
	for _, n := range []int{30_000} {
		b.Run(fmt.Sprintf("receipts=%d", n), func(b *testing.B) {
			srcs, snap := benchRegionExports(b, n)
			var peak uint64
			var elapsed, cpu time.Duration
			for b.Loop() {
				stop := sampleHeap(&peak)
				cpu0 := cpuTime()
				start := time.Now()
				rep, err := Run(context.Background(), Inputs{Exports: srcs}, snap, Options{Now: snap.TakenAt, AnchorDelay: time.Hour})
				elapsed += time.Since(start)
				cpu += cpuTime() - cpu0
				stop()
				if err != nil {
					b.Fatal(err)
				}
				var verified uint64
				for _, r := range rep.Regions {
					verified += r.Verified
				}
				if !rep.OK() || verified != uint64(n) || rep.Received != uint64(2*n/3) {
					b.Fatalf("audit of the generated exports: %d findings %v, verified %d, received %d", rep.Total, rep.ByRule, verified, rep.Received)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/elapsed.Seconds(), "receipts/s")
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(n)*float64(b.N)/cpu.Seconds(), "receipts/cpu-s")
		})
	}
}

var benchRegions = []credit.RegionID{"sz", "gz", "sh"}

// benchRegionExports generates (or reuses, from the system temporary
// folder) the exports of BenchmarkAuditRegions and their snapshot.
func benchRegionExports(b *testing.B, n int) ([]Source, *Snapshot) {
	b.Helper()
	dir := filepath.Join(os.TempDir(), "ccnode-audit-bench", fmt.Sprintf("regions-%d.v2", n))
	var srcs []Source
	for _, r := range benchRegions {
		srcs = append(srcs, FileSource(filepath.Join(dir, string(r)+"-answered.jsonl")), FileSource(filepath.Join(dir, string(r)+"-received.jsonl")))
	}
	snapPath := filepath.Join(dir, "snapshot.json")
	if f, err := os.Open(snapPath); err == nil {
		defer f.Close()
		if snap, err := ReadSnapshot(f); err == nil {
			return srcs, snap
		}
	}
	b.Logf("generating %d receipts into %s", n, dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	snap, err := generateRegionExports(dir, n)
	if err != nil {
		b.Fatal(err)
	}
	if err := writeSnapshotFile(snapPath+".tmp", snap); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(snapPath+".tmp", snapPath); err != nil {
		b.Fatal(err)
	}
	return srcs, snap
}

type benchExportFile struct {
	f   *os.File
	bw  *bufio.Writer
	w   *credit.ExportWriter
	rng *compact.Range
	n   int
}

func generateRegionExports(dir string, n int) (*Snapshot, error) {
	queries := n / len(benchRegions)
	snap := NewSnapshot()
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	when := func(i int) time.Time { return start.Add(time.Duration(i) * 100 * time.Millisecond) }
	for _, r := range benchRegions {
		snap.AddRegion(credit.RegionMember{ID: r, Name: string(r), PubKey: pub(string(r)), Status: credit.StatusActive, UpdatedAt: start.Add(-time.Hour)})
	}
	var banks []credit.BankID
	bankRegion := map[credit.BankID]credit.RegionID{}
	for _, r := range benchRegions {
		for i := range 16 {
			id := credit.BankID(fmt.Sprintf("%s-bank-%02d", r, i))
			banks = append(banks, id)
			bankRegion[id] = r
			snap.AddBank(credit.BankMember{ID: id, Region: r, PubKey: pub(string(id)), Status: credit.StatusActive, UpdatedAt: start.Add(-time.Hour)})
		}
	}
	docs := make([]credit.ConsentGrant, 300)
	for i := range docs {
		g, err := benchConsent(snap, i, banks[i%len(banks)], benchRegions[i%len(benchRegions)], start)
		if err != nil {
			return nil, err
		}
		docs[i] = g
	}
	open := func(r credit.RegionID, kind credit.ExportKind, size int) (*benchExportFile, error) {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%s.jsonl", r, kind)))
		if err != nil {
			return nil, err
		}
		bw := bufio.NewWriterSize(f, 1<<20)
		w, err := credit.NewExportWriter(bw, credit.ExportHeader{Kind: kind, Region: r, Size: uint64(size), ExportedAt: when(queries)})
		if err != nil {
			f.Close()
			return nil, err
		}
		rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
		return &benchExportFile{f: f, bw: bw, w: w, rng: rf.NewEmptyRange(0)}, nil
	}
	// A header's size is its export's line count, which the audit checks:
	// each query a region requests puts a receipt of each other region in
	// its received export.
	requested := map[credit.RegionID]int{}
	for i := range queries {
		requested[bankRegion[docs[i%len(docs)].Grantee]]++
	}
	answered, received := map[credit.RegionID]*benchExportFile{}, map[credit.RegionID]*benchExportFile{}
	for _, r := range benchRegions {
		var err error
		if answered[r], err = open(r, credit.ExportAnswered, queries); err != nil {
			return nil, err
		}
		// Each region requests a third of the queries, each answered by the two others.
		if received[r], err = open(r, credit.ExportReceived, (len(benchRegions)-1)*requested[r]); err != nil {
			return nil, err
		}
	}
	anchor := func(r credit.RegionID, e *benchExportFile, at time.Time) error {
		root, err := e.rng.GetRootHash(nil)
		if err != nil {
			return err
		}
		cp := credit.Checkpoint{Region: r, Size: uint64(e.n), Root: root}
		if err := cp.Sign("test", key(string(r))); err != nil {
			return err
		}
		snap.AddCheckpoint(credit.AnchoredCheckpoint{Checkpoint: cp, AnchoredAt: at.Add(time.Minute), TxID: string(r) + "-tx-" + strconv.Itoa(e.n)})
		return nil
	}
	for i := range queries {
		doc := &docs[i%len(docs)]
		bank := doc.Grantee
		requester := bankRegion[bank]
		at := when(i)
		q := credit.Query{Version: 1, Bank: bank, Subject: doc.Subject, Categories: []credit.Category{credit.Penalty, credit.Tax},
			Purpose: doc.Purpose, ConsentID: doc.ID, Consent: doc, Nonce: fmt.Sprintf("nonce-%09d", i), Time: at.Add(-time.Second)}
		if err := q.Sign(key(string(bank))); err != nil {
			return nil, err
		}
		for _, answerer := range benchRegions {
			id, err := credit.ReceiptID(answerer, &q)
			if err != nil {
				return nil, err
			}
			var seed [8]byte
			binary.BigEndian.PutUint64(seed[:], uint64(i))
			d := sha256.Sum256(append(seed[:], answerer...))
			rc := credit.Receipt{Version: 1, ID: id, Query: q, Requester: requester, Answerer: answerer, Categories: q.Categories,
				ReportDigest: d[:], RecordCount: 40 + i%100, Time: at}
			if err := rc.Sign(key(string(answerer))); err != nil {
				return nil, err
			}
			leaf, err := rc.LeafBytes()
			if err != nil {
				return nil, err
			}
			var acks []credit.Ack
			if answerer != requester {
				ack, err := credit.NewAck(&rc, requester, at.Add(100*time.Millisecond), key(string(requester)))
				if err != nil {
					return nil, err
				}
				acks = []credit.Ack{ack}
				rx := received[requester]
				got := at.Add(50 * time.Millisecond)
				if err := rx.w.Write(credit.ExportLine{Index: uint64(rx.n), Receipt: leaf, Acks: acks, ReceivedAt: &got}); err != nil {
					return nil, err
				}
				rx.n++
			}
			e := answered[answerer]
			if err := e.w.Write(credit.ExportLine{Index: uint64(e.n), Receipt: leaf, Acks: acks}); err != nil {
				return nil, err
			}
			h := leafHash(leaf)
			if err := e.rng.Append(h[:], nil); err != nil {
				return nil, err
			}
			e.n++
			if e.n%benchCheckpointEvery == 0 || e.n == queries {
				if err := anchor(answerer, e, at); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, e := range append(mapValues(answered), mapValues(received)...) {
		if err := e.w.Flush(); err != nil {
			return nil, err
		}
		if err := e.bw.Flush(); err != nil {
			return nil, err
		}
		if err := e.f.Close(); err != nil {
			return nil, err
		}
	}
	snap.TakenAt = when(queries).Add(2 * time.Minute)
	return snap, nil
}

func mapValues(m map[credit.RegionID]*benchExportFile) []*benchExportFile {
	var out []*benchExportFile
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
