package p2p_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/p2p"
	"github.com/prdcredit/ccnode/p2p/p2ptest"
)

// BenchmarkPipeline is one answer's work without the network: the
// answering pipeline (checks, signing), encoding, decoding and the
// requester's verification, for a 183-record slice.
func BenchmarkPipeline(b *testing.B) {
	c := newCluster(b, 2, 2)
	home, reg := c.nodes[0], c.nodes[1]
	reg.store.Put(c.subject, p2ptest.Records(c.subject, 183))
	qs := make([]*p2p.Request, b.N)
	for i := range qs {
		q, _ := p2ptest.Query(c.bank, c.consent, c.cats, c.now)
		qs[i] = &p2p.Request{Requester: home.region.Member.ID, Query: *q}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := reg.server.Answer(context.Background(), home.host.ID(), qs[i])
		if err != nil {
			b.Fatal(err)
		}
		enc, err := p2p.EncodeResponse(resp)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p2p.DecodeResponse(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAskMocknet is a whole exchange in one process over mocknet
// (no transport security): request, answering pipeline, answer, and the
// requester's receipt and digest verification. Queries are signed before
// the timer starts (banks sign them, not nodes).
func BenchmarkAskMocknet(b *testing.B) {
	for _, inflight := range []int{1, 16} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			c := newCluster(b, 2, 2)
			home, reg := c.nodes[0], c.nodes[1]
			reg.store.Put(c.subject, p2ptest.Records(c.subject, 183))
			qs := make([]*credit.Query, b.N)
			for i := range qs {
				qs[i], _ = p2ptest.Query(c.bank, c.consent, c.cats, c.now)
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := 0; w < inflight; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1)) - 1
						if i >= b.N {
							return
						}
						if r := home.router.Ask(context.Background(), reg.region.Member.ID, qs[i]); r.Status != p2p.StatusAnswered {
							b.Error(r.Status, r.Err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}
