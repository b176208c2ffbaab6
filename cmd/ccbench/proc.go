package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os/exec"

	"github.com/prometheus/procfs"
)

// buildCCNode builds the ccnode binary to measure into bin. By import
// path, so that ccbench runs from any folder of the repository.
func buildCCNode(ctx context.Context, out io.Writer, bin string) error {
	fmt.Fprintln(out, "building ccnode ...")
	if b, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/prdcredit/ccnode/cmd/ccnode").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ccnode (run ccbench inside the repository): %w\n%s", err, b)
	}
	return nil
}

// loadAvg is the machine's 1, 5 and 15 minute load averages, for a run's
// header: a figure measured on a busy machine says so.
func loadAvg() string {
	l, err := readLoadAvg()
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.2f %.2f %.2f", l.Load1, l.Load5, l.Load15)
}

// load1 is the 1-minute load average, NaN where unknown.
func load1() float64 {
	l, err := readLoadAvg()
	if err != nil {
		return math.NaN()
	}
	return l.Load1
}

func readLoadAvg() (*procfs.LoadAvg, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, err
	}
	return fs.LoadAvg()
}

func memTotal() string {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return "RAM unknown"
	}
	m, err := fs.Meminfo()
	if err != nil || m.MemTotal == nil {
		return "RAM unknown"
	}
	return fmt.Sprintf("%.1f GiB RAM", float64(*m.MemTotal)/(1<<20))
}

// procCPU is a process's user + system CPU time so far, in seconds.
func procCPU(pid int) (float64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.Stat()
	if err != nil {
		return 0, err
	}
	return st.CPUTime(), nil
}
