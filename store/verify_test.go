package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/pb"
	"google.golang.org/protobuf/proto"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/internal/testkit"
)

const amount = `"amount":16501.07`

// corruptedStore writes an uncompressed store (as ccnode import does) in
// which subject 1 has a record with amount, closes it, and flips the
// amount's last digit in the table file that holds it.
func corruptedStore(t *testing.T) (dir, table string) {
	t.Helper()
	dir = t.TempDir()
	db, err := Open(context.Background(), Options{Dir: dir, NoCompression: true, Logger: testkit.LoggerAt(t, slog.LevelWarn)})
	if err != nil {
		t.Fatal(err)
	}
	var recs []credit.Record
	for s := 1; s <= 40; s++ {
		for i := 0; i < 20; i++ {
			recs = append(recs, rec(t, s, "tax-bureau", fmt.Sprintf("t%d", i), credit.Tax, "2025-03-01", fmt.Sprintf(`{"amount":%d}`, 1000+i)))
		}
	}
	recs = append(recs, rec(t, 1, "tax-bureau", "arrears", credit.Tax, "2025-04-01", `{`+amount+`}`))
	put(t, db, recs...)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, testkit.FlipInTable(t, dir, []byte(amount))
}

func openAt(t *testing.T, dir string, o Options) (*DB, error) {
	t.Helper()
	o.Dir, o.Logger = dir, testkit.LoggerAt(t, slog.LevelError+1)
	db, err := Open(context.Background(), o)
	if err == nil {
		t.Cleanup(func() { db.Close() })
	}
	return db, err
}

// TestFlippedByteIsNeverServed: one byte changed in a table block on
// disk is never decoded into a record: a read of the block fails its
// checksum, opening with VerifyTables fails naming the table, and Verify
// finds it, after which the store refuses reports.
func TestFlippedByteIsNeverServed(t *testing.T) {
	dir, table := corruptedStore(t)
	altered := strings.Replace(amount, "07", "08", 1)
	subject := testkit.USCC(t, "440300", 1)

	db, err := openAt(t, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Badger's iterator ends the table's scan at the bad block without an
	// error; the read guard makes it the report's error, naming the table.
	recs, err := db.Report(context.Background(), subject, Filter{})
	for _, r := range recs {
		if strings.Contains(string(r.Attrs), altered) {
			t.Fatalf("report served the altered record %s", r.Attrs)
		}
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(table)) || recs != nil {
		t.Fatalf("report before verification: %d records, %v; want ErrCorrupt naming %s", len(recs), err, table)
	}
	if got := db.ChecksumFailures(); got != 1 {
		t.Fatalf("checksum failures counted after the report: %d, want 1", got)
	}
	db.Close()
	if db, err = openAt(t, dir, Options{}); err != nil {
		t.Fatal(err)
	}
	_, err = db.Verify(context.Background())
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(table)) {
		t.Fatalf("verify of a store with a flipped byte in %s: %v, want ErrCorrupt naming the table", table, err)
	}
	t.Log(err)
	if got := db.ChecksumFailures(); got != 1 {
		t.Fatalf("checksum failures counted: %d, want 1", got)
	}
	if _, err := db.Report(context.Background(), subject, Filter{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("report after a failed verification: %v, want ErrCorrupt", err)
	}
	// Another subject's records are in the same table: refused too.
	if _, err := db.Report(context.Background(), testkit.USCC(t, "440300", 30), Filter{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("report of another subject after a failed verification: %v, want ErrCorrupt", err)
	}
	db.Close()

	_, err = openAt(t, dir, Options{VerifyTables: true})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(table)) {
		t.Fatalf("open with VerifyTables: %v, want ErrCorrupt naming %s", err, table)
	}
}

// TestVerifyIntactStore: Verify reads every key of a sound store and
// finds nothing; reports are served after it.
func TestVerifyIntactStore(t *testing.T) {
	dir := t.TempDir()
	db, err := openAt(t, dir, Options{NoCompression: true})
	if err != nil {
		t.Fatal(err)
	}
	recs := randomRecords(t, 7, 500)
	put(t, db, recs...)
	db.Close()
	if db, err = openAt(t, dir, Options{VerifyTables: true}); err != nil {
		t.Fatal(err)
	}
	res, err := db.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Tables == 0 || res.Keys < int64(len(recs)) {
		t.Fatalf("verify read %+v of a store of %d records", res, len(recs))
	}
	if db.Corruption() != nil || db.ChecksumFailures() != 0 {
		t.Fatalf("sound store marked corrupt: %v", db.Corruption())
	}
	if _, err := db.Report(context.Background(), recs[0].Subject, Filter{}); err != nil {
		t.Fatal(err)
	}
}

// TestShortReportIsAnError: a subject whose records fill several blocks,
// one byte flipped in a block in the middle. Badger's scan stops at that
// block and returns the records before it, with no error (the issue's
// "report comes back short"); the report must fail instead, naming the
// table, count the failure and refuse later reports. Uncompressed tables
// (ccnode import's default) have their blocks' checksums checked by the
// guard; compressed ones (with a block cache) have their keys walked.
func TestShortReportIsAnError(t *testing.T) {
	const shortReportTag = "Jq8Wz3Kv5Rt7" // matches nothing before it: snappy keeps it as written
	for _, c := range []struct {
		name   string
		o      Options
		needle string // flipped: in a compressed block, a literal the compressor kept
	}{
		{"uncompressed", Options{NoCompression: true}, amount},
		{"snappy", Options{Compression: options.Snappy}, shortReportTag},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			db, err := openAt(t, dir, c.o)
			if err != nil {
				t.Fatal(err)
			}
			var recs []credit.Record
			pad := strings.Repeat("x", 200)
			for i := 0; i < 300; i++ {
				a := fmt.Sprintf(`{"amount":%d,"note":%q}`, 1000+i, pad)
				if i == 200 {
					a = `{` + amount + `,"note":"` + pad + `","tag":"` + shortReportTag + `"}`
				}
				recs = append(recs, rec(t, 1, "tax-bureau", fmt.Sprintf("t%03d", i), credit.Tax, fmt.Sprintf("2025-%02d-%02d", 1+i/28%12, 1+i%28), a))
			}
			recs = append(recs, rec(t, 2, "tax-bureau", "other", credit.Tax, "2025-01-01", `{"amount":1}`))
			put(t, db, recs...)
			db.Close()
			table := testkit.FlipInTable(t, dir, []byte(c.needle))

			if db, err = openAt(t, dir, Options{}); err != nil {
				t.Fatal(err)
			}
			got, err := db.Report(context.Background(), testkit.USCC(t, "440300", 1), Filter{})
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(table)) || !strings.Contains(err.Error(), "checksum") {
				t.Fatalf("report over a block that fails its checksum: %d of 300 records, err %v; want ErrCorrupt naming %s", len(got), err, table)
			}
			t.Log(err)
			if db.ChecksumFailures() != 1 || db.Corruption() == nil {
				t.Fatalf("failure not counted: %d, %v", db.ChecksumFailures(), db.Corruption())
			}
			if _, err := db.Report(context.Background(), testkit.USCC(t, "440300", 2), Filter{}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("report of another subject after the failure: %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestDecodeChecksum: the guard's reading of a block's checksum message
// agrees with protobuf's for each algorithm, and refuses a cut message.
func TestDecodeChecksum(t *testing.T) {
	for _, want := range []*pb.Checksum{
		{Algo: pb.Checksum_CRC32C, Sum: 1732699104},
		{Algo: pb.Checksum_XXHash64, Sum: 1<<64 - 1},
		{},
	} {
		b, err := proto.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		algo, sum, ok := decodeChecksum(b)
		if !ok || algo != want.Algo || sum != want.Sum {
			t.Errorf("decodeChecksum(%x) = %v %d %v, want %v %d", b, algo, sum, ok, want.Algo, want.Sum)
		}
		if len(b) > 0 {
			if _, _, ok := decodeChecksum(b[:len(b)-1]); ok {
				t.Errorf("decodeChecksum(%x) of a cut message: ok", b[:len(b)-1])
			}
		}
	}
}
