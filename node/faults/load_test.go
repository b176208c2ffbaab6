//go:build linux

package faults_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node/faults"
)

// loadDuration is how long sustainedLoad runs: 90 s by default (CI), or
// CCNODE_FAULTS_LOAD (a Go duration) for a longer soak on a workstation.
func loadDuration(t *testing.T) time.Duration {
	if s := os.Getenv("CCNODE_FAULTS_LOAD"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("CCNODE_FAULTS_LOAD=%q: %v", s, err)
		}
		return d
	}
	return 90 * time.Second
}

// sample is one region process's figures at a moment.
type sample struct {
	rss, anon, heap, fds, goroutines float64
}

// sustainedLoad checks promise 7: the bank queries Shenzhen from 8
// workers for loadDuration, every query fanning out to all three regions
// (each answers every query and logs its receipt; anchoring runs). Per
// window of a sixth of the run it records queries/s, p50 and p99 and
// errors, and for each region RSS, Go heap in use, open files and
// goroutines. No query may fail; goroutines and open files must not grow;
// anonymous resident memory (not the mapped store files) must stay under a ceiling (512 MiB for a region of this
// size). Whether it levels off is logged, not asserted: a region
// restarted after a SIGKILL was seen still growing after 90 s (122 → 209
// MiB in the second half) while the others had levelled off, and a run
// this short cannot tell a cache filling from a leak.
func sustainedLoad(t *testing.T, c *consortium) {
	ctx := context.Background()
	total := loadDuration(t)
	const windows = 6
	read := func() map[credit.RegionID]sample {
		out := map[credit.RegionID]sample{}
		for _, n := range c.regions {
			m, err := n.Metrics(ctx)
			if err != nil {
				t.Fatal(err)
			}
			p, err := faults.ReadProc(n.Pid())
			if err != nil {
				t.Fatal(err)
			}
			out[n.Region] = sample{m["process_resident_memory_bytes"], float64(p.RSSAnon), m["go_memstats_heap_inuse_bytes"], m["process_open_fds"], m["go_goroutines"]}
		}
		return out
	}
	samples := []map[credit.RegionID]sample{read()}
	var all faults.LoadStats
	for w := range windows {
		wctx, cancel := context.WithTimeout(ctx, total/windows)
		st := faults.Load{Workers: 8, Target: c.sz().Client,
			Next: func() (*credit.Query, error) { return c.bank.Query(&c.grant) }}.Run(wctx)
		cancel()
		samples = append(samples, read())
		refused := sumReasons(st.Refused)
		t.Logf("window %d: %d queries (%.0f/s), p50 %s p99 %s, %d refused %v, %d failed",
			w+1, st.OK, float64(st.OK)/(total/windows).Seconds(), st.Quantile(0.5).Round(time.Millisecond), st.Quantile(0.99).Round(time.Millisecond), refused, st.Refused, st.Failed)
		all.OK += st.OK
		all.Failed += st.Failed + refused
		all.Latencies = append(all.Latencies, st.Latencies...)
	}
	t.Logf("whole run: %d queries in %s, p99 %s, error rate %.4f%%", all.OK, total, all.Quantile(0.99).Round(time.Millisecond),
		100*float64(all.Failed)/float64(max(1, all.OK+all.Failed)))
	if all.Failed > 0 {
		t.Errorf("%d queries failed or were refused under load", all.Failed)
	}
	first, mid, last := samples[0], samples[windows/2], samples[windows]
	for _, n := range c.regions {
		f, m, l := first[n.Region], mid[n.Region], last[n.Region]
		t.Logf("region %s: RSS %.0f → %.0f → %.0f MiB (anonymous %.0f → %.0f → %.0f), Go heap in use %.0f → %.0f → %.0f MiB, open files %.0f → %.0f, goroutines %.0f → %.0f",
			n.Region, f.rss/(1<<20), m.rss/(1<<20), l.rss/(1<<20), f.anon/(1<<20), m.anon/(1<<20), l.anon/(1<<20),
			f.heap/(1<<20), m.heap/(1<<20), l.heap/(1<<20), f.fds, l.fds, f.goroutines, l.goroutines)
		if l.goroutines > f.goroutines+40 {
			t.Errorf("region %s: goroutines grew from %.0f to %.0f under load", n.Region, f.goroutines, l.goroutines)
		}
		if l.fds > f.fds+20 {
			t.Errorf("region %s: open files grew from %.0f to %.0f under load", n.Region, f.fds, l.fds)
		}
		// The ceiling is on the memory the process holds: the mapped
		// store files' resident pages are page cache the kernel reclaims
		// (the home's total RSS passed 512 MiB with 120 MiB of Go heap).
		if l.anon > 512<<20 {
			t.Errorf("region %s: anonymous RSS %.0f MiB after the run, over the 512 MiB ceiling", n.Region, l.anon/(1<<20))
		}
		if l.anon > m.anon+64<<20 {
			t.Logf("region %s: anonymous RSS still growing in the second half of the run (%.0f → %.0f MiB)", n.Region, m.anon/(1<<20), l.anon/(1<<20))
		}
	}
}
