package consortium

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/p2p"
)

// nodeClock is the consortium's clock: the wall clock, or the instant the
// test last fixed.
type nodeClock struct{ fixed atomic.Pointer[time.Time] }

func (c *nodeClock) Now() time.Time {
	if t := c.fixed.Load(); t != nil {
		return *t
	}
	return time.Now()
}

func (c *nodeClock) Set(t time.Time) { c.fixed.Store(&t) }

// waitWall waits for the wall clock to reach at: Badger reads its nonce
// expiries off the wall clock, so the wall clock itself is what is waited
// for.
func waitWall(at time.Time) { <-time.After(time.Until(at)) }

// replayFixture is a consortium whose Shenzhen bank holds a recorded
// consent, with records on the subject in Shenzhen and Guangzhou.
type replayFixture struct {
	c        *Consortium
	clock    *nodeClock
	sz, gz   *Region
	bank     *Bank
	ent      Enterprise
	grant    credit.ConsentGrant
	api      *apiClient
	cats     []credit.Category
	logSizes map[credit.RegionID]uint64
}

func startReplayFixture(t *testing.T, window time.Duration) *replayFixture {
	t.Helper()
	ctx := context.Background()
	f := &replayFixture{clock: &nodeClock{}, cats: []credit.Category{credit.Tax}}
	c, err := Start(ctx, Options{Logger: testkit.LoggerAt(t, slog.LevelWarn), Mocknet: true, Now: f.clock.Now,
		Tune: func(cfg *node.Config) {
			fastTune(cfg)
			cfg.Query.Window = window
			// The test moves the nodes' clock by up to two windows.
			cfg.Ledger.GracePeriod = time.Minute
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	f.c, f.sz, f.gz, f.bank = c, c.Region("440300"), c.Region("440100"), c.Banks[0]
	ent, err := c.Enterprise(testkit.USCC(t, "440300", 5))
	if err != nil {
		t.Fatal(err)
	}
	f.ent = ent
	mustPut(t, f.sz, rec(t, f.ent.USCC, credit.Tax, 1))
	mustPut(t, f.gz, rec(t, f.ent.USCC, credit.Tax, 2))
	g, err := f.ent.Grant(f.bank.ID, f.sz.ID, f.cats, credit.PurposeCreditReview, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if f.grant, _, err = f.sz.Node.RecordConsent(ctx, g); err != nil {
		t.Fatal(err)
	}
	f.api = newAPIClient(t, c.HTTPClient(), f.sz.Node.HTTPURL())
	return f
}

// ask posts q to the bank API of the bank's home node and requires every
// region's answer.
func (f *replayFixture) ask(t *testing.T, q credit.Query) {
	t.Helper()
	st, b := f.api.do("POST", "/v1/query", "", q)
	if st != 200 {
		t.Fatalf("query dated %s: %d %s", q.Time.Format(time.RFC3339Nano), st, b)
	}
	var res node.Consolidated
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.RecordCount != 2 {
		t.Fatalf("query dated %s: %s", q.Time.Format(time.RFC3339Nano), b)
	}
}

// markLogs notes every region's log size, which no replay may change.
func (f *replayFixture) markLogs() {
	f.logSizes = map[credit.RegionID]uint64{}
	for _, r := range f.c.Regions {
		f.logSizes[r.ID] = r.Node.Log().Size()
	}
}

func (f *replayFixture) logsUnchanged(t *testing.T) {
	t.Helper()
	for _, r := range f.c.Regions {
		if got := r.Node.Log().Size(); got != f.logSizes[r.ID] {
			t.Fatalf("region %s logged %d receipts for replays", r.ID, got-f.logSizes[r.ID])
		}
	}
}

// replayHTTP posts q to the bank API again, byte for byte, and returns the
// refusal code ("" if it was answered).
func (f *replayFixture) replayHTTP(t *testing.T, q credit.Query) credit.Code {
	t.Helper()
	st, b := f.api.do("POST", "/v1/query", "", q)
	var e node.APIError
	if err := json.Unmarshal(b, &e); err != nil || st == 200 {
		return ""
	}
	return credit.Code(e.Code)
}

// replayP2P sends Guangzhou, from Shenzhen's host, the request Shenzhen's
// node forwarded for q — the same bytes — and returns the refusal code (""
// if Guangzhou answered).
func (f *replayFixture) replayP2P(t *testing.T, q credit.Query) credit.Code {
	t.Helper()
	return requestP2P(t, f.sz, f.gz, q)
}

// requestP2P sends to, from from's host, the request from's node would
// send for q, and returns the refusal code ("" if to answered).
func requestP2P(t *testing.T, from, to *Region, q credit.Query) credit.Code {
	t.Helper()
	qj, _, err := q.CanonicalAndDigest()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := from.Node.Host().NewStream(ctx, to.Node.Host().ID(), p2p.ReportProtocol(node.DefaultNetworkID))
	if err != nil {
		t.Fatalf("stream to %s: %v", to.ID, err)
	}
	defer s.Close()
	if _, err := s.Write(p2p.EncodeRequest(from.ID, qj)); err != nil {
		t.Fatal(err)
	}
	s.CloseWrite()
	b, err := p2p.ReadFrame(s, p2p.MaxResponseFrame)
	if err != nil {
		t.Fatalf("reading %s's answer: %v", to.ID, err)
	}
	_, _, err = p2p.DecodeResponse(b)
	if r := credit.RefusalOf(err); r != nil {
		return r.Code
	}
	if err != nil {
		t.Fatalf("decoding %s's answer: %v", to.ID, err)
	}
	return ""
}

// A signed query dated at either edge of the acceptance window, replayed
// byte for byte at the last instant the window still admits it, is refused
// as a replay by the home node's bank API and by a remote region it was
// forwarded to over libp2p; a millisecond later it is stale. No region logs
// a receipt for a replay.
//
// The window is one second so that the wall clock, which Badger's expiries
// are kept in (whole seconds), passes the window's end within the test:
// the query dated window-ε in the future is first answered in the first
// half of a second, so a nonce kept for 2×window from then, truncated to a
// whole second, was gone half a second before the query's acceptance
// ended, and the replay was answered again.
func TestReplayRefusedAtBothWindowEdges(t *testing.T) {
	const window = time.Second
	f := startReplayFixture(t, window)

	// The nodes' clock stands at T, half a second into a wall-clock second.
	T := time.Now().Truncate(time.Second).Add(time.Second + 500*time.Millisecond)
	waitWall(T)
	f.clock.Set(T)
	// past: dated window-ε before T (ε half a window), so acceptable
	// until T+ε; future: dated window-ε after T (ε 10 ms), so acceptable
	// until T+2×window-ε.
	past, _ := f.bank.Query(f.ent.USCC, f.cats, credit.PurposeCreditReview, &f.grant, T.Add(-window/2))
	future, _ := f.bank.Query(f.ent.USCC, f.cats, credit.PurposeCreditReview, &f.grant, T.Add(window-10*time.Millisecond))
	f.ask(t, past)
	f.ask(t, future)
	if time.Now().After(T.Add(400 * time.Millisecond)) {
		t.Logf("the first answers took until %s after T: the nonces were not spent early in their second, so this run would not catch a nonce forgotten at a truncated second", time.Since(T))
	}
	f.markLogs()

	edge := func(t *testing.T, q credit.Query) {
		t.Helper()
		last := q.Time.Add(window) // the last instant the window admits q
		f.clock.Set(last)
		// The member's replay first: a bank API replay that got through
		// would be forwarded to Guangzhou and spend the nonce there again.
		if code := f.replayP2P(t, q); code != credit.CodeReplayedNonce {
			t.Errorf("member replay to Guangzhou at the window's last instant %s: %q, want %q", last.Format(time.RFC3339Nano), code, credit.CodeReplayedNonce)
		}
		if code := f.replayHTTP(t, q); code != credit.CodeReplayedNonce {
			t.Errorf("bank API replay at the window's last instant %s: %q, want %q", last.Format(time.RFC3339Nano), code, credit.CodeReplayedNonce)
		}
		f.clock.Set(last.Add(time.Millisecond))
		if code := f.replayP2P(t, q); code != credit.CodeStaleQuery {
			t.Errorf("member replay a millisecond after the window: %q, want %q", code, credit.CodeStaleQuery)
		}
		if code := f.replayHTTP(t, q); code != credit.CodeStaleQuery {
			t.Errorf("bank API replay a millisecond after the window: %q, want %q", code, credit.CodeStaleQuery)
		}
		f.logsUnchanged(t)
	}
	t.Run("dated window-ε in the past", func(t *testing.T) { edge(t, past) })
	t.Run("dated window-ε in the future", func(t *testing.T) {
		// The wall clock goes past the whole second at which a nonce kept
		// for 2×window from T expired, and stays before the query's
		// acceptance ends in wall-clock time (T+2×window-ε).
		expired := T.Truncate(time.Second).Add(2 * window)
		waitWall(expired.Add(100 * time.Millisecond))
		edge(t, future)
		if late := time.Since(expired); late > time.Second && t.Failed() {
			t.Logf("the replays ran %s after the truncated expiry, past the query's acceptance in wall-clock time: the machine stalled", late)
		}
	})
}

// A nonce store that lost a query's nonce (a node restored from an older
// backup of its nonces, say) still gives a replay no second answer: each
// region's receipt log refuses to issue the query's receipt id again, and
// the bank gets every region's replayed_nonce refusal and no records.
func TestReplayWithForgottenNonceRefusedByReceiptLog(t *testing.T) {
	f := startReplayFixture(t, node.DefaultQueryWindow)
	q, _ := f.bank.Query(f.ent.USCC, f.cats, credit.PurposeCreditReview, &f.grant, time.Now())
	f.ask(t, q)
	f.markLogs()
	for _, r := range f.c.Regions {
		// N is store/receipts' prefix of nonces.
		if err := r.Store.Badger().DropPrefix([]byte{'N'}); err != nil {
			t.Fatal(err)
		}
	}

	if code := f.replayP2P(t, q); code != credit.CodeReplayedNonce {
		t.Fatalf("member replay to Guangzhou: %q, want %q", code, credit.CodeReplayedNonce)
	}
	st, b := f.api.do("POST", "/v1/query", "", q)
	var res node.Consolidated
	if err := json.Unmarshal(b, &res); err != nil || st != 200 {
		t.Fatalf("bank API replay: %d %s", st, b)
	}
	if res.RecordCount != 0 || len(res.Regions) != len(f.c.Regions) {
		t.Fatalf("bank API replay got an answer: %s", b)
	}
	for _, rs := range res.Regions {
		if rs.Status != node.StatusDenied || rs.Reason != credit.CodeReplayedNonce || rs.Receipt != nil {
			t.Errorf("region %s on a replay: %s %s %q, want denied %s without a receipt", rs.Region, rs.Status, rs.Reason, rs.Message, credit.CodeReplayedNonce)
		}
	}
	f.logsUnchanged(t)
}
