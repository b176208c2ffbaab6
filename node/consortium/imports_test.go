package consortium

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/store"
	"github.com/prdcredit/ccnode/store/ingest"
)

// importFeed is n JSON lines over n/100+1 subjects with a bad line every
// 500th line; it returns the feed, its subjects and the bad lines' count.
func importFeed(t *testing.T, n int) ([]byte, []credit.USCC, int) {
	t.Helper()
	var b bytes.Buffer
	var subjects []credit.USCC
	bad := 0
	cats := credit.AllCategories()
	for i := 0; i < n; i++ {
		if i%100 == 0 {
			subjects = append(subjects, testkit.USCC(t, "440300", 5000+i/100))
		}
		if i%500 == 250 {
			b.WriteString(`{"uscc":"91440300000000000X","source":"x","source_id":"1","category":"tax","date":"2020-01-01","attrs":{}}` + "\n")
			bad++
		}
		fmt.Fprintf(&b, `{"uscc":%q,"source":"dept%02d","source_id":"r%d","category":%q,"date":"2024-%02d-%02d","attrs":{"amount":%d,"note":"%s"}}`+"\n",
			subjects[len(subjects)-1], i%7, i, cats[i%len(cats)], 1+i%12, 1+i%28, i, strings.Repeat("x", 120))
	}
	return b.Bytes(), subjects, bad
}

// cutReader ends with an error after n bytes: a client whose connection
// is lost part way through an upload.
type cutReader struct {
	r io.Reader
	n int
}

var errCut = errors.New("connection lost (test)")

func (c *cutReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, errCut
	}
	if len(p) > c.n {
		p = p[:c.n]
	}
	k, err := c.r.Read(p)
	c.n -= k
	return k, err
}

// An import streamed to a running node (node.Open, its admin listener):
// the body is far larger than http.max_body_bytes and is not refused for
// it (other admin calls still are); rejected lines come back on the
// answer; the records are served from the store the node holds; an upload
// cut part way leaves its committed batches, and the rest sent from the
// stored progress completes it to the same store as one uninterrupted
// import; a stream starting elsewhere than the progress is refused; an
// input already done is skipped. An empty store is named in /readyz.
func TestImportThroughAdminAPI(t *testing.T) {
	r, _, tok, logs := openOperated(t, "alice")
	if len(logs.Lines("the record store is empty")) == 0 {
		t.Error("a node started on an empty store does not say so in its log")
	}
	ctx := context.Background()
	cl := &node.Client{Base: r.HTTPAddr(), Admin: r.AdminAddr(), OperatorToken: tok["alice"]}

	ready := func() map[string]string {
		resp, err := http.Get("http://" + r.HTTPAddr() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]string
		json.NewDecoder(resp.Body).Decode(&m)
		return m
	}
	if m := ready(); m["status"] != "ready" || !strings.Contains(m["store"], "empty") {
		t.Fatalf("readyz of a node on an empty store: %v, want ready and the store named empty", m)
	}

	feed, subjects, bad := importFeed(t, 12000)
	if int64(len(feed)) <= r.Config().HTTP.MaxBodyBytes {
		t.Fatalf("feed of %d bytes is not larger than max_body_bytes %d", len(feed), r.Config().HTTP.MaxBodyBytes)
	}
	// Other admin calls keep their body limit.
	big := bytes.Repeat([]byte(" "), int(r.Config().HTTP.MaxBodyBytes)+1)
	// (Answered 413, or the connection closed while the body was still
	// being sent: either way it was not read.)
	var se *node.StatusError
	if resp, err := cl.OpenAdminStream(ctx, http.MethodPost, "/v1/banks", bytes.NewReader(big)); err == nil {
		resp.Body.Close()
		t.Fatal("a bank registration over max_body_bytes was accepted")
	} else if errors.As(err, &se) && se.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("bank registration over max_body_bytes: %v, want 413", err)
	}

	const id = "test:feed-1"
	params := func(offset int64) url.Values {
		return url.Values{"name": {"feed.jsonl"}, "id": {id}, "format": {"jsonl"}, "batch_lines": {"500"},
			"offset": {strconv.FormatInt(offset, 10)}}
	}
	var rejected []ingest.Rejection
	onEvent := func(ev node.ImportEvent) error {
		if ev.Rejected != nil {
			rejected = append(rejected, *ev.Rejected)
		}
		return nil
	}

	// Cut after about a third: the batches committed before stay.
	_, err := cl.Import(ctx, params(0), &cutReader{r: bytes.NewReader(feed), n: len(feed) / 3}, onEvent)
	if err == nil {
		t.Fatal("an upload cut part way reported success")
	}
	var prog *node.ImportProgress
	testkit.Eventually(t, 10*time.Second, func() error {
		// The node ends the cut import once it sees the connection gone.
		// The client can see the cut before the node has even listed the
		// import as running, so an empty list alone does not say it ended:
		// its progress must be stored too.
		if list, err := cl.Imports(ctx); err != nil || len(list) > 0 {
			return fmt.Errorf("imports still running: %v %v", list, err)
		}
		if p, err := cl.ImportProgress(ctx, id); err != nil || !p.Found {
			return fmt.Errorf("no progress stored yet: %+v %v", p, err)
		}
		return nil
	})
	if prog, err = cl.ImportProgress(ctx, id); err != nil || !prog.Found || prog.Done || prog.Offset <= 0 || prog.Offset >= int64(len(feed)) {
		t.Fatalf("progress after a cut upload: %+v, %v", prog, err)
	}
	if feed[prog.Offset-1] != '\n' {
		t.Fatalf("progress offset %d is not at a line's start", prog.Offset)
	}
	st, err := r.Store.Stats(ctx)
	if err != nil || st.Records == 0 {
		t.Fatalf("stats after a cut upload: %+v %v; want the committed batches", st, err)
	}

	// A stream starting elsewhere than the progress is refused before
	// anything is read.
	if _, err := cl.Import(ctx, params(prog.Offset+1), bytes.NewReader(feed[prog.Offset+1:]), onEvent); err == nil {
		t.Fatal("a stream starting past the stored progress was accepted")
	} else if code, _ := statusOf(t, err); code != http.StatusConflict {
		t.Fatalf("mismatched offset: %v, want 409", err)
	}

	res, err := cl.Import(ctx, params(prog.Offset), bytes.NewReader(feed[prog.Offset:]), onEvent)
	if err != nil || res.Error != "" {
		t.Fatalf("resumed import: %+v %v", res, err)
	}
	if got := prog.Rejected + res.Summary.Rejected; got != int64(bad) {
		t.Fatalf("rejected %d lines over both runs, want %d", got, bad)
	}
	if len(rejected) < int(res.Summary.Rejected) || rejected[len(rejected)-1].Field != "uscc" || rejected[len(rejected)-1].File != "feed.jsonl" {
		t.Fatalf("rejections sent: %d, last %+v", len(rejected), rejected[len(rejected)-1])
	}
	if res, err := cl.Import(ctx, params(0), bytes.NewReader(feed), onEvent); err != nil || !res.Skipped {
		t.Fatalf("an input already imported: %+v %v, want skipped", res, err)
	}

	// The same feed imported offline in one go makes the same records.
	ref, err := store.Open(ctx, store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	im, err := ingest.New(ref, ingest.Options{Transactional: true, Stdin: bytes.NewReader(feed)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := im.Import(ctx, []string{"-"}); err != nil {
		t.Fatal(err)
	}
	want, _ := ref.Stats(ctx)
	got, _ := r.Store.Stats(ctx)
	if got.Records != want.Records || got.Subjects != want.Subjects || got.Records != int64(12000) {
		t.Fatalf("store after a cut and resumed import: %d records on %d subjects, want %d on %d", got.Records, got.Subjects, want.Records, want.Subjects)
	}
	for _, u := range []credit.USCC{subjects[0], subjects[len(subjects)/2], subjects[len(subjects)-1]} {
		a, err := r.Store.Report(ctx, u, store.Filter{})
		b, err2 := ref.Report(ctx, u, store.Filter{})
		if err != nil || err2 != nil || len(a) != len(b) || len(a) == 0 {
			t.Fatalf("records of %s: %d served, %d imported offline (%v %v)", u, len(a), len(b), err, err2)
		}
	}
	if m := ready(); m["status"] != "ready" || m["store"] != "" {
		t.Fatalf("readyz after the import: %v", m)
	}
}
