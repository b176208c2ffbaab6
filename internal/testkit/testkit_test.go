package testkit

import (
	"errors"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

func TestPoll(t *testing.T) {
	calls := 0
	if err := Poll(time.Minute, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || calls != 3 {
		t.Fatalf("Poll = %v after %d calls, want nil after 3", err, calls)
	}
	errLast := errors.New("last")
	if err := Poll(10*time.Millisecond, func() error { return errLast }); !errors.Is(err, errLast) {
		t.Fatalf("Poll past its timeout = %v, want the condition's last error", err)
	}
}

func TestUSCC(t *testing.T) {
	u := USCC(t, "440100", 42)
	if _, err := credit.ParseUSCC(string(u)); err != nil || u.Division() != "440100" {
		t.Fatalf("USCC = %q (%v), division %q", u, err, u.Division())
	}
}

func TestLogger(t *testing.T) {
	Logger(t).Info("shows with -v")
}
