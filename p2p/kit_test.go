package p2p_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/p2p"
)

// The p2p tests' kit: synthetic regions, queries and records, a fake
// Handler, and pairs of hosts on libp2p's mocknet. No ledger, no consent
// checks: the transport makes no credit decision.

const testNet = "test-net"

var regionIDs = []credit.RegionID{"440300", "440100", "440400", "440600"}
var divisions = []string{"4403", "4401", "4404", "4406"}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, func() error {
		if cond() {
			return nil
		}
		return fmt.Errorf("timed out waiting for %s", what)
	})
}

// region is a synthetic member region with its key.
type region struct {
	Member credit.RegionMember
	Key    ed25519.PrivateKey
}

func newRegion(t testing.TB, i int) region {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := p2p.PeerID(pub)
	if err != nil {
		t.Fatal(err)
	}
	return region{Key: key, Member: credit.RegionMember{
		ID: regionIDs[i], Name: "region " + string(regionIDs[i]), Divisions: []string{divisions[i]},
		PeerID: pid.String(), PubKey: pub, Status: credit.StatusActive,
	}}
}

func (r region) peer(t testing.TB) peer.ID {
	t.Helper()
	p, err := peer.Decode(r.Member.PeerID)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testSubject(t testing.TB) credit.USCC {
	t.Helper()
	u, err := credit.CompleteUSCC("91440100MA5FABCD1")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

var nonces atomic.Uint64

// newQuery is a bank's signed query on u under a consent issued by
// issuer, and its canonical JSON.
func newQuery(t testing.TB, u credit.USCC, issuer region) (*credit.Query, []byte) {
	t.Helper()
	_, bankKey, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now().UTC()
	cats := credit.AllCategories()
	g := &credit.ConsentGrant{
		Version: credit.ConsentVersion, ID: "consent-0001", Subject: u, Grantee: "bank-a", Categories: cats, Purpose: credit.PurposeLoanApplication,
		ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour), Region: issuer.Member.ID,
	}
	testkit.NewAuthority(t, issuer.Member.ID, issuer.Member.Divisions...).SignConsent(t, g, now.Add(-time.Hour))
	if err := g.Countersign(issuer.Key); err != nil {
		t.Fatal(err)
	}
	q := &credit.Query{
		Version: 1, Bank: "bank-a", Subject: u, Categories: cats, Purpose: g.Purpose,
		ConsentID: g.ID, Consent: g, Nonce: fmt.Sprintf("n%015d", nonces.Add(1)), Time: now,
	}
	if err := q.Sign(bankKey); err != nil {
		t.Fatal(err)
	}
	qj, _, err := q.CanonicalAndDigest()
	if err != nil {
		t.Fatal(err)
	}
	return q, qj
}

var testRecords = p2p.SyntheticRecords

// signedReceipt is the answering region's receipt over recs, in its leaf
// form.
func signedReceipt(t testing.TB, by region, req *p2p.Request, recs []credit.Record) []byte {
	t.Helper()
	rep := credit.NewReport(req.Query.Subject, recs)
	id, err := credit.ReceiptID(by.Member.ID, &req.Query)
	if err != nil {
		t.Fatal(err)
	}
	d := rep.Digest()
	r := credit.Receipt{
		Version: 1, ID: id, Query: req.Query, Requester: req.Requester, Answerer: by.Member.ID,
		Categories: rep.Categories(), ReportDigest: d[:], RecordCount: rep.Count(), Time: time.Now(),
	}
	leaf, err := r.SignLeaf(by.Key)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// handler is a fake p2p.Handler built from two functions.
type handler struct {
	answer func(ctx context.Context, from peer.ID, req *p2p.Request, w p2p.AnswerWriter) error
	ack    func(ctx context.Context, from peer.ID, receiptLeaf []byte, a *credit.Ack) error
}

func (h *handler) Answer(ctx context.Context, from peer.ID, req *p2p.Request, w p2p.AnswerWriter) error {
	return h.answer(ctx, from, req, w)
}

func (h *handler) Acknowledge(ctx context.Context, from peer.ID, receiptLeaf []byte, a *credit.Ack) error {
	if h.ack == nil {
		return nil
	}
	return h.ack(ctx, from, receiptLeaf, a)
}

// answering answers every request with recs under a receipt signed by
// by, handing them to the writer batch records at a time.
func answering(t testing.TB, by region, recs []credit.Record, batch int) *handler {
	return &handler{answer: func(_ context.Context, _ peer.ID, req *p2p.Request, w p2p.AnswerWriter) error {
		if err := w.Begin(signedReceipt(t, by, req, recs), 7); err != nil {
			return err
		}
		for i := 0; i < len(recs); i += batch {
			if err := w.Records(recs[i:min(i+batch, len(recs))]); err != nil {
				return err
			}
		}
		return nil
	}}
}

// pair is a requesting and an answering region on one mocknet.
type pair struct {
	mn         mocknet.Mocknet
	req, ans   region
	reqHost    host.Host
	ansHost    host.Host
	client     *p2p.Client
	server     *p2p.Server
	query      *credit.Query
	queryJSON  []byte
	request    []byte // the request frame
	serverConf p2p.ServerConfig
	members    *p2p.Membership // the requester's
}

// newPair builds the two regions, linked and connected, the answering
// one serving h (cfg's other fields apply), and a request frame.
func newPair(t testing.TB, h p2p.Handler, cfg p2p.ServerConfig) *pair {
	t.Helper()
	p := &pair{mn: mocknet.New(), req: newRegion(t, 0), ans: newRegion(t, 1)}
	t.Cleanup(func() { p.mn.Close() })
	add := func(r region, i int) host.Host {
		sk, err := crypto.UnmarshalEd25519PrivateKey(r.Key)
		if err != nil {
			t.Fatal(err)
		}
		// An address in mocknet's own shared range: nothing listens on it.
		h, err := p.mn.AddPeer(sk, ma.StringCast(fmt.Sprintf("/ip4/100.64.0.%d/tcp/4242", i)))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	p.reqHost, p.ansHost = add(p.req, 1), add(p.ans, 2)
	if err := p.mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if err := p.mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	members := p2p.NewMembership(testkit.LoggerAt(t, slog.LevelDebug), nil)
	if err := members.SetMembers([]credit.RegionMember{p.req.Member, p.ans.Member}); err != nil {
		t.Fatal(err)
	}
	cfg.NetworkID, cfg.Handler, cfg.Logger = testNet, h, testkit.LoggerAt(t, slog.LevelDebug)
	srv, err := p2p.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Register(p.ansHost)
	t.Cleanup(func() { srv.Close() })
	p.server, p.serverConf, p.members = srv, cfg, members
	p.client, err = p2p.NewClient(p2p.ClientConfig{Host: p.reqHost, NetworkID: testNet, Members: members, Timeout: 20 * time.Second, Logger: testkit.LoggerAt(t, slog.LevelDebug)})
	if err != nil {
		t.Fatal(err)
	}
	p.query, p.queryJSON = newQuery(t, testSubject(t), p.ans)
	p.request = p2p.EncodeRequest(p.req.Member.ID, p.queryJSON)
	return p
}

// ask is the client's Ask of the answering region, sending no ack.
func (p *pair) ask(ctx context.Context) (*p2p.Reply, error) {
	return p.client.Ask(ctx, p.ans.Member.ID, p.request, nil)
}

func ackJSON(a credit.Ack) ([]byte, error) { return json.Marshal(a) }
