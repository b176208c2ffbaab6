package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prdcredit/ccnode/internal/testkit"
)

// mountTmpfs mounts a tmpfs of size bytes for the test (unmounted at its
// end), or skips the test where mounting is not permitted.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("a small filesystem to fill is a tmpfs this test mounts; mount is not permitted here (root or CAP_SYS_ADMIN needed): %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// avail is the bytes available on dir's filesystem.
func avail(t *testing.T, dir string) uint64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize)
}

// fillTo grows the filler file in dir until about leave bytes are left.
func fillTo(t *testing.T, dir string, leave uint64) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "filler"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for a := avail(t, dir); a > leave; a = avail(t, dir) {
		n := min(uint64(len(chunk)), a-leave)
		if _, err := f.Write(chunk[:n]); err != nil {
			t.Fatalf("filling %s to %d bytes free: %v", dir, leave, err)
		}
	}
}

// setMinFree sets store.min_free_bytes in the config init wrote.
func setMinFree(t *testing.T, cfg string, n int) {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^  min_free_bytes: \d+$`)
	if !re.Match(b) {
		t.Fatalf("%s has no store.min_free_bytes:\n%s", cfg, b)
	}
	if err := os.WriteFile(cfg, re.ReplaceAll(b, []byte("  min_free_bytes: "+strconv.Itoa(n))), 0o600); err != nil {
		t.Fatal(err)
	}
}

func noCrash(t *testing.T, what string, r cliResult) {
	t.Helper()
	if strings.Contains(r.stderr, "SIGBUS") || strings.Contains(r.stderr, "fatal error") || strings.Contains(r.stderr, "goroutine ") {
		t.Fatalf("%s crashed (exit %d):\n%.2000s", what, r.code, r.stderr)
	}
}

// TestFullDiskIsAnError fills a small filesystem under the ccnode binary.
// Badger writes tables and logs through mapped files: on a full
// filesystem such a write kills the process with SIGBUS (an import's
// load, and even `ccnode stats` opening the store, did). Each must be an
// error instead, naming the folder and the bytes.
func TestFullDiskIsAnError(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := testkit.CCNode(t)
	feedFile := filepath.Join(t.TempDir(), "feed.jsonl")
	if r := runCcnode(t, bin, nil, "gen", "--region", "440300", "--enterprises", "50", "--seed", "1", "--quiet", "-o", feedFile); r.code != 0 {
		t.Fatalf("gen: %d\n%s", r.code, r.stderr)
	}

	t.Run("import refused up front", func(t *testing.T) {
		mnt := mountTmpfs(t, 64<<20)
		dataDir := filepath.Join(mnt, "node")
		initRegion(t, bin, "440300", dataDir)
		cfg := filepath.Join(dataDir, "ccnode.yaml")
		setMinFree(t, cfg, 1<<20)
		// 2.6 MB of JSON Lines: the load's plan and tables take about 5
		// MiB at their peak (estimated at 10); with 4 MiB free the import
		// died with SIGBUS in Badger's table writer.
		fillTo(t, mnt, 4<<20)
		r := runCcnode(t, bin, nil, "import", "--quiet", "--config", cfg, feedFile)
		noCrash(t, "import", r)
		store := filepath.Join(dataDir, "db")
		if r.code != importExitFailed || !strings.Contains(r.stderr, "not enough free disk space in "+store) ||
			!regexp.MustCompile(`\d+ bytes needed, \d+ free`).MatchString(r.stderr) {
			t.Fatalf("import onto a nearly full filesystem: exit %d, want %d naming %s and the bytes needed and free\n%s", r.code, importExitFailed, store, r.stderr)
		}
		t.Log(strings.TrimSpace(r.stderr))
		if _, err := os.Stat(filepath.Join(store, "MANIFEST")); err == nil {
			t.Fatalf("the refused import opened the store")
		}
		// The estimate is not absurd: with room, the same import runs.
		os.Remove(filepath.Join(mnt, "filler"))
		if r := runCcnode(t, bin, nil, "import", "--quiet", "--config", cfg, feedFile); r.code != importExitOK {
			t.Fatalf("import with room: exit %d\n%s", r.code, r.stderr)
		}
	})

	t.Run("open on a full filesystem", func(t *testing.T) {
		mnt := mountTmpfs(t, 64<<20)
		dataDir := filepath.Join(mnt, "node")
		initRegion(t, bin, "440300", dataDir)
		setMinFree(t, filepath.Join(dataDir, "ccnode.yaml"), 1<<20) // the default, 1 GiB, is more than this filesystem
		if r := runCcnode(t, bin, nil, "import", "--quiet", "--config", filepath.Join(dataDir, "ccnode.yaml"), feedFile); r.code != importExitOK {
			t.Fatalf("import: exit %d\n%s", r.code, r.stderr)
		}
		// 4 KiB free: Badger's open wrote its lock file and died on the
		// first page of a mapped file.
		fillTo(t, mnt, 4<<10)
		for _, args := range [][]string{{"stats", "--data-dir", dataDir}, {"report", "--data-dir", dataDir, string(testkit.USCC(t, "440300", 1))}} {
			r := runCcnode(t, bin, nil, args...)
			noCrash(t, args[0], r)
			if r.code == 0 || !strings.Contains(r.stderr, "not enough free disk space in "+filepath.Join(dataDir, "db")) {
				t.Fatalf("%s on a full filesystem: exit %d, want an error naming the store's folder\n%s", args[0], r.code, r.stderr)
			}
		}
		os.Remove(filepath.Join(mnt, "filler"))
		if r := runCcnode(t, bin, nil, "stats", "--data-dir", dataDir); r.code != 0 || !strings.Contains(r.stdout, "9016") {
			t.Fatalf("stats once space is freed: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("node below the floor", func(t *testing.T) {
		mnt := mountTmpfs(t, 256<<20)
		dataDir := filepath.Join(mnt, "node")
		out, err := exec.Command(bin, "init", "--region", "440300", "--dir", dataDir, "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0").CombinedOutput()
		if err != nil {
			t.Fatalf("init: %v\n%s", err, out)
		}
		cfg := filepath.Join(dataDir, "ccnode.yaml")
		setMinFree(t, cfg, 200<<20)
		_, bankURL, _ := runNode(t, bin, "--config", cfg, "--log-level", "warn")
		get := func(path string) (int, string) {
			resp, err := http.Get(bankURL + path)
			if err != nil {
				return 0, err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		wait := func(what string, cond func() bool) {
			t.Helper()
			testkit.Eventually(t, 20*time.Second, func() error {
				if !cond() {
					st, body := get("/readyz")
					_, m := get("/metrics")
					return &waitError{what + ": /readyz " + strconv.Itoa(st) + " " + body + "\n" + grep(m, "ccnode_store_disk_state")}
				}
				return nil
			})
		}
		wait("ready with room", func() bool {
			st, body := get("/readyz")
			_, m := get("/metrics")
			return st == http.StatusOK && !strings.Contains(body, "warning") && strings.Contains(m, "ccnode_store_disk_state 0")
		})

		// Between the floor (200 MiB) and the receipt log's reserve (132
		// MiB): imports refused, still ready, and it says so.
		fillTo(t, mnt, 160<<20)
		wait("below the floor", func() bool {
			st, body := get("/readyz")
			_, m := get("/metrics")
			return st == http.StatusOK && strings.Contains(body, "disk low") && strings.Contains(body, "imports are refused") &&
				strings.Contains(m, "ccnode_store_disk_state 1")
		})
		r := runCcnode(t, bin, nil, "import", "--quiet", "--config", cfg, feedFile)
		noCrash(t, "import", r)
		if r.code != importExitFailed || !strings.Contains(r.stderr, "not enough free disk space in "+filepath.Join(dataDir, "db")) || !strings.Contains(r.stderr, "store.min_free_bytes") {
			t.Fatalf("import into a node below its floor: exit %d\n%s", r.code, r.stderr)
		}

		// Below the reserve: fail closed.
		fillTo(t, mnt, 64<<20)
		wait("below the receipt log's reserve", func() bool {
			st, body := get("/readyz")
			_, m := get("/metrics")
			return st == http.StatusServiceUnavailable && strings.Contains(body, `"disk_full"`) && strings.Contains(m, "ccnode_store_disk_state 2")
		})
		os.Remove(filepath.Join(mnt, "filler"))
		wait("ready again once space is freed", func() bool {
			st, _ := get("/readyz")
			return st == http.StatusOK
		})
	})
}

type waitError struct{ s string }

func (e *waitError) Error() string { return e.s }

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
