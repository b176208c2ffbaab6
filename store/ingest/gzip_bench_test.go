package ingest

import (
	"bytes"
	stdgzip "compress/gzip"
	"io"
	"os"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// BenchmarkGunzip compares the decompressors a gzip feed can be read with,
// on a gzip file named by CCNODE_FLOOR_GZ (skipped without one).
func BenchmarkGunzip(b *testing.B) {
	data, err := os.ReadFile(os.Getenv("CCNODE_FLOOR_GZ"))
	if err != nil {
		b.Skipf("no gzip feed (set CCNODE_FLOOR_GZ): %v", err)
	}
	buf := make([]byte, 256<<10)
	for _, d := range []struct {
		name string
		open func(io.Reader) (io.Reader, error)
	}{
		{"stdlib", func(r io.Reader) (io.Reader, error) { return stdgzip.NewReader(r) }},
		{"klauspost", func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }},
	} {
		b.Run(d.name, func(b *testing.B) {
			var n int64
			for b.Loop() {
				zr, err := d.open(bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				if n, err = io.CopyBuffer(io.Discard, zr, buf); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(n)
		})
	}
}
