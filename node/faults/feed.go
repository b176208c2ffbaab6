//go:build linux

package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/prdcredit/ccnode/credit"
)

// Feeds: the JSON Lines files `ccnode gen` writes and `ccnode import`
// reads, as the suites prepare them for their regions.

// FirstSubject is the enterprise of a generated feed's first line: the
// subject the suites query.
func FirstSubject(t testing.TB, feed string) credit.USCC {
	t.Helper()
	b, err := os.ReadFile(feed)
	if err != nil {
		t.Fatal(err)
	}
	var first struct {
		USCC credit.USCC `json:"uscc"`
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	if err := json.Unmarshal(line, &first); err != nil || first.USCC == "" {
		t.Fatalf("first line of %s %q: no enterprise (%v)", feed, line, err)
	}
	return first.USCC
}

// AppendCourtRecord adds a judicial record on subject to another region's
// feed, so that a consolidated report on subject has a slice from that
// region too. tag makes the source record id unique to the suite.
func AppendCourtRecord(t testing.TB, feed string, subject credit.USCC, region credit.RegionID, tag string) {
	t.Helper()
	f, err := os.OpenFile(feed, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fmt.Fprintf(f, `{"uscc":%q,"source":"court-%s","source_id":"%s-%s-1","category":"judicial","date":"2024-03-01","attrs":{"case_no":%q}}`+"\n",
		subject, region, tag, region, tag)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}
