package p2p_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/p2p"
	"github.com/prdcredit/ccnode/p2p/p2ptest"
)

// TestCanonicalDecodersTakeTheWireForms: the query and the receipt as the
// report protocol carries them (their canonical forms) are decoded by
// credit's one-pass decoders, not left to encoding/json, and to what
// encoding/json gives.
func TestCanonicalDecodersTakeTheWireForms(t *testing.T) {
	c := newCluster(t, 2, 2)
	home, reg := c.nodes[0], c.nodes[1]
	reg.store.Put(c.subject, p2ptest.Records(c.subject, 20))
	q := c.query(c.bank, c.consent, c.cats)
	qc, _, err := q.CanonicalAndDigest()
	if err != nil {
		t.Fatal(err)
	}
	takesAsJSON(t, qc, credit.DecodeCanonicalQuery)
	resp, err := reg.server.Answer(context.Background(), home.host.ID(), &p2p.Request{Requester: home.region.Member.ID, Query: *q})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := resp.Receipt.LeafBytes()
	if err != nil {
		t.Fatal(err)
	}
	takesAsJSON(t, leaf, credit.DecodeCanonicalReceipt)
}

// takesAsJSON fails t unless decode accepts b and gives what encoding/json
// gives.
func takesAsJSON[T any](t *testing.T, b []byte, decode func([]byte) (T, bool)) {
	t.Helper()
	got, ok := decode(b)
	if !ok {
		t.Fatalf("%T: the one-pass decoder refused its canonical form %s", got, b)
	}
	var want T
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%T: one-pass %+v, encoding/json %+v", got, got, want)
	}
}
