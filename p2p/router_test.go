package p2p_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/p2p"
	"github.com/prdcredit/ccnode/p2p/p2ptest"
)

func mustAddr(t testing.TB, s string) ma.Multiaddr {
	t.Helper()
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func byRegion(t *testing.T, res p2p.Result) map[credit.RegionID]p2p.RegionResult {
	t.Helper()
	m := map[credit.RegionID]p2p.RegionResult{}
	for _, r := range res.Regions {
		m[r.Region] = r
	}
	return m
}

func TestQueryConsolidated(t *testing.T) {
	c := newCluster(t, 4, 3) // region 4 is on the ledger but unreachable
	home, reg, other := c.nodes[0], c.nodes[1], c.nodes[2]
	reg.store.Put(c.subject, p2ptest.Records(c.subject, 183))
	home.store.Put(c.subject, p2ptest.Records(c.subject, 12))
	// other holds nothing on the subject: no_data with a receipt.
	q := c.query(c.bank, c.consent, c.cats)

	res := home.router.Query(context.Background(), q)
	if len(res.Regions) != 4 {
		t.Fatalf("asked %d regions, want 4", len(res.Regions))
	}
	if first := res.Regions[0]; first.Region != reg.region.Member.ID || !first.Registration {
		t.Errorf("first region %s (registration %v), want the registration region %s first", first.Region, first.Registration, reg.region.Member.ID)
	}
	got := byRegion(t, res)
	want := map[credit.RegionID]p2p.Status{
		reg.region.Member.ID:        p2p.StatusAnswered,
		home.region.Member.ID:       p2p.StatusAnswered,
		other.region.Member.ID:      p2p.StatusNoData,
		c.nodes[3].region.Member.ID: p2p.StatusUnreachable,
	}
	for id, st := range want {
		r := got[id]
		if r.Status != st {
			t.Errorf("region %s: status %s (err %v), want %s", id, r.Status, r.Err, st)
		}
	}
	if r := got[c.nodes[3].region.Member.ID]; !errors.Is(r.Err, p2p.ErrUnreachable) {
		t.Errorf("unreachable region error %v does not wrap ErrUnreachable", r.Err)
	}
	wantCount := map[*node]int{reg: 183 * 4 / 12, home: 4, other: 0}
	_ = wantCount
	for _, nd := range []*node{reg, home, other} {
		r := got[nd.region.Member.ID]
		if r.Receipt == nil || r.Report == nil {
			t.Fatalf("region %s: no receipt or report", nd.region.Member.ID)
		}
		if r.Receipt.RecordCount != r.Report.Count() {
			t.Errorf("region %s: receipt count %d, report %d", nd.region.Member.ID, r.Receipt.RecordCount, r.Report.Count())
		}
		if !credit.CategoriesSubset(r.Report.Categories(), c.cats) {
			t.Errorf("region %s returned categories %v outside %v", nd.region.Member.ID, r.Report.Categories(), c.cats)
		}
		// Durable before the answer: the answering region logged it.
		logged := nd.store.Receipts()
		if len(logged) != 1 || logged[0].ID != r.Receipt.ID || r.LeafIndex != 0 {
			t.Errorf("region %s logged %d receipts, leaf %d", nd.region.Member.ID, len(logged), r.LeafIndex)
		}
		// The ack goes back (in-process for the home region) and is stored.
		a, err := home.router.Ack(context.Background(), r.Receipt)
		if err != nil {
			t.Fatalf("ack to %s: %v", nd.region.Member.ID, err)
		}
		stored, ok := nd.store.Ack(r.Receipt.ID)
		if !ok || string(stored.Sig) != string(a.Sig) {
			t.Errorf("region %s did not store the ack", nd.region.Member.ID)
		}
	}
	if n := got[reg.region.Member.ID].Report.Count(); n == 0 || n >= 183 {
		t.Errorf("registration region returned %d records; want the query's categories only", n)
	}
}

func TestAckRefused(t *testing.T) {
	c := newCluster(t, 3, 3)
	home, other := c.nodes[0], c.nodes[1]
	q := c.query(c.bank, c.consent, c.cats)
	r := home.router.Ask(context.Background(), other.region.Member.ID, q)
	if r.Status != p2p.StatusNoData {
		t.Fatalf("status %s: %v", r.Status, r.Err)
	}
	tests := []struct {
		name string
		ack  func() credit.Ack
		code p2p.Code
	}{
		{"signed by another key", func() credit.Ack {
			a, _ := credit.NewAck(r.Receipt, home.region.Member.ID, c.now, c.nodes[2].region.Key)
			return a
		}, p2p.CodeBadSignature},
		{"names another digest", func() credit.Ack {
			rc := *r.Receipt
			rc.RecordCount++
			a, _ := credit.NewAck(&rc, home.region.Member.ID, c.now, home.region.Key)
			return a
		}, p2p.CodeBadSignature},
		{"unknown receipt", func() credit.Ack {
			rc := *r.Receipt
			rc.ID = "0123456789abcdef0123456789abcdef"
			a, _ := credit.NewAck(&rc, home.region.Member.ID, c.now, home.region.Key)
			return a
		}, p2p.CodeBadRequest},
		{"claims another requester", func() credit.Ack {
			a, _ := credit.NewAck(r.Receipt, c.nodes[2].region.Member.ID, c.now, c.nodes[2].region.Key)
			return a
		}, p2p.CodeNotMember},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := home.router.Acknowledge(context.Background(), other.region.Member.ID, tt.ack())
			var e *p2p.Error
			if !errors.As(err, &e) || e.Code != tt.code {
				t.Fatalf("ack: %v, want code %s", err, tt.code)
			}
			if _, ok := other.store.Ack(r.Receipt.ID); ok {
				t.Fatal("a refused ack was stored")
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	c := newCluster(t, 3, 3)
	home, reg := c.nodes[0], c.nodes[1]
	reg.store.Put(c.subject, p2ptest.Records(c.subject, 20))
	otherBank, err := p2ptest.NewBank("bank-b", regionIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	c.ledger.PutBank(otherBank.Member)
	retiredBank, _ := p2ptest.NewBank("bank-retired", regionIDs[0])
	retiredBank.Member.Status = credit.StatusRetired
	c.ledger.PutBank(retiredBank.Member)
	unknownBank, _ := p2ptest.NewBank("bank-unknown", regionIDs[0])
	retiredConsent := c.newConsent("consent-retired", retiredBank.Member.ID, c.cats, c.now.Add(-time.Hour), c.now.Add(time.Hour), true)
	unknownConsent := c.newConsent("consent-unknown", unknownBank.Member.ID, c.cats, c.now.Add(-time.Hour), c.now.Add(time.Hour), true)
	unrecorded := c.newConsent("consent-missing", c.bank.Member.ID, c.cats, c.now.Add(-time.Hour), c.now.Add(time.Hour), false)
	revoked := c.newConsent("consent-revoked", c.bank.Member.ID, c.cats, c.now.Add(-time.Hour), c.now.Add(time.Hour), true)
	c.ledger.Revoke(revoked.ID, c.now.Add(-time.Minute))
	expired := c.newConsent("consent-expired", c.bank.Member.ID, c.cats, c.now.Add(-48*time.Hour), c.now.Add(-time.Hour), true)
	narrow := c.newConsent("consent-narrow", c.bank.Member.ID, []credit.Category{credit.Tax}, c.now.Add(-time.Hour), c.now.Add(time.Hour), true)
	altered := c.newConsent("consent-altered", c.bank.Member.ID, c.cats, c.now.Add(-time.Hour), c.now.Add(time.Hour), true)
	altered.ValidUntil = altered.ValidUntil.Add(365 * 24 * time.Hour)

	tests := []struct {
		name  string
		query func() *credit.Query
		setup func() func()
		code  p2p.Code
	}{
		{"stale", func() *credit.Query {
			q, _ := p2ptest.Query(c.bank, c.consent, c.cats, c.now.Add(-10*time.Minute))
			return q
		}, nil, p2p.CodeStale},
		{"bad signature", func() *credit.Query {
			q := c.query(c.bank, c.consent, c.cats)
			q.Nonce += "x"
			return q
		}, nil, p2p.CodeBadSignature},
		{"bank unknown", func() *credit.Query { return c.query(unknownBank, unknownConsent, c.cats) }, nil, p2p.CodeBankUnknown},
		{"bank retired", func() *credit.Query { return c.query(retiredBank, retiredConsent, c.cats) }, nil, p2p.CodeBankRetired},
		{"no consent", func() *credit.Query { return c.query(c.bank, unrecorded, c.cats) }, nil, p2p.CodeNoConsent},
		{"consent revoked", func() *credit.Query { return c.query(c.bank, revoked, c.cats) }, nil, p2p.CodeConsentRevoked},
		{"consent expired", func() *credit.Query { return c.query(c.bank, expired, c.cats) }, nil, p2p.CodeConsentExpired},
		{"consent out of scope", func() *credit.Query { return c.query(c.bank, narrow, c.cats) }, nil, p2p.CodeConsentOutOfScope},
		{"consent wrong grantee", func() *credit.Query { return c.query(otherBank, c.consent, c.cats) }, nil, p2p.CodeConsentWrongGrantee},
		{"consent mismatch", func() *credit.Query { return c.query(c.bank, altered, c.cats) }, nil, p2p.CodeConsentMismatch},
		{"unavailable: ledger view too old", func() *credit.Query { return c.query(c.bank, c.consent, c.cats) }, func() func() {
			c.ledger.SetFail(errors.New("ledger view older than the grace period"))
			return func() { c.ledger.SetFail(nil) }
		}, p2p.CodeUnavailable},
		{"unavailable: receipt log failing", func() *credit.Query { return c.query(c.bank, c.consent, c.cats) }, func() func() {
			reg.store.SetAppendErr(errors.New("disk full"))
			return func() { reg.store.SetAppendErr(nil) }
		}, p2p.CodeUnavailable},
		{"internal: handler panic recovered", func() *credit.Query { return c.query(c.bank, c.consent, c.cats) }, func() func() {
			reg.store.SetPanic(true)
			return func() { reg.store.SetPanic(false) }
		}, p2p.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				defer tt.setup()()
			}
			before := len(reg.store.Receipts())
			r := home.router.Ask(context.Background(), reg.region.Member.ID, tt.query())
			if r.Status != p2p.StatusRefused {
				t.Fatalf("status %s (%v), want refused", r.Status, r.Err)
			}
			var e *p2p.Error
			if !errors.As(r.Err, &e) || e.Code != tt.code {
				t.Fatalf("refusal %v, want code %s", r.Err, tt.code)
			}
			if !errors.Is(r.Err, &p2p.Error{Code: tt.code}) {
				t.Errorf("errors.Is does not match code %s", tt.code)
			}
			if r.Report != nil || r.Receipt != nil {
				t.Error("a refusal carries data")
			}
			if n := len(reg.store.Receipts()); n != before {
				t.Errorf("a refused query logged a receipt")
			}
		})
	}
	// After all that (a panic included) the region still answers.
	r := home.router.Ask(context.Background(), reg.region.Member.ID, c.query(c.bank, c.consent, c.cats))
	if r.Status != p2p.StatusAnswered {
		t.Fatalf("after refusals: %s %v", r.Status, r.Err)
	}
}

func TestReplay(t *testing.T) {
	c := newCluster(t, 3, 3)
	home, reg := c.nodes[0], c.nodes[1]
	q := c.query(c.bank, c.consent, c.cats)
	for i, want := range []p2p.Status{p2p.StatusNoData, p2p.StatusRefused} {
		qc := *q
		r := home.router.Ask(context.Background(), reg.region.Member.ID, &qc)
		if r.Status != want {
			t.Fatalf("ask %d: %s (%v), want %s", i, r.Status, r.Err, want)
		}
		if want == p2p.StatusRefused && p2p.CodeOf(r.Err) != p2p.CodeReplayed {
			t.Fatalf("ask %d: %v, want replayed", i, r.Err)
		}
	}
	// The own region goes through the same checks in-process.
	for i, want := range []p2p.Code{"", p2p.CodeReplayed} {
		qc := *q
		r := home.router.Ask(context.Background(), home.region.Member.ID, &qc)
		if got := p2p.CodeOf(r.Err); got != want {
			t.Fatalf("local ask %d: code %q (%v), want %q", i, got, r.Err, want)
		}
	}
}

// rawAsk writes raw bytes on a report stream and decodes what comes back.
func rawAsk(t *testing.T, from host.Host, to peer.ID, raw []byte) *p2p.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := from.NewStream(ctx, to, p2p.ReportProtocol(testNet))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The server may stop reading (CloseRead) before all of an oversized
	// frame is written, so the write's error is not the test's business.
	go func() {
		_, _ = st.Write(raw)
		_ = st.CloseWrite()
	}()
	b, err := p2p.ReadFrame(st, p2p.MaxResponseFrame)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p2p.DecodeResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func frame(payload []byte) []byte {
	b := []byte{}
	for n := uint64(len(payload)); ; n >>= 7 {
		if n < 0x80 {
			b = append(b, byte(n))
			break
		}
		b = append(b, byte(n)|0x80)
	}
	return append(b, payload...)
}

func TestMalformedRequests(t *testing.T) {
	c := newCluster(t, 3, 3)
	home, reg := c.nodes[0], c.nodes[1]
	good, err := p2p.EncodeRequest(&p2p.Request{Requester: home.region.Member.ID, Query: *c.query(c.bank, c.consent, c.cats)})
	if err != nil {
		t.Fatal(err)
	}
	asOther, _ := p2p.EncodeRequest(&p2p.Request{Requester: c.nodes[2].region.Member.ID, Query: *c.query(c.bank, c.consent, c.cats)})
	invalidQuery := *c.query(c.bank, c.consent, c.cats)
	invalidQuery.Subject = "not-a-uscc"
	badQuery, _ := p2p.EncodeRequest(&p2p.Request{Requester: home.region.Member.ID, Query: invalidQuery})
	tests := []struct {
		name string
		raw  []byte
		code p2p.Code
	}{
		{"empty stream", nil, p2p.CodeBadRequest},
		{"truncated frame", frame(good)[:len(good)/2], p2p.CodeBadRequest},
		{"length prefix over the request limit", frame(make([]byte, p2p.MaxRequestFrame+1)), p2p.CodeTooLarge},
		{"huge length prefix only", []byte{0xff, 0xff, 0xff, 0xff, 0x0f}, p2p.CodeTooLarge},
		{"overlong varint", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, p2p.CodeBadRequest},
		{"garbage", frame([]byte("GET / HTTP/1.1\r\n\r\n")), p2p.CodeBadRequest},
		{"wrong version", frame(append([]byte{0x08, 0x02}, good[2:]...)), p2p.CodeBadRequest},
		{"no query", frame(good[:2]), p2p.CodeBadRequest},
		{"invalid query", frame(badQuery), p2p.CodeBadRequest},
		{"claims another region", frame(asOther), p2p.CodeNotMember},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := rawAsk(t, home.host, reg.host.ID(), tt.raw)
			if resp.Err == nil || resp.Err.Code != tt.code {
				t.Fatalf("response error %v, want %s", resp.Err, tt.code)
			}
		})
	}
}

func TestRetiredRequesterRefused(t *testing.T) {
	c := newCluster(t, 3, 3)
	home, reg := c.nodes[0], c.nodes[1]
	m := home.region.Member
	m.Status = credit.StatusRetired
	c.ledger.PutRegion(m)
	r := home.router.Ask(context.Background(), reg.region.Member.ID, c.query(c.bank, c.consent, c.cats))
	if p2p.CodeOf(r.Err) != p2p.CodeNotMember {
		t.Fatalf("retired requester: %s %v", r.Status, r.Err)
	}
}

// TestBadAnswers puts a dishonest or broken region behind the protocol id
// and checks that the requester drops its data.
func TestBadAnswers(t *testing.T) {
	c := newCluster(t, 3, 3)
	home, reg := c.nodes[0], c.nodes[1]
	reg.store.Put(c.subject, p2ptest.Records(c.subject, 30))
	tests := []struct {
		name   string
		mutate func(*p2p.Response) []byte
	}{
		{"record changed after signing", func(r *p2p.Response) []byte {
			r.Report.Sections[0].Records[0].Attrs = []byte(`{"amount":1}`)
			b, _ := p2p.EncodeResponse(r)
			return frame(b)
		}},
		{"record dropped", func(r *p2p.Response) []byte {
			r.Report.Sections[0].Records = r.Report.Sections[0].Records[1:]
			b, _ := p2p.EncodeResponse(r)
			return frame(b)
		}},
		{"signed by another key", func(r *p2p.Response) []byte {
			_ = r.Receipt.Sign(c.nodes[2].region.Key)
			b, _ := p2p.EncodeResponse(r)
			return frame(b)
		}},
		{"receipt names another requester", func(r *p2p.Response) []byte {
			r.Receipt.Requester = c.nodes[2].region.Member.ID
			_ = r.Receipt.Sign(reg.region.Key)
			b, _ := p2p.EncodeResponse(r)
			return frame(b)
		}},
		{"receipt of another query", func(r *p2p.Response) []byte {
			r.Receipt.Query.Nonce = "another-nonce-1"
			_ = r.Receipt.Sign(reg.region.Key)
			b, _ := p2p.EncodeResponse(r)
			return frame(b)
		}},
		{"oversized answer", func(r *p2p.Response) []byte {
			return []byte{0x80, 0x80, 0x80, 0x08} // 16 MiB announced
		}},
		{"garbage answer", func(r *p2p.Response) []byte { return frame([]byte{0x0a, 0xff}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Replace the honest handler with one that answers honestly
			// and then alters the answer.
			reg.host.SetStreamHandler(p2p.ReportProtocol(testNet), func(st network.Stream) {
				defer st.Close()
				b, err := p2p.ReadFrame(st, p2p.MaxRequestFrame)
				if err != nil {
					st.Reset()
					return
				}
				req, err := p2p.DecodeRequest(b)
				if err != nil {
					st.Reset()
					return
				}
				resp, err := reg.server.Answer(context.Background(), st.Conn().RemotePeer(), req)
				if err != nil {
					st.Reset()
					return
				}
				_, _ = st.Write(tt.mutate(resp))
			})
			defer reg.server.Register(reg.host)
			r := home.router.Ask(context.Background(), reg.region.Member.ID, c.query(c.bank, c.consent, c.cats))
			if r.Status != p2p.StatusBadAnswer || !errors.Is(r.Err, p2p.ErrBadAnswer) {
				t.Fatalf("status %s (%v), want bad_answer", r.Status, r.Err)
			}
			if r.Report != nil || r.Receipt != nil {
				t.Fatal("unverified data returned")
			}
		})
	}
}

func TestAskTimesOut(t *testing.T) {
	c := newCluster(t, 3, 3)
	home, reg := c.nodes[0], c.nodes[1]
	release := make(chan struct{})
	defer close(release)
	reg.host.SetStreamHandler(p2p.ReportProtocol(testNet), func(st network.Stream) {
		<-release // a region that never answers
		st.Reset()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	r := home.router.Ask(ctx, reg.region.Member.ID, c.query(c.bank, c.consent, c.cats))
	if r.Status != p2p.StatusUnreachable {
		t.Fatalf("status %s (%v), want unreachable", r.Status, r.Err)
	}
}

func TestCodesClosedSet(t *testing.T) {
	for _, c := range []p2p.Code{p2p.CodeNotMember, p2p.CodeBadRequest, p2p.CodeTooLarge, p2p.CodeStale, p2p.CodeReplayed,
		p2p.CodeBadSignature, p2p.CodeBankUnknown, p2p.CodeBankRetired, p2p.CodeNoConsent, p2p.CodeConsentRevoked,
		p2p.CodeConsentExpired, p2p.CodeConsentOutOfScope, p2p.CodeConsentWrongGrantee, p2p.CodeConsentMismatch,
		p2p.CodeUnavailable, p2p.CodeInternal} {
		if !c.Known() {
			t.Errorf("%s not known", c)
		}
	}
	if p2p.Code("teapot").Known() {
		t.Error("unknown code accepted")
	}
	if p2p.CodeOf(fmt.Errorf("wrapped: %w", p2p.Refuse(p2p.CodeStale, "x"))) != p2p.CodeStale {
		t.Error("CodeOf does not see through wrapping")
	}
	if !p2p.CodeUnavailable.Retryable() || p2p.CodeReplayed.Retryable() {
		t.Error("retryability wrong")
	}
}
