package consortium

import (
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// A member region that holds another region's bank's signed query (every
// region the bank's home asks receives one) cannot have a third region
// answer it: Zhuhai relays Shenzhen's bank's query to Guangzhou, which
// holds records on the subject, as a request of its own. Guangzhou refuses
// it as wrong_home_region and logs no receipt; the bank's own query,
// through Shenzhen, is then answered by Guangzhou as usual.
func TestRelayedQueryRefused(t *testing.T) {
	f := startReplayFixture(t, time.Minute)
	q, err := f.bank.Query(f.ent.USCC, f.cats, credit.PurposeCreditReview, &f.grant, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f.markLogs()
	if code := requestP2P(t, f.c.Region("440400"), f.gz, q); code != credit.CodeWrongHomeRegion {
		t.Fatalf("Guangzhou's answer to Zhuhai's relay of a Shenzhen bank's query: %q; want refusal %s", code, credit.CodeWrongHomeRegion)
	}
	f.logsUnchanged(t)
	// The relay spent nothing: the same query through its home is answered.
	f.ask(t, q)
}
