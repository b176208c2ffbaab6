package ingest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

// refLine is a line as the line-at-a-time reader (readLine) sees it.
type refLine struct {
	text      string
	oversized bool
	offset    int64 // after the line
}

func refLines(t *testing.T, data []byte, maxLine int) []refLine {
	br := bufio.NewReaderSize(bytes.NewReader(data), max(maxLine+2, 16))
	var out []refLine
	var off int64
	for {
		line, n, err := readLine(br, maxLine)
		if errors.Is(err, io.EOF) && n == 0 {
			return out
		}
		if err != nil && !errors.Is(err, ErrOversized) {
			t.Fatal(err)
		}
		off += int64(n)
		out = append(out, refLine{text: string(line), oversized: err != nil, offset: off})
	}
}

// FuzzReadChunks holds the block reader to the line-at-a-time reader it
// replaced: the same lines, the same rejections of oversized lines, and
// every chunk's end offset where that line ends, whatever the block and
// chunk sizes.
func FuzzReadChunks(f *testing.F) {
	f.Add([]byte("a\nbb\r\nccc\n\ndddd"), uint8(3), uint8(2), uint8(1))
	f.Add([]byte("0123456789abcdef\nx\r\n0123456789\r\n\r"), uint8(4), uint8(3), uint8(2))
	f.Add([]byte("short\nmuch longer than the limit of a line\nok\n"), uint8(8), uint8(1), uint8(5))
	f.Add([]byte("\n\n\n\r\n"), uint8(1), uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, maxLine, block, batch uint8) {
		ml, bl, bt := int(maxLine%32)+1, int(block%16)+1, int(batch%8)+1
		want := refLines(t, data, ml)
		im := &Importer{opts: Options{MaxLineBytes: ml, BatchLines: bt}, readBlock: bl}
		in := &input{name: "x", br: bufio.NewReaderSize(bytes.NewReader(data), 16)}
		ch := make(chan *chunk, len(data)+2)
		if err := im.readChunks(context.Background(), in, ch, newRecycler(1)); err != nil {
			t.Fatal(err)
		}
		close(ch)
		n := 0
		for c := range ch {
			if c.firstLine != int64(n+1) || len(c.ends) == 0 || len(c.ends) > bt {
				t.Fatalf("chunk %d: first line %d, %d lines; want first line %d, 1-%d lines", c.seq, c.firstLine, len(c.ends), n+1, bt)
			}
			start := 0
			for i, end := range c.ends {
				line := bytes.TrimSuffix(bytes.TrimSuffix(c.data[start:end], []byte{'\n'}), []byte{'\r'})
				start = end
				bad := i < len(c.bad) && c.bad[i] != nil
				if n >= len(want) {
					t.Fatalf("line %d %q: the reference has %d lines", n+1, line, len(want))
				}
				w := want[n]
				if bad != w.oversized || (!bad && string(line) != w.text) || (bad && !errors.Is(c.bad[i], ErrOversized)) {
					t.Fatalf("line %d: %q (rejected %v), want %q (rejected %v)", n+1, line, bad, w.text, w.oversized)
				}
				n++
			}
			if c.endOffset != want[n-1].offset {
				t.Fatalf("chunk %d ends at offset %d, want %d", c.seq, c.endOffset, want[n-1].offset)
			}
		}
		if n != len(want) || in.line != int64(n) || in.offset != int64(len(data)) {
			t.Fatalf("%d lines, in.line %d, in.offset %d; want %d lines, offset %d", n, in.line, in.offset, len(want), len(data))
		}
	})
}
