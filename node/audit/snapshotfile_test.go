package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/network"
)

// bigSnapshot is the fixture's snapshot with n more consent records,
// every tenth revoked, written to a file.
func bigSnapshot(t *testing.T, f *fixture, n int) string {
	t.Helper()
	for i := range n {
		id := fmt.Sprintf("consent-bulk-%07d", i)
		c := credit.ConsentCommitment{ID: id, Commitment: bytes.Repeat([]byte{byte(i)}, 32), Region: sz,
			ValidFrom: t0, ValidUntil: t0.Add(24 * time.Hour), Status: credit.ConsentActive, RecordedAt: t0.Add(time.Duration(i) * time.Second)}
		if i%10 == 0 {
			rev := t0.Add(time.Hour)
			c.RevokedAt, c.Status = &rev, credit.ConsentRevoked
		}
		f.snap.ConsentRecords[id] = c
	}
	path := filepath.Join(t.TempDir(), "snapshot.json")
	var b bytes.Buffer
	if err := f.snap.Write(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSnapshotFileSameAsSnapshot: the file view answers every lookup as
// the snapshot read whole does, and audits the same.
func TestSnapshotFileSameAsSnapshot(t *testing.T) {
	f := newFixture(t, 12)
	f.grant("consent-a-0002", bankA, []credit.Category{credit.Penalty}, t0.Add(time.Minute))
	c := f.snap.ConsentRecords["consent-a-0002"]
	rev := f.when(7).Add(-10 * time.Second)
	c.RevokedAt, c.Status = &rev, credit.ConsentRevoked
	f.snap.ConsentRecords["consent-a-0002"] = c
	for _, i := range []int{6, 7} {
		f.receipts[i] = f.receipt(i, bankA, "consent-a-0002", []credit.Category{credit.Penalty})
		f.resign(i)
	}
	f.anchor()
	path := bigSnapshot(t, f, 3000)
	whole, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer whole.Close()
	mem, err := ReadSnapshot(whole)
	if err != nil {
		t.Fatal(err)
	}
	file, err := OpenSnapshotFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if len(file.ConsentRecords) != 0 || len(file.index) != len(mem.ConsentRecords) {
		t.Fatalf("%d records in memory, %d indexed; want 0 and %d", len(file.ConsentRecords), len(file.index), len(mem.ConsentRecords))
	}
	ctx := context.Background()
	ids := []string{"no-such-consent", ""}
	for id := range mem.ConsentRecords {
		ids = append(ids, id)
	}
	for _, id := range ids {
		for _, at := range []time.Time{t0.Add(-time.Hour), t0.Add(30 * time.Minute), t0.Add(2 * time.Hour), t0.Add(48 * time.Hour)} {
			wc, wst, werr := mem.ConsentAt(ctx, id, at)
			gc, gst, gerr := file.ConsentAt(ctx, id, at)
			if !reflect.DeepEqual(wc, gc) || wst != gst || (werr == nil) != (gerr == nil) || errors.Is(werr, network.ErrNotFound) != errors.Is(gerr, network.ErrNotFound) {
				t.Fatalf("consent %q at %s: file gives %+v %s %v, whole %+v %s %v", id, at, gc, gst, gerr, wc, wst, werr)
			}
		}
	}
	in := Inputs{Exports: []Source{BytesSource("sz.jsonl", encodeExport(t, credit.ExportAnswered, sz, f.answeredLines()))}}
	for name, v := range map[string]LedgerView{"whole": mem, "file": file} {
		rep, err := Run(ctx, in, v, testOptions(t))
		if err != nil {
			t.Fatal(err)
		}
		checkFindings(t, rep, []want{{RuleConsent, 7}})
		if rep.Findings[0].Code != credit.CodeConsentRevoked {
			t.Errorf("%s: %v", name, rep.Findings[0])
		}
	}
}

// readTracker counts the bytes read from a reader.
type readTracker struct {
	r io.Reader
	n int64
}

func (rt *readTracker) Read(p []byte) (int, error) {
	n, err := rt.r.Read(p)
	rt.n += int64(n)
	return n, err
}

// TestSnapshotDecoderHoldsOneRecord: the snapshot decoder hands each
// consent record on before it has read much past it, so it never holds
// the file (a json.Decoder asked for the whole object reads all of it
// before the first record comes out).
func TestSnapshotDecoderHoldsOneRecord(t *testing.T) {
	f := newFixture(t, 1)
	path := bigSnapshot(t, f, 5000)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rt := &readTracker{r: bytes.NewReader(b)}
	const readAhead = 16 << 10
	n := 0
	_, err = decodeSnapshot(rt, func(id string, c credit.ConsentCommitment, start, end int64) error {
		n++
		if ahead := rt.n - end; ahead > readAhead {
			return fmt.Errorf("record %s handed on with %d bytes read past it (file %d bytes)", id, ahead, len(b))
		}
		if !strings.Contains(string(b[start:end]), `"`+id+`"`) || c.ID != id {
			return fmt.Errorf("record %s at bytes %d..%d: %q", id, start, end, b[start:end])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 5001 {
		t.Fatalf("%d records", n)
	}
}

// TestSnapshotFileRefuses: the streamed reader refuses what ReadSnapshot
// refuses, with ErrSnapshotFormat.
func TestSnapshotFileRefuses(t *testing.T) {
	for _, in := range []string{
		``,
		`[]`,
		`{"format":"` + SnapshotFormat + `","consents":[]}`,
		`{"format":"` + SnapshotFormat + `","consents":{"a":1}}`,
		`{"format":"` + SnapshotFormat + `","consents":{"a":{}}`,
		`{"format":"ccnode-ledger-snapshot/1"}`,
		`{"format":"` + SnapshotFormat + `","regions":{"sz":[]}}`,
	} {
		path := filepath.Join(t.TempDir(), "s.json")
		if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenSnapshotFile(path); !errors.Is(err, ErrSnapshotFormat) {
			t.Errorf("OpenSnapshotFile(%q): %v, want ErrSnapshotFormat", in, err)
		}
	}
}

// FuzzSnapshotFile: on any bytes, the file view reads what ReadSnapshot
// reads (or refuses it too) and answers every consent lookup the same.
func FuzzSnapshotFile(f *testing.F) {
	f.Add([]byte(`{"format":"` + SnapshotFormat + `","consents":{"c1":{"id":"c1","recorded_at":"2026-01-01T00:00:00Z"},"c2":{"id":"c2"}}}`))
	f.Add([]byte(`{"format":"` + SnapshotFormat + `", "consents" : { "c1" : {"id":"c1"} , "c1":{"id":"c1b","revoked_at":"2026-01-01T00:00:00Z"}}}`))
	f.Add([]byte(`{"format":"` + SnapshotFormat + `","Consents":{"c\u0031":{"id":"x"}},"consents":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		mem, merr := ReadSnapshot(bytes.NewReader(data))
		file, ferr := readSnapshotFile(bytes.NewReader(data))
		if (merr == nil) != (ferr == nil) {
			t.Fatalf("ReadSnapshot: %v; file view: %v", merr, ferr)
		}
		if merr != nil {
			return
		}
		ctx := context.Background()
		at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
		for id := range mem.ConsentRecords {
			wc, wst, werr := mem.ConsentAt(ctx, id, at)
			gc, gst, gerr := file.ConsentAt(ctx, id, at)
			if !reflect.DeepEqual(wc, gc) || wst != gst || (werr == nil) != (gerr == nil) {
				t.Fatalf("consent %q: file gives %+v %s %v, whole %+v %s %v", id, gc, gst, gerr, wc, wst, werr)
			}
		}
		if len(file.index) < len(mem.ConsentRecords) {
			t.Fatalf("%d indexed, %d read", len(file.index), len(mem.ConsentRecords))
		}
	})
}
