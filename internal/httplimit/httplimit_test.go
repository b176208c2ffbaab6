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

// TestInflightBytes: bodies take their length from the budget until
// their handler returns; a body that does not fit waits, then is refused
// with 503, while a small one that fits is served meanwhile.
func TestInflightBytes(t *testing.T) {
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
	}), httplimit.Limits{MaxInflightBytes: 100, MaxBodyBytes: 100, Wait: 200 * time.Millisecond})
	post := func(body string) (int, error) {
		resp, err := http.Post(url, "text/plain", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	held := make(chan int, 1)
	go func() { st, _ := post("hold" + strings.Repeat("x", 76)); held <- st }() // 80 bytes
	<-entered
	if st, err := post(strings.Repeat("y", 80)); err != nil || st != http.StatusServiceUnavailable {
		t.Fatalf("80 more bytes over a budget of 100: HTTP %d %v, want 503", st, err)
	}
	if st, err := post(strings.Repeat("z", 20)); err != nil || st != http.StatusOK {
		t.Fatalf("20 bytes that fit: HTTP %d %v, want 200", st, err)
	}
	close(release)
	if st := <-held; st != http.StatusOK {
		t.Fatalf("held request: HTTP %d", st)
	}
	// Its bytes are back: 80 fit again.
	if st, err := post(strings.Repeat("y", 80)); err != nil || st != http.StatusOK {
		t.Fatalf("80 bytes once the budget is free: HTTP %d %v, want 200", st, err)
	}
	if st, err := post(strings.Repeat("w", 101)); err != nil || st != http.StatusRequestEntityTooLarge {
		t.Fatalf("a body over MaxBodyBytes: HTTP %d %v, want 413", st, err)
	}
}
