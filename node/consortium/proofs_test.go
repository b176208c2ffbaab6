package consortium

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"log/slog"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
)

// TestProofsVerifyIndependently runs a node, anchors two checkpoints and
// checks what its public API serves with other people's code only: the
// checkpoint with x/mod's note and formats' checkpoint parser (the
// standard verifier's path, keyed by the region's public key as the
// ledger holds it), and the inclusion and consistency proofs with a
// hashlib-only RFC 9162 verifier in python3.
func TestProofsVerifyIndependently(t *testing.T) {
	ctx := context.Background()
	c, err := Start(ctx, Options{Logger: testkit.LoggerAt(t, slog.LevelWarn), Mocknet: true, Tune: fastTune})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sz := c.Region("440300")
	bank := c.Banks[0]
	api := newAPIClient(t, c.HTTPClient(), sz.Node.HTTPURL())

	query := func(i int) string {
		t.Helper()
		ent := certified(t, c, testkit.USCC(t, "440300", 10+i))
		mustPut(t, sz, rec(t, ent.USCC, credit.Tax, i))
		g, _ := ent.Grant(bank.ID, sz.ID, []credit.Category{credit.Tax}, credit.PurposeCreditReview, time.Now(), time.Hour)
		g, _, err := sz.Node.RecordConsent(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		q, _ := bank.Query(ent.USCC, []credit.Category{credit.Tax}, credit.PurposeCreditReview, &g, time.Now())
		res, err := sz.Node.Query(ctx, &q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Regions {
			if r.Region == sz.ID && r.Receipt != nil {
				return r.Receipt.ID
			}
		}
		t.Fatalf("query %d: no receipt of %s", i, sz.ID)
		return ""
	}
	anchor := func() uint64 {
		t.Helper()
		if err := sz.Node.AnchorNow(ctx); err != nil {
			t.Fatal(err)
		}
		ac, ok, err := sz.Node.LatestCheckpoint()
		if err != nil || !ok {
			t.Fatalf("latest checkpoint: %v %v", ok, err)
		}
		return ac.Size
	}
	rid := query(0)
	from := anchor()
	for i := 1; i <= 4; i++ {
		query(i)
	}
	to := anchor()
	if from >= to {
		t.Fatalf("anchored sizes %d then %d", from, to)
	}

	// The checkpoint as a witness fetches it: the signed note, verified
	// with the region's key from its member record on the ledger.
	st, noteText := api.doH("GET", "/v1/checkpoint", map[string][]string{"Accept": {"text/plain"}}, nil)
	if st != 200 {
		t.Fatalf("checkpoint note: %d %s", st, noteText)
	}
	m, ok := sz.Node.View().Region(sz.ID)
	if !ok {
		t.Fatal("no member record of 440300")
	}
	origin := "ccnode/" + sz.Node.Config().P2P.NetworkID + "/440300"
	vkey, err := note.NewEd25519VerifierKey(origin, m.PubKey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	lc, _, _, err := log.ParseCheckpoint(noteText, origin, verifier)
	if err != nil {
		t.Fatalf("standard verifier refused the node's checkpoint:\n%s\n%v", noteText, err)
	}
	if lc.Size != to {
		t.Fatalf("note states size %d, want %d", lc.Size, to)
	}
	// Another key under the same name is refused.
	otherVkey, _ := note.NewEd25519VerifierKey(origin, c.Region("440100").Key.Public().(ed25519.PublicKey))
	other, _ := note.NewVerifier(otherVkey)
	if _, _, _, err := log.ParseCheckpoint(noteText, origin, other); err == nil {
		t.Fatal("checkpoint verified under another region's key")
	}

	// The proofs, from the public API, checked against the OpenAPI document.
	st, b := api.do("GET", "/v1/proofs/consistency?from="+strconv.FormatUint(from, 10)+"&to="+strconv.FormatUint(to, 10), "", nil)
	if st != 200 {
		t.Fatalf("consistency proof: %d %s", st, b)
	}
	var cp node.ConsistencyProof
	if err := json.Unmarshal(b, &cp); err != nil {
		t.Fatal(err)
	}
	if cp.From.Size != from || cp.To.Size != to || !bytes.Equal(cp.To.Root, lc.Hash) {
		t.Fatalf("consistency proof between %d and %d, root %x; want %d and %d, root %x", cp.From.Size, cp.To.Size, cp.To.Root, from, to, lc.Hash)
	}
	for _, ac := range []credit.AnchoredCheckpoint{cp.From, cp.To} {
		if _, _, _, err := log.ParseCheckpoint([]byte(ac.Note), origin, verifier); err != nil {
			t.Fatalf("checkpoint of size %d in the proof: %v", ac.Size, err)
		}
	}
	st, b = api.doH("GET", "/v1/receipts/"+rid, signedRead(t, bank, rid), nil)
	if st != 200 {
		t.Fatalf("receipt: %d %s", st, b)
	}
	var rp node.ReceiptProof
	if err := json.Unmarshal(b, &rp); err != nil {
		t.Fatal(err)
	}
	if rp.TreeSize != to {
		t.Fatalf("inclusion proof against size %d, want %d", rp.TreeSize, to)
	}

	in := map[string]any{
		"leaf": rp.Leaf, "index": rp.LeafIndex, "size": rp.TreeSize, "root": lc.Hash, "inclusion": rp.Proof,
		"from": cp.From.Size, "from_root": cp.From.Root, "to": cp.To.Size, "to_root": cp.To.Root, "consistency": cp.Proof,
	}
	if out, err := runVerifier(t, in); err != nil {
		t.Fatalf("independent verifier refused the node's proofs: %v\n%s", err, out)
	}
	// The verifier is not vacuous: another leaf, or a root the region did
	// not sign, fails.
	tampered := map[string]func(map[string]any){
		"leaf":      func(m map[string]any) { m["leaf"] = append(bytes.Clone(rp.Leaf), ' ') },
		"from root": func(m map[string]any) { m["from_root"] = bytes.Repeat([]byte{1}, 32) },
	}
	for name, f := range tampered {
		m := map[string]any{}
		for k, v := range in {
			m[k] = v
		}
		f(m)
		if out, err := runVerifier(t, m); err == nil {
			t.Fatalf("independent verifier accepted a tampered %s:\n%s", name, out)
		}
	}

	// Only anchored sizes, in order.
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"from=0&to=" + strconv.FormatUint(to, 10), 400},
		{"from=" + strconv.FormatUint(to, 10) + "&to=" + strconv.FormatUint(from, 10), 400},
		{"from=" + strconv.FormatUint(from, 10) + "&to=" + strconv.FormatUint(to+1, 10), 404},
		{"from=x&to=2", 400},
		{"to=2", 400},
	} {
		if st, b := api.do("GET", "/v1/proofs/consistency?"+tc.query, "", nil); st != tc.want {
			t.Errorf("consistency ?%s: %d %s, want %d", tc.query, st, b, tc.want)
		}
	}
}

// runVerifier runs testdata/rfc6962_verify.py on in; the test skips when
// no python3 is installed.
func runVerifier(t *testing.T, in map[string]any) ([]byte, error) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed: the independent RFC 9162 verifier cannot run")
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "testdata/rfc6962_verify.py")
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running python3: %v", err)
	}
	return out, err
}
