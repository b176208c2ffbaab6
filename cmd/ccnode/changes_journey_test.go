package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/node/bankclient"
)

// TestConsortiumChangesJourney runs the README's "Three nodes on one
// machine" up to the bank's query and then "Changing the consortium", each
// command a process of the built binary: Dongguan joins as a candidate and
// is accepted by two of three regions, Guangzhou rotates its node key and
// restarts, three of four regions retire Zhuhai, and the audit over every
// export finds nothing. Meanwhile a bank queries Shenzhen's node without
// pause, and every answer must be what the README says a bank sees: whole,
// with every part answered, but for Dongguan absent until its acceptance,
// Guangzhou unavailable while it restarts, and Zhuhai retired once retired.
func TestConsortiumChangesJourney(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs four nodes")
	}
	began := time.Now()
	j := newJourney(t)
	readme := "../../README.md"
	query, _ := j.runToQuery(readJourney(t, readme, threeNodesSection))
	changes := readJourney(t, readme, changesSection)

	bank := j.startBank(j.substitute(query[1:]))
	ran := map[string]int{}
	for _, st := range changes {
		if st.mark == markWait {
			// The audit's exports must hold every receipt the bank got.
			bank.Stop()
		}
		for _, what := range j.step(st) {
			ran[what]++
		}
	}
	outcomes := bank.Stop()
	for _, want := range []string{"init", "run", "import", "region propose", "region approve", "region retire", "keys rotate", "query", "receipts export", "audit"} {
		if ran[want] == 0 {
			t.Errorf("the README's section never runs ccnode %s", want)
		}
	}
	if j.members["441900"] != node.StatusOK || j.members["440400"] != node.StatusRetired {
		t.Errorf("after the section the members are %v, want Dongguan active and Zhuhai retired", j.members)
	}
	j.checkBankSaw(outcomes)
	t.Logf("%d bank queries during the changes; the test ran %s", len(outcomes), time.Since(began).Round(time.Second))
}

// startBank queries as the README's query command does (its node, CA,
// bank, key and consent), through the Go bank client.
func (j *journey) startBank(query []string) *queryLoop {
	t := j.t
	arg := func(flag string) string {
		v := flagValue(query, flag)
		if v == "" {
			t.Fatalf("the README's query %q has no %s", query, flag)
		}
		return v
	}
	key, err := node.LoadKeyFile(filepath.Join(j.dir, arg("--key")))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(j.dir, arg("--consent")))
	if err != nil {
		t.Fatal(err)
	}
	var g credit.ConsentGrant
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	tc, err := bankclient.TLSConfig(filepath.Join(j.dir, arg("--ca-file")), "", "")
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	cl := bankclient.New(arg("--node"), bankclient.WithHTTPClient(hc), bankclient.WithBank(credit.BankID(arg("--bank")), key))
	l := startQueryLoop(context.Background(), cl, &g)
	t.Cleanup(func() {
		l.Stop()
		hc.CloseIdleConnections()
	})
	return l
}

// phases is when, by the journey's events, the consortium changed.
type phases struct {
	// joinVoted: the vote that accepted Dongguan began; joinSeen: the
	// reader's next query, with Dongguan's part, ended.
	joinVoted, joinSeen time.Time
	// restartBegan: Guangzhou's node got Ctrl-C; restartSeen: the
	// reader's next query, with Guangzhou's part answered, ended.
	restartBegan, restartSeen time.Time
	retireVoted, retireSeen   time.Time
}

// phasesOf reads the journey's events: each change, and the reader's query
// that followed it (which asks again until the report shows the change).
func (j *journey) phasesOf() phases {
	t := j.t
	var p phases
	var pending *time.Time
	for _, ev := range j.events {
		switch {
		case ev.what == "region approve" && strings.Contains(ev.out, `"accepted"`):
			p.joinVoted, pending = ev.start, &p.joinSeen
		case ev.what == "stop" && ev.args[0] == "configs/440100.yaml":
			p.restartBegan, pending = ev.start, &p.restartSeen
		case ev.what == "region retire" && strings.Contains(ev.out, `"accepted"`):
			p.retireVoted, pending = ev.start, &p.retireSeen
		case ev.what == "query" && pending != nil:
			*pending, pending = ev.end, nil
		}
	}
	for name, at := range map[string]time.Time{"Dongguan's acceptance": p.joinSeen, "Guangzhou's restart": p.restartSeen, "Zhuhai's retirement": p.retireSeen} {
		if at.IsZero() {
			t.Fatalf("the journey shows no query after %s", name)
		}
	}
	return p
}

// checkBankSaw holds every answer the bank got against the README: a
// refusal of the whole query never; Shenzhen's part always answered;
// Dongguan's absent until the vote that accepted it, then answered or
// `unavailable` until the reader's query showed it (its node has not yet
// seen the acceptance and published its addresses), answered from then on; Guangzhou's answered
// but for `unavailable` between its Ctrl-C and the reader's query that
// showed it back; Zhuhai's answered until the vote that retired it,
// `retired` (no records) from the reader's query that showed it on, and
// never answered again once reported retired.
func (j *journey) checkBankSaw(outcomes []queryOutcome) {
	t := j.t
	p := j.phasesOf()
	seen := map[string]int{}
	var zhRetiredAt time.Time
	for i, o := range outcomes {
		fail := func(format string, args ...any) {
			t.Errorf("bank query %d (%s..%s): %s", i, o.start.Format("15:04:05.000"), o.end.Format("15:04:05.000"), fmt.Sprintf(format, args...))
		}
		if o.err != nil {
			fail("refused: %v", o.err)
			continue
		}
		parts := map[credit.RegionID]bankclient.RegionStatus{}
		for _, st := range o.res.Regions {
			if _, twice := parts[st.Region]; twice {
				fail("two parts of region %s", st.Region)
			}
			parts[st.Region] = st
		}
		answered := func(r credit.RegionID) bool {
			st := parts[r]
			return st.Status == node.StatusOK && st.RecordCount > 0 && st.Receipt != nil
		}
		if !answered("440300") {
			fail("Shenzhen's part: %+v", parts["440300"])
		}
		switch dg, ok := parts["441900"]; {
		case !ok && o.start.After(p.joinSeen):
			fail("no part of Dongguan after the reader's query showed it")
		case !ok:
			seen["Dongguan absent"]++
		case o.end.Before(p.joinVoted):
			fail("a part of Dongguan before the vote that accepted it: %+v", dg)
		case answered("441900"):
			seen["Dongguan answered"]++
		case dg.Status == node.StatusUnavailable && o.start.Before(p.joinSeen):
			seen["Dongguan unavailable until its node sees its acceptance"]++
		default:
			fail("Dongguan's part: %s %s %s", dg.Status, dg.Reason, dg.Message)
		}
		switch gz := parts["440100"]; {
		case answered("440100"):
			seen["Guangzhou answered"]++
		case gz.Status == node.StatusUnavailable && o.end.After(p.restartBegan) && o.start.Before(p.restartSeen):
			seen["Guangzhou unavailable while it restarts"]++
		default:
			fail("Guangzhou's part: %s %s %s", gz.Status, gz.Reason, gz.Message)
		}
		switch zh := parts["440400"]; {
		case zh.Status == node.StatusRetired && zh.Report == nil && zh.RecordCount == 0 && !o.end.Before(p.retireVoted):
			seen["Zhuhai retired"]++
			if zhRetiredAt.IsZero() {
				zhRetiredAt = o.end
			}
		case answered("440400") && o.start.Before(p.retireSeen) && (zhRetiredAt.IsZero() || o.start.Before(zhRetiredAt)):
			seen["Zhuhai answered"]++
		default:
			fail("Zhuhai's part: %s %s %s (%d records)", zh.Status, zh.Reason, zh.Message, zh.RecordCount)
		}
		for r := range parts {
			if !slices.Contains([]credit.RegionID{"440300", "440100", "440400", "441900"}, r) {
				fail("a part of region %s, never a member", r)
			}
		}
	}
	t.Logf("the bank's answers: %v; Guangzhou's restart window %s", seen, p.restartSeen.Sub(p.restartBegan).Round(time.Millisecond))
	// Each phase had queries, or the test proved nothing about it.
	for _, want := range []string{"Dongguan absent", "Dongguan answered", "Guangzhou answered", "Zhuhai answered", "Zhuhai retired"} {
		if seen[want] == 0 {
			t.Errorf("no bank query saw %s", want)
		}
	}
}
