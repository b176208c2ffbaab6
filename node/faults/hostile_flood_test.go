//go:build linux

package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node"
)

// rssCeiling is the README's memory ceiling for a region's process.
const rssCeiling = 512 << 20

// TestHostileFlood: 200 concurrent requests of about 1 MiB each (the
// bank API's body limit) with an invalid bank id — ASCII, and invalid
// UTF-8 — keep a real `ccnode run` process's peak resident memory under
// the 512 MiB ceiling, every one is refused (400 invalid_query, or 503
// unavailable when there was no room for its body) with a short message,
// and an honest bank's queries sent meanwhile are answered while the flood
// is still going on: not queued behind it (an order, not a time limit, so a
// loaded machine slows both sides alike).
// Before the limits and the short quotes, each refusal echoed the whole
// field and such a flood took the process past a gigabyte.
func TestHostileFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ccnode run processes and sends 400 MiB")
	}
	for _, tt := range []struct {
		name string
		fill byte
	}{
		{"ascii bank id", 'X'},
		{"invalid UTF-8 bank id", 0xff},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := startRegion(t, nil) // default limits
			body := append([]byte(`{"v":1,"bank":"`), bytes.Repeat([]byte{tt.fill}, node.DefaultMaxBodyBytes-64)...)
			body = append(body, `"}`...)
			floodOnce(t, r, body, 200)
		})
	}
}

func floodOnce(t *testing.T, r *region, body []byte, n int) {
	pr, err := procfs.NewProc(r.Pid())
	if err != nil {
		t.Fatal(err)
	}
	before, err := pr.NewStatus()
	if err != nil {
		t.Fatal(err)
	}
	// Connections of their own, all open at once, as an attacker's would be.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, TLSClientConfig: r.TLSConfig()}}
	defer hc.CloseIdleConnections()
	start := make(chan struct{})
	var wg sync.WaitGroup
	type outcome struct {
		status int
		code   string
		msgLen int
		err    error
	}
	outcomes := make(chan outcome, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := hc.Post(r.URL()+"/v1/query", "application/json", bytes.NewReader(body))
			if err != nil {
				outcomes <- outcome{err: err}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var e node.APIError
			json.Unmarshal(b, &e)
			outcomes <- outcome{status: resp.StatusCode, code: e.Code, msgLen: len(b)}
		}()
	}
	// The bank's connection is open before the flood, as a bank's
	// keep-alive connection is: the deadline is on answering, not on a
	// handshake queued behind the attacker's two hundred.
	if q, err := r.bank.Query(&r.grant); err != nil {
		t.Fatal(err)
	} else if _, err := r.Client().Query(context.Background(), q); err != nil {
		t.Fatalf("honest query before the flood: %v", err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	close(start)

	// The honest bank queries all along the flood. A bank starved by it
	// would get its answers only once the flood is over; a fair node
	// answers some while it is still being refused. The deadline only
	// keeps a starved query from hanging the test.
	honest, duringFlood, slowest := 0, 0, time.Duration(0)
	for flooding := true; flooding; {
		select {
		case <-done:
			flooding = false
		default:
		}
		q, err := r.bank.Query(&r.grant)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t0 := time.Now()
		_, err = r.Client().Query(ctx, q)
		slowest = max(slowest, time.Since(t0))
		cancel()
		if err != nil {
			t.Errorf("honest query during the flood (%d answered before): %v", honest, err)
			<-done
			break
		}
		honest++
		select {
		case <-done:
		default:
			duringFlood++
		}
	}
	if duringFlood == 0 {
		t.Errorf("no honest query was answered while the flood lasted (%d answered after it, slowest %s): the flood starves banks", honest, slowest.Round(time.Millisecond))
	}
	close(outcomes)
	counts := map[string]int{}
	for o := range outcomes {
		switch {
		case o.err != nil:
			t.Errorf("hostile request failed at the transport: %v", o.err)
		case o.status == http.StatusBadRequest && o.code == string(credit.CodeInvalidQuery),
			o.status == http.StatusServiceUnavailable && o.code == string(credit.CodeUnavailable):
			if o.msgLen > 4<<10 {
				t.Errorf("a refusal of %d bytes: it echoes the input", o.msgLen)
			}
		default:
			t.Errorf("hostile request: HTTP %d %q, want 400 %s or 503 %s", o.status, o.code, credit.CodeInvalidQuery, credit.CodeUnavailable)
		}
		counts[fmt.Sprintf("%d %s", o.status, o.code)]++
	}
	after, err := pr.NewStatus()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d requests of %d KiB: %v; honest bank answered %d times, %d during the flood (slowest %s); RSS %d MiB before, peak %d MiB, %d MiB after",
		n, len(body)>>10, counts, honest, duringFlood, slowest.Round(time.Millisecond), before.VmRSS>>20, after.VmHWM>>20, after.VmRSS>>20)
	if after.VmHWM > rssCeiling {
		t.Fatalf("peak RSS %d MiB, over the %d MiB ceiling", after.VmHWM>>20, rssCeiling>>20)
	}
}
