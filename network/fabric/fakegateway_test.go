package fabric

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"github.com/hyperledger/fabric-protos-go-apiv2/msp"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/prdcredit/ccnode/internal/testkit"
)

// fakeGateway is a Fabric Gateway gRPC service in the test process. It
// speaks the real wire protocol to the real fabric-gateway client, so the
// client's proposal, endorse, submit, commit-status and event flows run
// unchanged; what the "contract" and the "orderer" do is scripted.
type fakeGateway struct {
	gateway.UnimplementedGatewayServer

	// contract answers a proposal: its result, or an error that becomes
	// the gRPC status (with per-peer ErrorDetail) the real gateway sends.
	contract func(fn string, args []string) ([]byte, error)
	// submit decides what the orderer does with the n-th Submit (from 1)
	// of txID: commit it with code (ok) or not, and what Submit returns.
	submit func(txID string, n int) (code peer.TxValidationCode, commit bool, err error)

	mu        sync.Mutex
	endorsed  []string // tx ids, in order
	evaluated int
	submits   map[string]int
	committed map[string]peer.TxValidationCode
	changed   chan struct{} // closed and replaced when committed changes
	events    []fakeEvent
}

type fakeEvent struct {
	block   uint64
	txID    string
	name    string
	payload []byte
}

func newFakeGateway() *fakeGateway {
	return &fakeGateway{
		submits:   map[string]int{},
		committed: map[string]peer.TxValidationCode{},
		changed:   make(chan struct{}),
		submit: func(string, int) (peer.TxValidationCode, bool, error) {
			return peer.TxValidationCode_VALID, true, nil
		},
	}
}

// refusal builds the status a real gateway returns when the chaincode
// fails on its first endorser, a peer of the caller's organisation (the
// fake's clients act as SZMSP): Aborted, with the peer's message in an
// ErrorDetail.
func refusal(msg string) error { return refusalBy("SZMSP", msg) }

// refusalBy is a refusal by a peer of mspID.
func refusalBy(mspID, msg string) error {
	st, err := status.New(codes.Aborted, "failed to endorse transaction, see attached details for more info").
		WithDetails(&gateway.ErrorDetail{Address: "127.0.0.1:7051", MspId: mspID, Message: "chaincode response 500, " + msg})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// proposal is what a peer reads from a signed proposal.
type proposal struct {
	txID, channel, mspID string
	time                 time.Time
	fn                   string
	args                 []string
}

func invocation(sp *peer.SignedProposal) (p proposal, err error) {
	var prop peer.Proposal
	if err = proto.Unmarshal(sp.GetProposalBytes(), &prop); err != nil {
		return
	}
	var hdr common.Header
	if err = proto.Unmarshal(prop.GetHeader(), &hdr); err != nil {
		return
	}
	var ch common.ChannelHeader
	if err = proto.Unmarshal(hdr.GetChannelHeader(), &ch); err != nil {
		return
	}
	var sh common.SignatureHeader
	if err = proto.Unmarshal(hdr.GetSignatureHeader(), &sh); err != nil {
		return
	}
	var id msp.SerializedIdentity
	if err = proto.Unmarshal(sh.GetCreator(), &id); err != nil {
		return
	}
	var cpp peer.ChaincodeProposalPayload
	if err = proto.Unmarshal(prop.GetPayload(), &cpp); err != nil {
		return
	}
	var cis peer.ChaincodeInvocationSpec
	if err = proto.Unmarshal(cpp.GetInput(), &cis); err != nil {
		return
	}
	a := cis.GetChaincodeSpec().GetInput().GetArgs()
	if len(a) == 0 {
		return p, fmt.Errorf("no function name")
	}
	for _, x := range a[1:] {
		p.args = append(p.args, string(x))
	}
	p.txID, p.channel, p.mspID, p.time, p.fn = ch.GetTxId(), ch.GetChannelId(), id.GetMspid(), ch.GetTimestamp().AsTime(), string(a[0])
	return p, nil
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// envelope is the prepared transaction the client parses its result from.
func envelope(txID, channel string, result []byte) *common.Envelope {
	action := mustMarshal(&peer.ChaincodeActionPayload{Action: &peer.ChaincodeEndorsedAction{
		ProposalResponsePayload: mustMarshal(&peer.ProposalResponsePayload{
			Extension: mustMarshal(&peer.ChaincodeAction{Response: &peer.Response{Status: 200, Payload: result}}),
		}),
	}})
	payload := mustMarshal(&common.Payload{
		Header: &common.Header{ChannelHeader: mustMarshal(&common.ChannelHeader{
			Type: int32(common.HeaderType_ENDORSER_TRANSACTION), ChannelId: channel, TxId: txID,
		})},
		Data: mustMarshal(&peer.Transaction{Actions: []*peer.TransactionAction{{Payload: action}}}),
	})
	return &common.Envelope{Payload: payload}
}

func (g *fakeGateway) Endorse(_ context.Context, req *gateway.EndorseRequest) (*gateway.EndorseResponse, error) {
	in, err := invocation(req.GetProposedTransaction())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	g.mu.Lock()
	g.endorsed = append(g.endorsed, in.txID)
	g.mu.Unlock()
	res, err := g.contract(in.fn, in.args)
	if err != nil {
		return nil, err
	}
	return &gateway.EndorseResponse{PreparedTransaction: envelope(in.txID, in.channel, res)}, nil
}

func (g *fakeGateway) Evaluate(_ context.Context, req *gateway.EvaluateRequest) (*gateway.EvaluateResponse, error) {
	in, err := invocation(req.GetProposedTransaction())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	g.mu.Lock()
	g.evaluated++
	g.mu.Unlock()
	res, err := g.contract(in.fn, in.args)
	if err != nil {
		return nil, err
	}
	return &gateway.EvaluateResponse{Result: &peer.Response{Status: 200, Payload: res}}, nil
}

func (g *fakeGateway) Submit(_ context.Context, req *gateway.SubmitRequest) (*gateway.SubmitResponse, error) {
	txID := req.GetTransactionId()
	g.mu.Lock()
	g.submits[txID]++
	n := g.submits[txID]
	g.mu.Unlock()
	code, commit, err := g.submit(txID, n)
	if commit {
		g.mu.Lock()
		if _, dup := g.committed[txID]; !dup {
			g.committed[txID] = code
			close(g.changed)
			g.changed = make(chan struct{})
		}
		g.mu.Unlock()
	}
	if err != nil {
		return nil, err
	}
	return &gateway.SubmitResponse{}, nil
}

// CommitStatus blocks until the transaction commits, as the real gateway
// does, or until the caller gives up.
func (g *fakeGateway) CommitStatus(ctx context.Context, req *gateway.SignedCommitStatusRequest) (*gateway.CommitStatusResponse, error) {
	return awaitCommit(ctx, req, func(txID string) (*gateway.CommitStatusResponse, <-chan struct{}) {
		g.mu.Lock()
		defer g.mu.Unlock()
		if code, ok := g.committed[txID]; ok {
			return &gateway.CommitStatusResponse{Result: code, BlockNumber: 7}, nil
		}
		return nil, g.changed
	})
}

// awaitCommit answers a commit-status request as the real gateway does:
// once the transaction has committed, or with the caller's context error.
// lookup reports the commit, or the channel closed at the next commit.
func awaitCommit(ctx context.Context, req *gateway.SignedCommitStatusRequest, lookup func(txID string) (*gateway.CommitStatusResponse, <-chan struct{})) (*gateway.CommitStatusResponse, error) {
	var r gateway.CommitStatusRequest
	if err := proto.Unmarshal(req.GetRequest(), &r); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	for {
		res, changed := lookup(r.GetTransactionId())
		if res != nil {
			return res, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
}

// ChaincodeEvents serves the scripted events from the requested position,
// skipping through AfterTransactionId as the real gateway does, then
// holds the stream open until the client leaves.
func (g *fakeGateway) ChaincodeEvents(req *gateway.SignedChaincodeEventsRequest, stream grpc.ServerStreamingServer[gateway.ChaincodeEventsResponse]) error {
	var r gateway.ChaincodeEventsRequest
	if err := proto.Unmarshal(req.GetRequest(), &r); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	var start uint64
	switch p := r.GetStartPosition().GetType().(type) {
	case nil:
		return status.Error(codes.InvalidArgument, "fake gateway: test expects an explicit start position")
	default:
		if s := r.GetStartPosition().GetSpecified(); s != nil {
			start = s.GetNumber()
		} else {
			return status.Errorf(codes.InvalidArgument, "fake gateway: unsupported start %T", p)
		}
	}
	after := r.GetAfterTransactionId()
	g.mu.Lock()
	evs := append([]fakeEvent(nil), g.events...)
	g.mu.Unlock()
	skipping := after != ""
	for _, e := range evs {
		if e.block < start {
			continue
		}
		if skipping {
			if e.block == start {
				if e.txID == after {
					skipping = false
				}
				continue
			}
			skipping = false
		}
		err := stream.Send(&gateway.ChaincodeEventsResponse{BlockNumber: e.block, Events: []*peer.ChaincodeEvent{{
			ChaincodeId: r.GetChaincodeId(), TxId: e.txID, EventName: e.name, Payload: e.payload,
		}}})
		if err != nil {
			return err
		}
	}
	<-stream.Context().Done()
	return nil
}

func (g *fakeGateway) counts() (endorsed []string, submits map[string]int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := map[string]int{}
	for k, v := range g.submits {
		s[k] = v
	}
	return append([]string(nil), g.endorsed...), s
}

// testPKI is a CA, a TLS server certificate for 127.0.0.1 and a client
// identity, written as PEM files the way cryptogen lays them out.
type testPKI struct {
	caPath, certPath, keyPath string
	serverCert                tls.Certificate
}

func newTestPKI(t testing.TB) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tlsca.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(cn string, ips []net.IP, dnsNames []string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: ips, DNSNames: dnsNames, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srvDER, srvKey := leaf("peer0.test", []net.IP{net.ParseIP("127.0.0.1")}, []string{"peer0.sz.ccnode.local"}, x509.ExtKeyUsageServerAuth)
	cliDER, cliKey := leaf("User1@sz.test", nil, nil, x509.ExtKeyUsageClientAuth)
	cliKeyDER, err := x509.MarshalPKCS8PrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	return testPKI{
		caPath:     write("ca.pem", "CERTIFICATE", caDER),
		certPath:   write("cert.pem", "CERTIFICATE", cliDER),
		keyPath:    write("key.pem", "PRIVATE KEY", cliKeyDER),
		serverCert: tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey},
	}
}

// startFake serves g over TLS on 127.0.0.1:0 and dials a Ledger to it.
// cfgEdit adjusts the client config (timeouts) before Dial.
func startFake(t *testing.T, g *fakeGateway, cfgEdit func(*Config)) *Ledger {
	t.Helper()
	return startFakeWith(t, testkit.LoggerAt(t, slog.LevelDebug), g, cfgEdit)
}

// startFakeTB is startFake for benchmarks: logs are discarded.
func startFakeTB(tb testing.TB, g *fakeGateway) *Ledger {
	tb.Helper()
	return startFakeWith(tb, slog.New(slog.DiscardHandler), g, nil)
}

func startFakeWith(t testing.TB, logger *slog.Logger, g *fakeGateway, cfgEdit func(*Config)) *Ledger {
	t.Helper()
	l, _ := startFakeServer(t, logger, g, cfgEdit)
	return l
}

// startFakeServer is startFakeWith that also returns a function stopping
// the server, as a peer that goes away.
func startFakeServer(t testing.TB, logger *slog.Logger, g *fakeGateway, cfgEdit func(*Config)) (*Ledger, func()) {
	t.Helper()
	pki := newTestPKI(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&pki.serverCert)))
	gateway.RegisterGatewayServer(srv, g)
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { srv.Stop(); <-served }) }
	t.Cleanup(stop)

	cfg := Config{
		Endpoint: lis.Addr().String(), TLSCACertPath: pki.caPath,
		MSPID: "SZMSP", CertPath: pki.certPath, KeyPath: pki.keyPath,
		Channel: "prdcredit", Chaincode: "ccnode",
		CommitStatusTimeout: 5 * time.Second,
	}
	if cfgEdit != nil {
		cfgEdit(&cfg)
	}
	l, err := Dial(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, stop
}
