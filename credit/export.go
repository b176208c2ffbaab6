package credit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// ExportFormat names version 1 of the receipt export format, written by
// `ccnode receipts export` and read by `ccnode audit`.
//
// An export is JSON Lines (UTF-8, one JSON object per line, "\n" ends each
// line). The first line is an ExportHeader; every following line is an
// ExportLine.
//
// Kind "answered" is a region's own receipt log: line i (counting from 0
// after the header) holds leaf Index == From+i, in leaf order, with no gap;
// Receipt is the leaf's bytes exactly as logged (Receipt.LeafBytes, which is
// canonical JSON and so a JSON object), so that an auditor hashes them as
// they are; Acks are the acknowledgements the requesting region sent back for
// that receipt, possibly none.
//
// Kind "received" is a requesting region's record of the receipts other
// regions gave it: Index is a line counter from 0 with no meaning for any
// log; Receipt is the receipt as received (canonical JSON); Acks holds the
// acknowledgement this region signed for it.
//
// Each line is written canonically (ExportWriter): fields in the order of
// ExportLine and of the documents' types, no insignificant space, times in
// UTC, []byte fields in standard base64; that layout is what
// DecodeExportEntry reads in one pass. Any other spelling of the same JSON
// is still read (by encoding/json, more slowly), so a file edited by a
// tool that reorders fields or adds spaces is not refused for that.
//
// Readers must refuse a header whose Format they do not know. Writers add
// fields only with a new format version.
const ExportFormat = "ccnode-receipts/1"

// ExportKind says whose receipts an export holds.
type ExportKind string

// Export kinds.
const (
	// ExportAnswered is the exporting region's own receipt log.
	ExportAnswered ExportKind = "answered"
	// ExportReceived is the receipts the exporting region received as
	// requester, with its acknowledgements.
	ExportReceived ExportKind = "received"
)

// ExportHeader is the first line of an export.
type ExportHeader struct {
	Format     string     `json:"format"`
	Kind       ExportKind `json:"kind"`
	Region     RegionID   `json:"region"` // the exporting region
	From       uint64     `json:"from"`   // first leaf index (answered)
	Size       uint64     `json:"size"`   // log size (answered) or line count (received) at export
	ExportedAt time.Time  `json:"exported_at"`
}

// ExportLine is one receipt of an export.
type ExportLine struct {
	Index      uint64          `json:"index"`
	Receipt    json.RawMessage `json:"receipt"`
	Acks       []Ack           `json:"acks,omitempty"`
	ReceivedAt *time.Time      `json:"received_at,omitempty"` // received exports only
}

// MaxExportLine bounds one line of an export, so a hostile file cannot make
// a reader buffer without end. A receipt with its consent document is a few
// kilobytes.
const MaxExportLine = 1 << 20

// ErrExportFormat is matched by every error about an export's bytes.
var ErrExportFormat = errors.New("malformed receipt export")

// Validate checks the header's fields.
func (h *ExportHeader) Validate() error {
	if h.Format != ExportFormat {
		return fmt.Errorf("%w: format %s, want %q", ErrExportFormat, Quote(h.Format), ExportFormat)
	}
	if h.Kind != ExportAnswered && h.Kind != ExportReceived {
		return fmt.Errorf("%w: kind %s", ErrExportFormat, Quote(string(h.Kind)))
	}
	if err := ValidateRegionID(h.Region); err != nil {
		return fmt.Errorf("%w: region: %w", ErrExportFormat, err)
	}
	return nil
}

// DecodeExportHeader parses a header line.
func DecodeExportHeader(line []byte) (ExportHeader, error) {
	var h ExportHeader
	if err := strictUnmarshal(line, &h); err != nil {
		return h, fmt.Errorf("%w: header: %w", ErrExportFormat, err)
	}
	return h, h.Validate()
}

// DecodeExportLine parses one receipt line. It checks the shape only (the
// receipt is a JSON object); decoding the receipt itself is DecodeReceipt's.
func DecodeExportLine(line []byte) (ExportLine, error) {
	var l ExportLine
	if err := strictUnmarshal(line, &l); err != nil {
		return l, fmt.Errorf("%w: %w", ErrExportFormat, err)
	}
	l.Receipt = bytes.TrimSpace(l.Receipt)
	if len(l.Receipt) == 0 || l.Receipt[0] != '{' {
		return l, fmt.Errorf("%w: line %d: receipt is not a JSON object", ErrExportFormat, l.Index)
	}
	return l, nil
}

// DecodeReceipt decodes a receipt from its leaf bytes.
func DecodeReceipt(leaf []byte) (Receipt, error) {
	var r Receipt
	if err := strictUnmarshal(leaf, &r); err != nil {
		return r, fmt.Errorf("%w: receipt: %w", ErrExportFormat, err)
	}
	return r, nil
}

// strictUnmarshal decodes exactly one JSON value and refuses a field v
// does not have: a field injected into a line or a receipt is not
// silently dropped.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after top-level value")
	}
	return nil
}

// ExportWriter writes an export.
type ExportWriter struct {
	w *bufio.Writer
}

// NewExportWriter writes the header and returns a writer for the lines.
// Call Flush at the end.
func NewExportWriter(w io.Writer, h ExportHeader) (*ExportWriter, error) {
	if h.Format == "" {
		h.Format = ExportFormat
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	h.ExportedAt = utc(h.ExportedAt)
	ew := &ExportWriter{w: bufio.NewWriterSize(w, 64<<10)}
	return ew, ew.write(h)
}

// Write writes one line.
func (ew *ExportWriter) Write(l ExportLine) error { return ew.write(l) }

func (ew *ExportWriter) write(v any) error {
	b, err := canonicalJSON(v)
	if err != nil {
		return err
	}
	if len(b) >= MaxExportLine {
		return fmt.Errorf("%w: line of %d bytes exceeds %d", ErrExportFormat, len(b), MaxExportLine)
	}
	ew.w.Write(b)
	return ew.w.WriteByte('\n')
}

// Flush writes buffered lines out.
func (ew *ExportWriter) Flush() error { return ew.w.Flush() }

// ExportReader reads an export line by line without holding more than one
// line.
type ExportReader struct {
	r      *bufio.Reader
	header ExportHeader
	line   int // 1-based number of the last line read
}

// NewExportReader reads and checks the header.
func NewExportReader(r io.Reader) (*ExportReader, error) {
	er := &ExportReader{r: bufio.NewReaderSize(r, 256<<10)}
	b, err := er.Next()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: empty file, no header", ErrExportFormat)
	}
	if err != nil {
		return nil, err
	}
	h, err := DecodeExportHeader(b)
	if err != nil {
		return nil, err
	}
	er.header = h
	return er, nil
}

// Header is the export's header.
func (er *ExportReader) Header() ExportHeader { return er.header }

// Line is the 1-based file line number of the line Next returned last.
func (er *ExportReader) Line() int { return er.line }

// Next returns the next non-empty line's bytes, valid until the next call,
// or io.EOF.
func (er *ExportReader) Next() ([]byte, error) {
	for {
		b, err := er.r.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			// A long line: gather it, within MaxExportLine.
			buf := append([]byte(nil), b...)
			for errors.Is(err, bufio.ErrBufferFull) {
				if len(buf) > MaxExportLine {
					// Skip the rest of the line, so that the next
					// call starts at the next line.
					for errors.Is(err, bufio.ErrBufferFull) {
						_, err = er.r.ReadSlice('\n')
					}
					er.line++
					if err != nil && !errors.Is(err, io.EOF) {
						return nil, err
					}
					return nil, fmt.Errorf("%w: line %d longer than %d bytes", ErrExportFormat, er.line, MaxExportLine)
				}
				b, err = er.r.ReadSlice('\n')
				buf = append(buf, b...)
			}
			b = buf
		}
		if len(b) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			return nil, err
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		er.line++
		if len(b) > MaxExportLine {
			return nil, fmt.Errorf("%w: line %d longer than %d bytes", ErrExportFormat, er.line, MaxExportLine)
		}
		if t := bytes.TrimSpace(b); len(t) > 0 {
			return t, nil
		}
		if err != nil {
			return nil, io.EOF
		}
	}
}
