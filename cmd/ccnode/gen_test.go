package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/credit/synth"
)

// runGenApp runs "ccnode gen args..." in process and returns its standard output.
func runGenApp(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &errOut
	err := app.Run(append([]string{"ccnode", "gen"}, args...))
	t.Logf("stderr: %s", errOut.String())
	return out.Bytes(), err
}

func TestGenCommand(t *testing.T) {
	jsonl, err := runGenApp(t, "--region", "440100", "--enterprises", "12", "--seed", "5")
	if err != nil {
		t.Fatal(err)
	}
	var lines int
	sc := bufio.NewScanner(bytes.NewReader(jsonl))
	for sc.Scan() {
		var r credit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d: %v", lines+1, err)
		}
		if err := r.Normalize(synth.DefaultAsOf, 0); err != nil {
			t.Fatalf("line %d: %v", lines+1, err)
		}
		if got := r.Subject.Division()[:4]; got != "4401" {
			t.Fatalf("line %d: division %s, want a Guangzhou code", lines+1, r.Subject.Division())
		}
		lines++
	}
	if lines == 0 {
		t.Fatal("no output")
	}

	t.Run("csv has the same records", func(t *testing.T) {
		out, err := runGenApp(t, "--region", "440100", "--enterprises", "12", "--seed", "5", "--format", "csv")
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != lines+1 {
			t.Fatalf("%d CSV rows, want header + %d", len(rows), lines)
		}
	})
	t.Run("gzip file matches standard output", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "gz.jsonl.gz")
		if _, err := runGenApp(t, "--region", "440100", "-n", "12", "--seed", "5", "-o", path, "--workers", "1"); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, jsonl) {
			t.Fatal("the gzip file differs from standard output")
		}
	})
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"bad region", []string{"--region", "12"}},
		{"bad format", []string{"--format", "xml"}},
		{"stray argument", []string{"extra"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := runGenApp(t, append(tc.args, "-n", "1")...); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
