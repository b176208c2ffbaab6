package embedded

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// A signed proposal copied off the wire of the served ledger and sent
// again is refused, and so is one made outside the proposal window: an
// old UpdateRegion must not roll a region's record back.
func TestRemoteReplayAndStaleRefused(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	s, err := Open("", Options{InMemory: true, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := bootstrapped(t, s)
	ctx := t.Context()

	// The wire: every transaction body a remote caller sends.
	srv, sent := tapped(t, s, "/v1/tx")
	sz := h.Regions[0]
	rc, err := Dial(srv.URL, sz.Ledger.Identity(), sz.Key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()

	old := sz.Member
	old.Addrs = []string{"/ip4/127.0.0.1/tcp/5001"}
	if err := rc.UpdateRegion(ctx, old); err != nil {
		t.Fatal(err)
	}
	all := sent()
	oldTx := all[len(all)-1]
	current := sz.Member
	current.Addrs = []string{"/ip4/127.0.0.1/tcp/6001"}
	if err := rc.UpdateRegion(ctx, current); err != nil {
		t.Fatal(err)
	}

	resp, err := http.Post(srv.URL+"/v1/tx", "application/json", bytes.NewReader(oldTx))
	if err != nil {
		t.Fatal(err)
	}
	var refusal remoteError
	_ = json.NewDecoder(resp.Body).Decode(&refusal)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK || refusal.Kind != network.ErrDenied.Error() || !strings.Contains(refusal.Msg, "replayed") {
		t.Fatalf("replayed UpdateRegion: status %d, %+v; want it denied as replayed", resp.StatusCode, refusal)
	}
	got, err := rc.Region(ctx, sz.Member.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Addrs) != 1 || got.Addrs[0] != current.Addrs[0] {
		t.Fatalf("region record after the replay: %v, want %v", got.Addrs, current.Addrs)
	}

	// The ledger's clock runs ahead of the caller's by more than the
	// window: the caller's fresh proposal is stale to the ledger.
	clock.Add(int64(ProposalWindow + time.Minute))
	err = rc.UpdateRegion(ctx, old)
	if !errors.Is(err, network.ErrDenied) || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("proposal outside the window: %v, want ErrDenied saying stale", err)
	}
}

// A proposal's nonce is kept past the last instant the window accepts the
// proposal, at both edges: Badger keeps expiries in whole seconds, and a
// nonce kept 2×ProposalWindow from its arrival, truncated, was forgotten up
// to a second before a proposal dated ProposalWindow-ε ahead stopped
// being accepted.
func TestProposalNonceKeptForTheWholeWindow(t *testing.T) {
	now := time.Now()
	s, err := Open("", Options{InMemory: true, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, made := range []time.Time{now.Add(-ProposalWindow + 10*time.Millisecond), now.Add(ProposalWindow - 10*time.Millisecond)} {
		tx := credit.LedgerTx{Caller: "Region440300MSP", Function: "UpdateRegion", Nonce: newNonce(made)}
		// The ledger accepts the proposal until its clock (now, here)
		// reads made+ProposalWindow: on the wall clock, which Badger's
		// expiries are read off, no earlier than last.
		last := time.Now().Add(made.Add(ProposalWindow).Sub(now))
		txn := s.db.NewTransaction(true)
		if err := s.checkNonce(txn, tx, now); err != nil {
			t.Fatal(err)
		}
		if err := txn.Commit(); err != nil {
			t.Fatal(err)
		}
		err := s.db.View(func(txn *badger.Txn) error {
			item, err := txn.Get([]byte(keyNonce + tx.Caller + "/" + tx.Nonce))
			if err != nil {
				return err
			}
			// Badger forgets the key once the wall clock reaches
			// ExpiresAt.
			if at := time.Unix(int64(item.ExpiresAt()), 0); !at.After(last) {
				t.Errorf("nonce of a proposal made %s from the ledger's clock expires at %s, before the window's last instant %s",
					made.Sub(now), at.Format(time.RFC3339), last.Format(time.RFC3339Nano))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
