// Package testkit holds the helpers every package's tests share: a logger
// that writes to t.Log, a polling wait with a deadline, valid USCCs, and
// the ccnode binary built once per test binary.
//
// It is for tests and the test helpers packages export for them
// (node/faults, fabricnet.StartForTest); no code a node runs calls it.
package testkit

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// Logger logs at Info level through t.Log, so a test's log shows only when
// it fails or runs with -v.
func Logger(t testing.TB) *slog.Logger { return LoggerAt(t, slog.LevelInfo) }

// LoggerAt is Logger at another level: store tests keep to warnings, the
// Fabric client's tests want its debug lines.
func LoggerAt(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: level}))
}

type tbWriter struct{ t testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// PollInterval is how long Poll waits between two calls of a condition:
// short against the waits it replaces, long enough not to load a node
// under test.
const PollInterval = 50 * time.Millisecond

// Poll calls cond until it returns nil or timeout has passed, PollInterval
// apart, and returns nil or cond's last error.
func Poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s: %w", timeout, err)
		}
		time.Sleep(PollInterval)
	}
}

// Eventually is Poll that fails t with cond's last error. cond runs on the
// test's goroutine, so it may itself fail t to stop waiting early.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatal(err)
	}
}

// USCC is the n-th valid code of an enterprise (registration authority 9,
// entity type 1) registered in division, with its GB 32100-2015 check
// character. n must be below 10^9.
func USCC(t testing.TB, division string, n int) credit.USCC {
	t.Helper()
	u, err := credit.CompleteUSCC(fmt.Sprintf("91%s%09d", division, n))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// The ccnode binary of this test binary: built by the first CCNode call,
// removed by Main.
var (
	mainRuns  atomic.Bool
	buildOnce sync.Once
	binDir    string
	binPath   string
	binErr    error
)

// Main runs the tests of a package whose tests call CCNode and then
// removes the binary; such a package's TestMain calls it:
//
//	func TestMain(m *testing.M) { testkit.Main(m) }
func Main(m *testing.M) {
	mainRuns.Store(true)
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// CCNode returns the path of a ccnode binary built from this module's
// cmd/ccnode, once per test binary: building it per test would cost a
// suite minutes. The package's TestMain must call Main.
func CCNode(t testing.TB) string {
	t.Helper()
	if !mainRuns.Load() {
		t.Fatal("testkit.CCNode: the package's TestMain must call testkit.Main, which removes the binary")
	}
	buildOnce.Do(func() { binPath, binErr = build() })
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func build() (string, error) {
	dir, err := os.MkdirTemp("", "ccnode-testkit-")
	if err != nil {
		return "", fmt.Errorf("testkit: %w", err)
	}
	binDir = dir
	// Generous: on a busy 2-core machine a cold build takes minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out := filepath.Join(dir, "ccnode")
	// By import path: a test runs in its package's folder, inside the
	// module, wherever that is.
	b, err := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/prdcredit/ccnode/cmd/ccnode").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("testkit: go build ccnode: %w\n%s", err, b)
	}
	return out, nil
}

// LogCapture is a logger that writes to t.Log, as Logger does, and keeps
// every record's text for the test to read (an admin action's log line,
// for one).
type LogCapture struct {
	mu  sync.Mutex
	buf strings.Builder
}

// CaptureLogger returns a logger at level that logs through t.Log and
// into the returned capture.
func CaptureLogger(t testing.TB, level slog.Level) (*slog.Logger, *LogCapture) {
	c := &LogCapture{}
	return slog.New(slog.NewTextHandler(captureWriter{tb: tbWriter{t}, c: c}, &slog.HandlerOptions{Level: level})), c
}

type captureWriter struct {
	tb tbWriter
	c  *LogCapture
}

func (w captureWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	w.c.buf.Write(p)
	w.c.mu.Unlock()
	return w.tb.Write(p)
}

// Lines returns the records logged so far containing every one of
// substrs, one text line each.
func (c *LogCapture) Lines(substrs ...string) []string {
	c.mu.Lock()
	text := c.buf.String()
	c.mu.Unlock()
	var out []string
	for _, l := range strings.Split(text, "\n") {
		ok := l != ""
		for _, s := range substrs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}
