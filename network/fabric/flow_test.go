package fabric

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network"
)

func anchoredJSON(t *testing.T, size uint64) []byte {
	t.Helper()
	b, err := json.Marshal(credit.AnchoredCheckpoint{Checkpoint: credit.Checkpoint{Region: "SZ", Size: size}, TxID: "from-contract"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The contract's words come through the real gRPC status and its
// ErrorDetail to a typed error, and a refusal is never retried.
func TestContractRefusalsAreTypedAndNotRetried(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		kind error
		call func(context.Context, *Ledger) error
	}{
		{"read not found", "ccnode:not_found: region XX", network.ErrNotFound,
			func(ctx context.Context, l *Ledger) error { _, err := l.Region(ctx, "XX"); return err }},
		{"write denied", "ccnode:denied: GZMSP may not revoke SZ's consent", network.ErrDenied,
			func(ctx context.Context, l *Ledger) error { _, err := l.RevokeConsent(ctx, "c1"); return err }},
		{"anchor conflict", "ccnode:conflict: root differs at size 4", network.ErrConflict,
			func(ctx context.Context, l *Ledger) error {
				_, err := l.AnchorCheckpoint(ctx, credit.Checkpoint{Region: "SZ", Size: 4}, nil)
				return err
			}},
		{"bootstrap replay", "ccnode:conflict: ledger already has members", network.ErrConflict,
			func(ctx context.Context, l *Ledger) error { return l.Bootstrap(ctx, nil, nil) }},
		{"invalid", "ccnode:invalid: bad json", network.ErrInvalid,
			func(ctx context.Context, l *Ledger) error { return l.RetireBank(ctx, "B") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newFakeGateway()
			var calls atomic.Int32
			g.contract = func(string, []string) ([]byte, error) { calls.Add(1); return nil, refusal(tt.msg) }
			l := startFake(t, g, nil)
			err := tt.call(context.Background(), l)
			var ne *network.Error
			if !errors.Is(err, tt.kind) || !errors.As(err, &ne) {
				t.Fatalf("got %v, want %v", err, tt.kind)
			}
			if calls.Load() != 1 {
				t.Fatalf("contract ran %d times; a refusal must not be retried", calls.Load())
			}
			if _, submits := g.counts(); len(submits) != 0 {
				t.Fatalf("a refused proposal reached the orderer: %v", submits)
			}
		})
	}
}

// The arguments reach the contract as the fixed surface says.
func TestArgumentsOnTheWire(t *testing.T) {
	g := newFakeGateway()
	type call struct {
		fn   string
		args []string
	}
	got := make(chan call, 1)
	g.contract = func(fn string, args []string) ([]byte, error) {
		got <- call{fn, args}
		switch fn {
		case "GetConsentAt":
			return []byte(`{"commitment":{"id":"c1"},"status":"revoked"}`), nil
		case "AnchorCheckpoint":
			return anchoredJSON(t, 2), nil
		}
		return nil, nil
	}
	l := startFake(t, g, nil)
	ctx := context.Background()
	at := time.Date(2026, 11, 26, 8, 0, 0, 5, time.FixedZone("CST", 8*3600))

	c, st, err := l.ConsentAt(ctx, "c1", at)
	if err != nil || c.ID != "c1" || st != credit.ConsentRevoked {
		t.Fatalf("ConsentAt = %+v, %v, %v", c, st, err)
	}
	if w := <-got; w.fn != "GetConsentAt" || !slices.Equal(w.args, []string{"c1", "2026-11-26T00:00:00.000000005Z"}) {
		t.Fatalf("GetConsentAt args %+v", w)
	}

	a, err := l.AnchorCheckpoint(ctx, credit.Checkpoint{Region: "SZ", Size: 2, Root: []byte{1}}, [][]byte{{0xAB}})
	if err != nil || a.Size != 2 {
		t.Fatalf("AnchorCheckpoint = %+v, %v", a, err)
	}
	w := <-got
	if w.fn != "AnchorCheckpoint" || len(w.args) != 2 || w.args[1] != `["qw=="]` {
		t.Fatalf("AnchorCheckpoint args %+v (proof must be a JSON array of base64)", w)
	}
	var cp credit.Checkpoint
	if err := json.Unmarshal([]byte(w.args[0]), &cp); err != nil || cp.Size != 2 || cp.Region != "SZ" {
		t.Fatalf("checkpoint arg %q: %v", w.args[0], err)
	}

	if err := l.Bootstrap(ctx, []credit.RegionMember{{ID: "SZ"}}, nil); err != nil {
		t.Fatal(err)
	}
	if w := <-got; w.fn != "Bootstrap" || len(w.args) != 2 || w.args[1] != "[]" {
		t.Fatalf("Bootstrap args %+v (no banks must be [] not null)", w)
	}
}

// The submit flow keeps the transaction id: after an ambiguous submit it
// asks the commit status by that id, and endorses afresh only when the
// transaction certainly did not commit.
func TestSubmitConfirmsByTransactionID(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "orderer connection lost")
	tests := []struct {
		name string
		// submit scripts the orderer for the n-th Submit of the first
		// endorsed tx; later txs commit VALID.
		submit       func(n int) (peer.TxValidationCode, bool, error)
		kind         error // nil: success
		endorsements int
		submitsOfTx1 int
	}{
		{"clean", func(int) (peer.TxValidationCode, bool, error) { return peer.TxValidationCode_VALID, true, nil },
			nil, 1, 1},
		{"submit error but committed: status by id, no resend", func(int) (peer.TxValidationCode, bool, error) {
			return peer.TxValidationCode_VALID, true, unavailable
		}, nil, 1, 1},
		{"submit lost: same transaction resent", func(n int) (peer.TxValidationCode, bool, error) {
			if n == 1 {
				return 0, false, unavailable
			}
			return peer.TxValidationCode_VALID, true, nil
		}, nil, 1, 2},
		{"read conflict: endorsed again", func(int) (peer.TxValidationCode, bool, error) {
			return peer.TxValidationCode_MVCC_READ_CONFLICT, true, nil
		}, nil, 2, 1},
		{"policy failure: denied, not retried", func(int) (peer.TxValidationCode, bool, error) {
			return peer.TxValidationCode_ENDORSEMENT_POLICY_FAILURE, true, nil
		}, network.ErrDenied, 1, 1},
		{"never committed: unavailable", func(int) (peer.TxValidationCode, bool, error) {
			return 0, false, unavailable
		}, network.ErrUnavailable, 1, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newFakeGateway()
			g.contract = func(string, []string) ([]byte, error) { return anchoredJSON(t, 5), nil }
			var first atomic.Value
			g.submit = func(txID string, n int) (peer.TxValidationCode, bool, error) {
				first.CompareAndSwap(nil, txID)
				if first.Load() == txID {
					return tt.submit(n)
				}
				return peer.TxValidationCode_VALID, true, nil
			}
			l := startFake(t, g, func(c *Config) {
				c.CommitStatusTimeout = 200 * time.Millisecond
				c.MaxAttempts = 3
			})
			got, err := l.AnchorCheckpoint(context.Background(), credit.Checkpoint{Region: "SZ", Size: 5}, nil)
			if tt.kind == nil {
				if err != nil || got.Size != 5 || got.TxID != "from-contract" {
					t.Fatalf("AnchorCheckpoint = %+v, %v", got, err)
				}
			} else if !errors.Is(err, tt.kind) {
				t.Fatalf("AnchorCheckpoint err = %v, want %v", err, tt.kind)
			}
			endorsed, submits := g.counts()
			if len(endorsed) != tt.endorsements {
				t.Fatalf("endorsed %d times (%v), want %d", len(endorsed), endorsed, tt.endorsements)
			}
			if submits[endorsed[0]] != tt.submitsOfTx1 {
				t.Fatalf("first transaction submitted %d times, want %d", submits[endorsed[0]], tt.submitsOfTx1)
			}
		})
	}
}

// Reads retry an unreachable moment and then answer.
func TestEvaluateRetriesUnavailable(t *testing.T) {
	g := newFakeGateway()
	var n atomic.Int32
	g.contract = func(string, []string) ([]byte, error) {
		if n.Add(1) == 1 {
			return nil, status.Error(codes.Unavailable, "peer restarting")
		}
		return []byte(`[{"id":"SZ"},{"id":"GZ"}]`), nil
	}
	l := startFake(t, g, nil)
	rs, err := l.Regions(context.Background())
	if err != nil || len(rs) != 2 || rs[1].ID != "GZ" {
		t.Fatalf("Regions = %+v, %v", rs, err)
	}
	if n.Load() != 2 {
		t.Fatalf("contract ran %d times, want 2", n.Load())
	}
}

func TestCloseTwiceAndAfterClose(t *testing.T) {
	g := newFakeGateway()
	g.contract = func(string, []string) ([]byte, error) { return []byte(`[]`), nil }
	l := startFake(t, g, nil)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Regions(context.Background()); !errors.Is(err, network.ErrUnavailable) {
		t.Fatalf("call after Close = %v, want ErrUnavailable", err)
	}
	if _, err := l.Subscribe(context.Background(), network.Position{}); !errors.Is(err, network.ErrUnavailable) {
		t.Fatalf("Subscribe after Close = %v, want ErrUnavailable", err)
	}
}

func eventsFixture(t *testing.T) []fakeEvent {
	t.Helper()
	p := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return []fakeEvent{
		{1, "t1", "member_changed", p(map[string]any{"region": credit.RegionMember{ID: "SZ"}})},
		{2, "t2", "consent_recorded", p(map[string]any{"consent": credit.ConsentCommitment{ID: "c1"}})},
		{2, "t3", "not_a_kind", p(map[string]any{})},
		{2, "t4", "consent_revoked", p(map[string]any{"consent": credit.ConsentCommitment{ID: "c1", Status: credit.ConsentRevoked}})},
		{3, "t5", "checkpoint_anchored", p(map[string]any{"checkpoint": credit.AnchoredCheckpoint{TxID: "t5"}})},
	}
}

func collect(t *testing.T, ch <-chan network.Event, n int) []network.Position {
	t.Helper()
	var got []network.Position
	timeout := time.After(20 * time.Second) // a hang guard, not a measurement
	for len(got) < n {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %v", got)
			}
			got = append(got, ev.Position)
		case <-timeout:
			t.Fatalf("only %d events: %v", len(got), got)
		}
	}
	return got
}

// A subscriber resumes from its last position and misses nothing; an
// event the client cannot read is skipped, not fatal.
func TestSubscribeResumes(t *testing.T) {
	pos := func(b uint64, tx string) network.Position { return network.Position{Block: b, TxID: tx} }
	tests := []struct {
		name string
		from network.Position
		want []network.Position
	}{
		{"from the beginning", network.Position{}, []network.Position{pos(1, "t1"), pos(2, "t2"), pos(2, "t4"), pos(3, "t5")}},
		{"mid block", pos(2, "t2"), []network.Position{pos(2, "t4"), pos(3, "t5")}},
		{"end of block", pos(2, "t4"), []network.Position{pos(3, "t5")}},
		{"block only: all of it processed", pos(2, ""), []network.Position{pos(3, "t5")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newFakeGateway()
			g.events = eventsFixture(t)
			l := startFake(t, g, nil)
			ctx, cancel := context.WithCancel(context.Background())
			ch, err := l.Subscribe(ctx, tt.from)
			if err != nil {
				t.Fatal(err)
			}
			if got := collect(t, ch, len(tt.want)); !slices.Equal(got, tt.want) {
				t.Fatalf("positions %v, want %v", got, tt.want)
			}
			cancel()
			for range ch { // closes once ctx ends
			}
		})
	}
}

func TestSubscribeEndsWhenLedgerCloses(t *testing.T) {
	g := newFakeGateway()
	g.events = eventsFixture(t)[:1]
	l := startFake(t, g, nil)
	ch, err := l.Subscribe(context.Background(), network.Position{})
	if err != nil {
		t.Fatal(err)
	}
	collect(t, ch, 1)
	l.Close()
	for range ch {
	}
}

// A refusal only by other organisations' peers (a peer behind on blocks)
// is endorsed again; it stands only if it persists. A refusal by the
// caller's own peer is final (TestContractRefusalsAreTypedAndNotRetried).
func TestRemoteOnlyRefusalIsEndorsedAgain(t *testing.T) {
	tests := []struct {
		name      string
		refusals  int // how many endorsements GZMSP's peer refuses
		kind      error
		endorsals int
	}{
		{"peer catches up", 1, nil, 2},
		{"peer keeps refusing", 99, network.ErrDenied, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newFakeGateway()
			var n atomic.Int32
			g.contract = func(string, []string) ([]byte, error) {
				if int(n.Add(1)) <= tt.refusals {
					return nil, refusalBy("GZMSP", "ccnode:denied: no valid consistency proof from size 224 to 256")
				}
				return anchoredJSON(t, 256), nil
			}
			l := startFake(t, g, func(c *Config) { c.MaxAttempts = 3 })
			_, err := l.AnchorCheckpoint(context.Background(), credit.Checkpoint{Region: "SZ", Size: 256}, nil)
			if tt.kind == nil && err != nil {
				t.Fatalf("AnchorCheckpoint = %v", err)
			}
			if tt.kind != nil && !errors.Is(err, tt.kind) {
				t.Fatalf("AnchorCheckpoint = %v, want %v", err, tt.kind)
			}
			if endorsed, _ := g.counts(); len(endorsed) != tt.endorsals {
				t.Fatalf("endorsed %d times, want %d", len(endorsed), tt.endorsals)
			}
		})
	}
}

// When the gateway goes away the subscription's channel closes, so the
// subscriber resubscribes from its last position instead of waiting on a
// dead stream forever.
func TestSubscribeEndsWhenGatewayFails(t *testing.T) {
	g := newFakeGateway()
	g.events = eventsFixture(t)[:1]
	l, stop := startFakeServer(t, testkit.LoggerAt(t, slog.LevelDebug), g, nil)
	ch, err := l.Subscribe(context.Background(), network.Position{})
	if err != nil {
		t.Fatal(err)
	}
	collect(t, ch, 1)
	stop()
	for range ch {
	}
}

// The peer's TLS certificate is checked against the endpoint, or against
// server_name_override when set; a mismatch is an unreachable ledger, not
// a silent downgrade.
func TestTLSServerName(t *testing.T) {
	tests := []struct {
		override string
		ok       bool
	}{
		{"", true},                      // certificate names 127.0.0.1
		{"peer0.sz.ccnode.local", true}, // and this DNS name
		{"peer0.gz.ccnode.local", false},
	}
	for _, tt := range tests {
		t.Run("override="+tt.override, func(t *testing.T) {
			g := newFakeGateway()
			g.contract = func(string, []string) ([]byte, error) { return []byte(`[]`), nil }
			l := startFake(t, g, func(c *Config) { c.ServerNameOverride = tt.override; c.MaxAttempts = 1 })
			_, err := l.Regions(context.Background())
			if tt.ok && err != nil {
				t.Fatalf("Regions = %v", err)
			}
			if !tt.ok && !errors.Is(err, network.ErrUnavailable) {
				t.Fatalf("Regions with the wrong server name = %v, want ErrUnavailable", err)
			}
		})
	}
}
