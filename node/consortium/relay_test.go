package consortium

import (
	"context"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/p2p"
)

// A member region that holds another region's bank's signed query (every
// region the bank's home asks receives one) cannot have a third region
// answer it: Zhuhai relays Shenzhen's bank's query to Guangzhou, which
// holds records on the subject, as a request of its own. Guangzhou refuses
// it as wrong_home_region and logs no receipt; the bank's own query,
// through Shenzhen, is then answered by Guangzhou as usual.
func TestRelayedQueryRefused(t *testing.T) {
	f := startReplayFixture(t, time.Minute)
	zh := f.c.Region("440400")
	q, err := f.bank.Query(f.ent.USCC, f.cats, credit.PurposeCreditReview, &f.grant, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	qj, _, err := q.CanonicalAndDigest()
	if err != nil {
		t.Fatal(err)
	}
	f.markLogs()
	ctx := context.Background()
	s, err := zh.Node.Host().NewStream(ctx, f.gz.Node.Host().ID(), p2p.ReportProtocol(node.DefaultNetworkID))
	if err != nil {
		t.Fatalf("stream to Guangzhou: %v", err)
	}
	defer s.Close()
	if _, err := s.Write(p2p.EncodeRequest(zh.ID, qj)); err != nil {
		t.Fatal(err)
	}
	s.CloseWrite()
	b, err := p2p.ReadFrame(s, p2p.MaxResponseFrame)
	if err != nil {
		t.Fatalf("reading Guangzhou's answer: %v", err)
	}
	_, _, err = p2p.DecodeResponse(b)
	if got := credit.CodeOf(err); got != credit.CodeWrongHomeRegion {
		t.Fatalf("Guangzhou's answer to Zhuhai's relay of a Shenzhen bank's query: %v; want refusal %s", err, credit.CodeWrongHomeRegion)
	}
	f.logsUnchanged(t)
	// The relay spent nothing: the same query through its home is answered.
	f.ask(t, q)
}
