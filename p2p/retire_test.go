package p2p_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/p2p"
)

// A region answers the queries asked while it was a member: a retirement
// that reaches either side's membership while an exchange is in flight
// lets the answer and its ack cross, and only then is the peer
// disconnected; nothing new starts with it.
func TestRetirementDuringExchange(t *testing.T) {
	for _, c := range []struct {
		name string
		sees string // whose membership learns that the other side retired
	}{
		{name: "requester sees the answerer retire", sees: "requester"},
		{name: "answerer sees the requester retire", sees: "answerer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			inFlight, retired := make(chan struct{}), make(chan struct{})
			acked := make(chan *credit.Ack, 1)
			var p *pair
			h := &handler{}
			h.answer = func(ctx context.Context, from peer.ID, req *p2p.Request, w p2p.AnswerWriter) error {
				close(inFlight)
				<-retired // the vote commits while this node answers
				return answering(t, p.ans, testRecords(testSubject(t), 3, false), 2).answer(ctx, from, req, w)
			}
			h.ack = func(_ context.Context, _ peer.ID, _ []byte, a *credit.Ack) error {
				acked <- a
				return nil
			}
			ansMembers := p2p.NewMembership(testkit.LoggerAt(t, slog.LevelDebug), nil)
			p = newPair(t, h, p2p.ServerConfig{Members: ansMembers})
			if err := ansMembers.SetMembers([]credit.RegionMember{p.req.Member, p.ans.Member}); err != nil {
				t.Fatal(err)
			}
			ansMembers.Attach(p.ansHost)
			p.members.Attach(p.reqHost)

			members, self, other, stay, gone := p.members, p.reqHost, p.ansHost, p.req.Member, p.ans.Member
			if c.sees == "answerer" {
				members, self, other, stay, gone = ansMembers, p.ansHost, p.reqHost, p.ans.Member, p.req.Member
			}
			gone.Status = credit.StatusRetired
			go func() {
				<-inFlight
				if err := members.SetMembers([]credit.RegionMember{stay, gone}); err != nil {
					t.Error(err)
				}
				close(retired)
			}()
			reply, err := p.client.Ask(context.Background(), p.ans.Member.ID, p.request, func(r *p2p.Reply) *credit.Ack {
				a, err := credit.NewAck(&r.Receipt, p.req.Member.ID, time.Now(), p.req.Key)
				if err != nil {
					t.Error(err)
					return nil
				}
				return &a
			})
			if err != nil || !reply.Acked || reply.AckOutcome() != nil || len(reply.Records) != 3 {
				t.Fatalf("exchange across the retirement: %+v, %v", reply, err)
			}
			if a := <-acked; a.ReceiptID != reply.Receipt.ID {
				t.Fatalf("answerer kept an ack of %s, want %s", a.ReceiptID, reply.Receipt.ID)
			}
			// Once the exchange is over the retired peer is cut off.
			waitFor(t, "the retired peer to be disconnected", func() bool {
				return self.Network().Connectedness(other.ID()) != network.Connected
			})
			if c.sees == "requester" {
				if _, err := p.ask(context.Background()); !errors.Is(err, p2p.ErrUnreachable) {
					t.Fatalf("asking the retired region: %v, want ErrUnreachable", err)
				}
			}
		})
	}
}
