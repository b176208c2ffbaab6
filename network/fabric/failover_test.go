package fabric

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network"
)

// serveFake serves g over TLS with pki's server certificate on
// 127.0.0.1:0; with requireClient the server demands a client certificate
// signed by pki's CA, as a peer with CORE_PEER_TLS_CLIENTAUTHREQUIRED does.
// It returns the address and a function stopping the server (a peer whose
// process is killed).
func serveFake(t testing.TB, pki testPKI, g *fakeGateway, requireClient bool) (string, func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{pki.serverCert}}
	if requireClient {
		caPEM, err := os.ReadFile(pki.caPath)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(tc)))
	gateway.RegisterGatewayServer(srv, g)
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	var once sync.Once
	stop := func() { once.Do(func() { srv.Stop(); <-served }) }
	t.Cleanup(stop)
	return lis.Addr().String(), stop
}

func dialFake(t *testing.T, pki testPKI, endpoints []string, edit func(*Config)) *Ledger {
	t.Helper()
	cfg := Config{
		Endpoint: endpoints[0], Endpoints: endpoints[1:], TLSCACertPath: pki.caPath,
		MSPID: "SZMSP", CertPath: pki.certPath, KeyPath: pki.keyPath,
		Channel: "prdcredit", Chaincode: "ccnode",
		CommitStatusTimeout: 5 * time.Second,
	}
	if edit != nil {
		edit(&cfg)
	}
	l, err := Dial(context.Background(), cfg, testkit.LoggerAt(t, slog.LevelDebug))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func regionsGateway() *fakeGateway {
	g := newFakeGateway()
	g.contract = func(string, []string) ([]byte, error) { return []byte(`[{"id":"SZ"}]`), nil }
	return g
}

func (g *fakeGateway) evaluations() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.evaluated
}

// A region with two gateway peers: when the one in use goes away, reads,
// writes and the event stream continue through the other, and the client
// stays on it instead of trying the dead one on every call.
func TestFailoverToNextEndpoint(t *testing.T) {
	pki := newTestPKI(t)
	a, b := regionsGateway(), regionsGateway()
	b.events = eventsFixture(t)
	addrA, stopA := serveFake(t, pki, a, false)
	addrB, _ := serveFake(t, pki, b, false)
	l := dialFake(t, pki, []string{addrA, addrB}, func(c *Config) { c.EndpointCooldown = time.Hour })
	ctx := context.Background()

	if _, err := l.Regions(ctx); err != nil {
		t.Fatal(err)
	}
	if a.evaluations() != 1 || b.evaluations() != 0 {
		t.Fatalf("first read went to a=%d b=%d, want the first endpoint", a.evaluations(), b.evaluations())
	}

	stopA()
	for i := range 3 {
		if _, err := l.Regions(ctx); err != nil {
			t.Fatalf("read %d after the first peer went away: %v", i, err)
		}
	}
	if b.evaluations() != 3 {
		t.Fatalf("second endpoint served %d reads, want 3", b.evaluations())
	}
	// One failed connection marked the first endpoint down; later calls
	// went straight to the second (an attempt on a would have cost a retry
	// but is invisible here, so check the health record too).
	if _, idx, _ := l.eps.pick(); idx != 1 {
		t.Fatalf("endpoint in use %d, want 1", idx)
	}

	if err := l.RetireBank(ctx, "B1"); err != nil {
		t.Fatalf("write after failover: %v", err)
	}
	if endorsed, _ := b.counts(); len(endorsed) != 1 {
		t.Fatalf("second endpoint endorsed %d transactions, want 1", len(endorsed))
	}

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := l.Subscribe(sctx, network.Position{})
	if err != nil {
		t.Fatalf("Subscribe after failover: %v", err)
	}
	if got := collect(t, ch, 4); len(got) != 4 {
		t.Fatalf("events %v", got)
	}
}

// A submit whose gateway goes away after endorsement is sent, as the same
// transaction, through the next endpoint and confirmed there.
func TestSubmitMovesToNextEndpoint(t *testing.T) {
	pki := newTestPKI(t)
	a, b := regionsGateway(), regionsGateway()
	a.submit = func(string, int) (peer.TxValidationCode, bool, error) {
		return 0, false, status.Error(codes.Unavailable, "connection to orderer lost")
	}
	addrA, _ := serveFake(t, pki, a, false)
	addrB, _ := serveFake(t, pki, b, false)
	l := dialFake(t, pki, []string{addrA, addrB}, nil)
	if err := l.RetireBank(context.Background(), "B1"); err != nil {
		t.Fatal(err)
	}
	endorsedA, _ := a.counts()
	endorsedB, submitsB := b.counts()
	if len(endorsedA) != 1 || len(endorsedB) != 0 {
		t.Fatalf("endorsed on a %d, b %d; want once, on a", len(endorsedA), len(endorsedB))
	}
	if submitsB[endorsedA[0]] != 1 {
		t.Fatalf("b received submits %v, want the transaction endorsed on a", submitsB)
	}
}

// Every endpoint unavailable: the call fails as ErrUnavailable, naming
// the cause, after trying each.
func TestAllEndpointsDown(t *testing.T) {
	pki := newTestPKI(t)
	addrA, stopA := serveFake(t, pki, regionsGateway(), false)
	addrB, stopB := serveFake(t, pki, regionsGateway(), false)
	stopA()
	stopB()
	l := dialFake(t, pki, []string{addrA, addrB}, func(c *Config) { c.MaxAttempts = 2 })
	if _, err := l.Regions(context.Background()); !errors.Is(err, network.ErrUnavailable) {
		t.Fatalf("Regions = %v, want ErrUnavailable", err)
	}
}

// A peer requiring client TLS refuses a client without a certificate and
// serves one with tls_client_cert/tls_client_key.
func TestMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	g := regionsGateway()
	addr, _ := serveFake(t, pki, g, true)

	without := dialFake(t, pki, []string{addr}, func(c *Config) { c.MaxAttempts = 1 })
	if _, err := without.Regions(context.Background()); !errors.Is(err, network.ErrUnavailable) {
		t.Fatalf("without client cert: %v, want ErrUnavailable", err)
	}
	if g.evaluations() != 0 {
		t.Fatal("a client without certificate reached the gateway")
	}

	with := dialFake(t, pki, []string{addr}, func(c *Config) {
		c.TLSClientCertPath, c.TLSClientKeyPath = pki.certPath, pki.keyPath
	})
	if _, err := with.Regions(context.Background()); err != nil {
		t.Fatalf("with client cert: %v", err)
	}
}

func TestConfigClientTLSPairAndEndpoints(t *testing.T) {
	c := validConfig()
	c.TLSClientCertPath = "client.crt"
	var ce *ConfigError
	if err := c.WithDefaults().Validate(); !errors.As(err, &ce) || ce.Field != "tls_client_cert" {
		t.Fatalf("cert without key: %v", err)
	}
	c = validConfig()
	c.Endpoint, c.Endpoints = "", []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1"}
	if err := c.WithDefaults().Validate(); err != nil {
		t.Fatalf("endpoints only: %v", err)
	}
	if got := c.AllEndpoints(); len(got) != 2 {
		t.Fatalf("AllEndpoints = %v, want two without the repeat", got)
	}
	c.Endpoints = nil
	if err := c.WithDefaults().Validate(); !errors.As(err, &ce) || ce.Field != "endpoint" {
		t.Fatalf("no endpoint: %v", err)
	}
}

// The health record: a failed endpoint is passed over for its cooldown,
// doubling while it keeps failing, and used again after it.
func TestEndpointHealth(t *testing.T) {
	now := time.Unix(0, 0)
	e := newEndpoints([]*endpoint{{addr: "a"}, {addr: "b"}}, time.Second)
	e.now = func() time.Time { return now }
	if _, i, _ := e.pick(); i != 0 {
		t.Fatalf("first pick %d", i)
	}
	e.failed(0)
	if _, i, switched := e.pick(); i != 1 || !switched {
		t.Fatalf("after a failed: %d %v", i, switched)
	}
	e.failed(1)
	// Both down: the one whose cooldown ends first.
	now = now.Add(500 * time.Millisecond)
	e.failed(0) // a fails again: 2 s from now
	if _, i, _ := e.pick(); i != 1 {
		t.Fatalf("both down: picked %d, want b (cooldown ends first)", i)
	}
	now = now.Add(1500 * time.Millisecond)
	if _, i, _ := e.pick(); i != 1 {
		t.Fatalf("sticky: picked %d", i)
	}
	e.succeeded(1)
	if e.available() != 1 {
		t.Fatalf("available %d, want 1 (a still cooling down)", e.available())
	}
	now = now.Add(time.Second)
	if e.available() != 2 {
		t.Fatalf("available %d, want 2", e.available())
	}
}
