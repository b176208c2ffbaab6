package consortium

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/store"
)

// TestFullDiskRefusesQueries: the regions' stores on a tmpfs the test
// mounts. Below what the receipt log needs to log durably (two
// memtables), a region refuses to answer with disk_full and signs no
// receipt (Badger would die with SIGBUS writing a mapped page the
// filesystem cannot back); once space is freed it answers again.
func TestFullDiskRefusesQueries(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs and starts a consortium on it")
	}
	root := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", root).CombinedOutput(); err != nil {
		t.Skipf("the regions' disk is a tmpfs this test mounts; mount is not permitted here (root or CAP_SYS_ADMIN needed): %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", root).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", root, err, out)
		}
	})
	ctx := context.Background()
	c, err := Start(ctx, Options{Dir: root, Logger: testkit.LoggerAt(t, slog.LevelError+1), Tune: fastTune, Mocknet: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sz := c.Region("440300")
	u := testkit.USCC(t, "440300", 1)
	mustPut(t, sz, rec(t, u, credit.Tax, 1))
	answer := ownSliceAsker(t, c, sz, u, []credit.Category{credit.Tax})
	// 256 MiB is below store.min_free_bytes (1 GiB by default): imports
	// would be refused, but the receipt log has room, so it answers.
	if st := answer(); st.Status != node.StatusOK {
		t.Fatalf("query below the floor, with room for the receipt log: %s %s", st.Status, st.Message)
	}
	if err := sz.Node.Ready(); err != nil {
		t.Fatalf("below the floor with room for the receipt log: not ready: %v", err)
	}
	if err := sz.Node.ImportSpaceCheck(1 << 20); !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("an import into the node below its floor: %v, want store.ErrNoSpace", err)
	}

	filler, err := os.Create(filepath.Join(root, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer filler.Close()
	chunk := make([]byte, 1<<20)
	for {
		var st unix.Statfs_t
		if err := unix.Statfs(root, &st); err != nil {
			t.Fatal(err)
		}
		if uint64(st.Bavail)*uint64(st.Bsize) <= 64<<20 {
			break
		}
		if _, err := filler.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	var last node.RegionStatus
	testkit.Eventually(t, 10*time.Second, func() error {
		last = answer()
		if last.Status == node.StatusOK || last.Reason != credit.CodeDiskFull || last.Receipt != nil {
			return fmt.Errorf("query with 64 MiB free: %s %s %q, receipt %v; want disk_full", last.Status, last.Reason, last.Message, last.Receipt != nil)
		}
		return nil
	})
	t.Logf("refused: %s", last.Message)
	if err := sz.Node.Ready(); err == nil {
		t.Fatal("a node that cannot log receipts is ready")
	}

	filler.Close()
	os.Remove(filler.Name())
	testkit.Eventually(t, 10*time.Second, func() error {
		if st := answer(); st.Status != node.StatusOK {
			return fmt.Errorf("query once space is freed: %s %s", st.Status, st.Message)
		}
		return nil
	})
}
