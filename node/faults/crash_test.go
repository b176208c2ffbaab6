//go:build linux

package faults_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/faults"
)

// TestCrashKeepsAnsweredReceipts checks promise 1: a node SIGKILLed
// while banks are querying it keeps, in its receipt log, the receipt of
// every answer that reached a bank; after it restarts every logged
// receipt is anchored; and the audit of the whole run (the log, the
// requester's received receipts, the ledger) has no finding.
//
// Each cycle lets the load get some answers, kills the node in the middle
// of it, exports its log from the dead node's folder and looks up every
// receipt a bank holds, then starts it again on the same folder.
func TestCrashKeepsAnsweredReceipts(t *testing.T) {
	kills, perCycle := 4, 40
	if testing.Short() {
		kills, perCycle = 2, 15
	}
	r := startRegion(t, func(c *node.Config) { c.Anchor.Interval = 200 * time.Millisecond })
	ctx := context.Background()

	var mu sync.Mutex
	held := map[string]bool{} // receipts of answers a bank received
	heldCount := func() int { mu.Lock(); defer mu.Unlock(); return len(held) }
	load := faults.Load{
		Workers: 6,
		Target:  r.Client,
		Next:    func() (*credit.Query, error) { return r.bank.Query(&r.grant) },
		Timeout: 5 * time.Second,
		OnAnswer: func(c *node.Consolidated) {
			mu.Lock()
			defer mu.Unlock()
			for _, st := range c.Regions {
				if st.Receipt != nil {
					held[st.Receipt.ID] = true
				}
			}
		},
	}
	lctx, stopLoad := context.WithCancel(ctx)
	statsc := make(chan faults.LoadStats, 1)
	go func() { statsc <- load.Run(lctx) }()
	defer stopLoad()

	for k := 1; k <= kills; k++ {
		want := heldCount() + perCycle
		faults.WaitFor(t, 2*time.Minute, "answers before kill", func() (bool, string) {
			n := heldCount()
			return n >= want, "answers held by banks: " + itoa(n)
		})
		r.Kill(t)
		// The process is gone: no answer can leave it any more, so every
		// receipt a bank holds now must be in the log on disk.
		exp := r.Export(t, credit.ExportAnswered, filepath.Join(t.TempDir(), "answered.jsonl"))
		_, logged, err := faults.ExportedReceipts(exp)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		missing := 0
		for id := range held {
			if _, ok := logged[id]; !ok {
				missing++
				if missing <= 5 {
					t.Errorf("kill %d: receipt %s reached a bank but is not in the log after the crash", k, id)
				}
			}
		}
		n := len(held)
		mu.Unlock()
		if missing > 0 {
			t.Fatalf("kill %d: %d of %d receipts that reached banks are missing from the log", k, missing, n)
		}
		t.Logf("kill %d: %d answers held by banks, all %d in a log of %d", k, n, n, len(logged))
		r.Start(t)
	}
	stopLoad()
	st := <-statsc
	t.Logf("load: %d answered, %d refused %v, %d without an answer (node down)", st.OK, sumReasons(st.Refused), st.Refused, st.Failed)
	if st.OK == 0 {
		t.Fatal("no query was answered")
	}

	// Everything logged gets anchored after the restarts.
	r.WaitReady(t, time.Minute)
	r.WaitAnchored(t, 2*time.Minute)
	r.Stop(t)

	dir := t.TempDir()
	answered := r.Export(t, credit.ExportAnswered, filepath.Join(dir, "answered.jsonl"))
	received := r.Export(t, credit.ExportReceived, filepath.Join(dir, "received.jsonl"))
	h, logged, err := faults.ExportedReceipts(answered)
	if err != nil {
		t.Fatal(err)
	}
	for id := range held {
		if _, ok := logged[id]; !ok {
			t.Fatalf("receipt %s that reached a bank is missing from the final export", id)
		}
	}
	rep, res := runAudit(t, "--ledger-dir", filepath.Join(r.Dir, "ledger"), "--consents", r.grantDoc, answered, received)
	if res.Code != 0 || rep.Total != 0 {
		t.Fatalf("audit of the crashed run: exit %d, %d findings:\n%s%s", res.Code, rep.Total, res.Stdout, res.Stderr)
	}
	if len(rep.Regions) != 1 || rep.Regions[0].Receipts != h.Size || rep.Regions[0].Verified != h.Size {
		t.Fatalf("audit covered %+v, want the whole log of %d receipts verified under anchored roots", rep.Regions, h.Size)
	}
	t.Logf("audit: %d receipts verified under anchored roots, %d received cross-checked, no findings", h.Size, rep.Received)
}

func sumReasons(m map[credit.Code]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
