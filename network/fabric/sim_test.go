package fabric

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/network"
)

// simRegion is one region's identity on the simulated channel.
type simRegion struct {
	member credit.RegionMember
	key    ed25519.PrivateKey
	ledger *Ledger
}

// startSim serves a simPeer over TLS on 127.0.0.1:0 and dials one client
// per region, each acting as its own MSP id — as each region's node dials
// its own gateway peer on Fabric.
func startSim(t testing.TB, logger *slog.Logger, mspIDs ...string) (*simPeer, []*Ledger) {
	t.Helper()
	pki := newTestPKI(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := newSimPeer()
	srv := grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&pki.serverCert)))
	gateway.RegisterGatewayServer(srv, p)
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-served })
	var ls []*Ledger
	for _, m := range mspIDs {
		l, err := Dial(context.Background(), Config{
			Endpoint: lis.Addr().String(), TLSCACertPath: pki.caPath, MSPID: m,
			CertPath: pki.certPath, KeyPath: pki.keyPath, Channel: "prdcredit", Chaincode: "ccnode",
		}, logger.With("client", m))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		ls = append(ls, l)
	}
	return p, ls
}

func simRegions(t *testing.T) []simRegion {
	t.Helper()
	var out []simRegion
	msps := []string{"SZMSP", "GZMSP", "ZHMSP"}
	_, ls := startSim(t, testkit.LoggerAt(t, slog.LevelDebug), msps...)
	for i, r := range []credit.Region{
		{ID: "440300", Name: "Shenzhen", Divisions: []string{"4403"}},
		{ID: "440100", Name: "Guangzhou", Divisions: []string{"4401"}},
		{ID: "440400", Name: "Zhuhai", Divisions: []string{"4404"}},
	} {
		pub, key, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, simRegion{
			member: credit.RegionMember{ID: r.ID, Name: r.Name, Divisions: r.Divisions, MSPID: msps[i],
				PeerID: "peer-" + string(r.ID), PubKey: pub, Status: credit.StatusActive},
			key: key, ledger: ls[i],
		})
	}
	return out
}

// The real contract behind the real client: membership rules, consent
// revocation and the event stream, end to end over gRPC and TLS.
func TestSimulatedChannel(t *testing.T) {
	rs := simRegions(t)
	sz, gz := rs[0], rs[1]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var members []credit.RegionMember
	for _, r := range rs {
		members = append(members, r.member)
	}
	if err := sz.ledger.Bootstrap(ctx, members, nil); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	if err := gz.ledger.Bootstrap(ctx, members, nil); !errors.Is(err, network.ErrConflict) {
		t.Fatalf("replayed Bootstrap = %v, want ErrConflict", err)
	}
	got, err := gz.ledger.Regions(ctx)
	if err != nil || len(got) != 3 {
		t.Fatalf("Regions = %v, %v", got, err)
	}

	other := sz.member
	other.Name = "renamed by Guangzhou"
	if err := gz.ledger.UpdateRegion(ctx, other); !errors.Is(err, network.ErrDenied) {
		t.Fatalf("GZ updating SZ = %v, want ErrDenied", err)
	}

	sum := sha256.Sum256([]byte("consent document"))
	now := time.Now().UTC()
	c := credit.ConsentCommitment{ID: "consent-sim-1", Commitment: sum[:], Region: sz.member.ID,
		ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(24 * time.Hour)}
	if err := sz.ledger.RecordConsent(ctx, c); err != nil {
		t.Fatalf("RecordConsent: %v", err)
	}
	if _, err := gz.ledger.RevokeConsent(ctx, c.ID); !errors.Is(err, network.ErrDenied) {
		t.Fatalf("GZ revoking SZ's consent = %v, want ErrDenied", err)
	}
	rev, err := sz.ledger.RevokeConsent(ctx, c.ID)
	if err != nil || rev.Status != credit.ConsentRevoked || rev.RevokedAt == nil {
		t.Fatalf("RevokeConsent = %+v, %v", rev, err)
	}
	if _, st, err := gz.ledger.ConsentAt(ctx, c.ID, rev.RevokedAt.Add(-time.Nanosecond)); err != nil || st != credit.ConsentActive {
		t.Fatalf("status just before revocation = %v, %v", st, err)
	}
	if _, st, err := gz.ledger.ConsentAt(ctx, c.ID, *rev.RevokedAt); err != nil || st != credit.ConsentRevoked {
		t.Fatalf("status at revocation = %v, %v", st, err)
	}

	// Every event from the start, then resume after the first one.
	ch, err := gz.ledger.Subscribe(ctx, network.Position{})
	if err != nil {
		t.Fatal(err)
	}
	var evs []network.Event
	for len(evs) < 3 {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream closed after %d events", len(evs))
			}
			// The bootstrap's transaction gives one event per member, at
			// one Position: keep the first.
			if n := len(evs); n == 0 || evs[n-1].Position != ev.Position {
				evs = append(evs, ev)
			}
		case <-ctx.Done():
			t.Fatalf("only %d events", len(evs))
		}
	}
	kinds := []network.EventKind{evs[0].Kind, evs[1].Kind, evs[2].Kind}
	want := []network.EventKind{network.EventMemberChanged, network.EventConsentRecorded, network.EventConsentRevoked}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("kinds %v, want %v", kinds, want)
		}
	}
	if !evs[2].Time.Equal(*rev.RevokedAt) || evs[2].Consent.ID != c.ID {
		t.Fatalf("revocation event %+v, want time %v", evs[2], rev.RevokedAt)
	}
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	ch2, err := sz.ledger.Subscribe(rctx, evs[0].Position)
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-ch2; ev.Position != evs[1].Position {
		t.Fatalf("resumed at %v, want %v", ev.Position, evs[1].Position)
	}
}
