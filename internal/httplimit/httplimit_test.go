package httplimit_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/internal/httplimit"
)

func serve(t *testing.T, h http.Handler, l httplimit.Limits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, IdleTimeout: time.Hour}
	served := httplimit.Apply(srv, ln, l)
	go srv.Serve(served)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestIdleConnectionsMakeRoom: at the connection cap, an idle keep-alive
// connection is closed so that a new client is served, rather than the
// new one waiting for the idle one's timeout (an hour here).
func TestIdleConnectionsMakeRoom(t *testing.T) {
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		httplimit.Limits{MaxConns: 1})
	get := func(c *http.Client) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	a := &http.Client{Transport: &http.Transport{}}
	b := &http.Client{Transport: &http.Transport{}}
	if err := get(a); err != nil { // a keeps its connection open, idle
		t.Fatal(err)
	}
	if err := get(b); err != nil {
		t.Fatalf("a second client at the cap of one connection: %v", err)
	}
}

// TestInflightBytes: bodies over SmallBodyBytes take their length from
// the budget until their handler returns; a body that does not fit waits,
// then is refused with 503, while a small body (a bank query) never waits
// on the budget, even when it is used up.
func TestInflightBytes(t *testing.T) {
	const small = httplimit.SmallBodyBytes
	entered := make(chan struct{}, 4)
	release := make(chan struct{})
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		if strings.HasPrefix(string(b), "hold") {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	}), httplimit.Limits{MaxInflightBytes: 3*small + 10, MaxBodyBytes: 3*small + 10, Wait: 200 * time.Millisecond})
	post := func(body string) (int, error) {
		resp, err := http.Post(url, "text/plain", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	body := func(prefix string, n int) string { return prefix + strings.Repeat("x", n-len(prefix)) }
	held := make(chan int, 2)
	go func() { st, _ := post(body("hold", 2*small)); held <- st }()
	<-entered
	if st, err := post(body("y", 2*small)); err != nil || st != http.StatusServiceUnavailable {
		t.Fatalf("2×small more over a budget of 3×small+10: HTTP %d %v, want 503", st, err)
	}
	go func() { st, _ := post(body("hold", small+1)); held <- st }() // fits: 9 bytes left
	<-entered
	if st, err := post(body("y", small+1)); err != nil || st != http.StatusServiceUnavailable {
		t.Fatalf("small+1 bytes with 9 left: HTTP %d %v, want 503", st, err)
	}
	if st, err := post(body("z", small)); err != nil || st != http.StatusOK {
		t.Fatalf("a small body with the budget used up: HTTP %d %v, want 200 (small bodies do not wait)", st, err)
	}
	close(release)
	for range 2 {
		if st := <-held; st != http.StatusOK {
			t.Fatalf("held request: HTTP %d", st)
		}
	}
	// Their bytes are back: 2×small fits again.
	if st, err := post(body("y", 2*small)); err != nil || st != http.StatusOK {
		t.Fatalf("2×small once the budget is free: HTTP %d %v, want 200", st, err)
	}
	if st, err := post(body("w", 3*small+11)); err != nil || st != http.StatusRequestEntityTooLarge {
		t.Fatalf("a body over MaxBodyBytes: HTTP %d %v, want 413", st, err)
	}
}
