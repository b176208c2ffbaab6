package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// TestCandidateRegionJoins runs the README's three-node journey as
// separate processes up to the bank's query, then starts a fourth region,
// Dongguan, from its sample config: its node runs as a candidate (not
// ready, refusing queries not_member) until its operator proposes it and
// two of the three regions approve it; then, with no restart, it is ready
// and Shenzhen's consolidated report has Dongguan's part.
func TestCandidateRegionJoins(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs four nodes")
	}
	j := newJourney(t)
	query, _ := j.runToQuery(readJourney(t, "../../README.md", threeNodesSection))

	const dg, dgConfig = "441900", "configs/441900.yaml"
	if out, err := j.exec([]string{"init", "--config", dgConfig}); err != nil {
		t.Fatalf("init %s: %v\n%s", dgConfig, err, out)
	}
	j.startNode(0, []string{"run", "--config", dgConfig})
	dgNode := j.nodes[len(j.nodes)-1]
	tc, err := node.ClientTLS(filepath.Join(j.dir, dgNode.ca), "", "")
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	readyz := func() (int, node.APIError, error) {
		resp, err := hc.Get(dgNode.bank + "/readyz")
		if err != nil {
			return 0, node.APIError{}, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var e node.APIError
		if resp.StatusCode != http.StatusOK {
			if err := json.Unmarshal(b, &e); err != nil {
				return resp.StatusCode, e, fmt.Errorf("readyz %d: %s: %w", resp.StatusCode, b, err)
			}
		}
		return resp.StatusCode, e, nil
	}

	// A candidate: up, not ready, and saying what to do.
	code, e, err := readyz()
	if err != nil || code != http.StatusServiceUnavailable || e.Code != string(credit.CodeNotMember) ||
		!strings.Contains(e.Message, "candidate") || !strings.Contains(e.Message, "ccnode region propose") {
		t.Fatalf("candidate's /readyz: %d %+v %v, want 503 not_member naming the candidacy and 'ccnode region propose'", code, e, err)
	}
	// The bank asks Dongguan directly: refused not_member.
	dgQuery := j.substitute(append(append([]string{}, query[1:]...), "--json"))
	for i, a := range dgQuery {
		switch {
		case a == "--node" && i+1 < len(dgQuery):
			dgQuery[i+1] = dgNode.bank
		case a == "--ca-file" && i+1 < len(dgQuery):
			dgQuery[i+1] = dgNode.ca
		}
	}
	out, err := j.exec(dgQuery)
	if err == nil || !strings.Contains(out, string(credit.CodeNotMember)) || !strings.Contains(out, "candidate") {
		t.Fatalf("a query at the candidate: %v\n%s\nwant refused not_member as a candidate", err, out)
	}

	// A candidate cannot vote, not even for itself: refused denied (403),
	// saying so in the operator's terms.
	selfVote := j.substitute([]string{"region", "approve", "--admin", "http://127.0.0.1:9449", "--operator-token-file", "data/441900/operator.token", dg})
	if out, err := j.exec(selfVote); err == nil || !strings.Contains(out, string(credit.CodeDenied)) || !strings.Contains(out, "candidate awaiting approval") {
		t.Fatalf("a candidate's vote: %v\n%s\nwant refused denied, naming the candidacy", err, out)
	}

	// Its operator proposes it; Shenzhen and Guangzhou approve (2 of 3).
	for _, args := range [][]string{
		{"region", "propose", "--admin", "http://127.0.0.1:9449", "--operator-token-file", "data/441900/operator.token", "--descriptor", "data/441900/member.json"},
		{"region", "approve", "--admin", "http://127.0.0.1:9443", "--operator-token-file", "data/440300/operator.token", dg},
		{"region", "approve", "--admin", "http://127.0.0.1:9441", "--operator-token-file", "data/440100/operator.token", dg},
	} {
		args = j.substitute(args)
		out, err := j.exec(args)
		if err != nil {
			t.Fatalf("ccnode %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("ccnode %s\n%s", strings.Join(args, " "), out)
	}

	// Admitted without a restart: ready, and part of Shenzhen's report.
	testkit.Eventually(t, 60*time.Second, func() error {
		code, e, err := readyz()
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("Dongguan's /readyz: %d %s: %s", code, e.Code, e.Message)
		}
		return nil
	})
	testkit.Eventually(t, 60*time.Second, func() error {
		r, err := j.regionPart(j.substitute(query[1:]), dg)
		if err != nil {
			return err
		}
		if r.Status != node.StatusOK || r.Receipt == nil {
			return fmt.Errorf("Dongguan's part: %s %s %s", r.Status, r.Reason, r.Message)
		}
		return nil
	})
}
