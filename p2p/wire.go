package p2p

// Wire encoding.
//
// Every message is one frame: a uvarint length followed by that many bytes
// of a protobuf message (schema in wire.proto), written by hand with
// protowire. Why protobuf and not canonical JSON: the answer's cost is
// decoding ~183 records (~40 KB); encoding/json needs 1.3-1.6 ms for that on
// this machine, while a length-delimited binary form decodes in tens of
// microseconds into one string arena. Nothing in the binary form is trusted:
// the requester rebuilds the report and recomputes its canonical digest
// (credit.Report.AppendCanonical) against the signed receipt. The small
// signed documents (the bank's query, the receipt, the ack) travel as their
// canonical JSON inside bytes fields because that is what their signatures
// cover. Why protowire and not generated code: four small messages, no
// protoc in the build, and unknown fields are skipped so a later minor
// version can add fields; the major version is in the protocol id and every
// message carries a version field (wireVersion) the reader checks.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"unicode/utf8"
	"unsafe"

	gojson "github.com/goccy/go-json"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/prdcredit/ccnode/credit"
)

// Frame size limits by kind.
const (
	MaxRequestFrame  = 64 << 10
	MaxResponseFrame = 8 << 20
	MaxAckFrame      = 4 << 10
)

const wireVersion = 1

// ErrFrameTooLarge: a frame's length prefix exceeds its kind's limit.
var ErrFrameTooLarge = errors.New("frame too large")

// ErrMalformed: a frame does not decode.
var ErrMalformed = errors.New("malformed frame")

// WriteFrame writes payload with its uvarint length prefix in one write.
func WriteFrame(w io.Writer, payload []byte) error {
	b := make([]byte, 0, binary.MaxVarintLen64+len(payload))
	b = binary.AppendUvarint(b, uint64(len(payload)))
	b = append(b, payload...)
	_, err := w.Write(b)
	return err
}

// ReadFrame reads one frame of at most max bytes. It reads the length one
// byte at a time so that it never consumes past the frame and allocates
// only after the length passed the limit.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	var n uint64
	var one [1]byte
	for i := 0; ; i++ {
		if i == binary.MaxVarintLen64 {
			return nil, fmt.Errorf("%w: length prefix overflows", ErrMalformed)
		}
		if _, err := io.ReadFull(r, one[:]); err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		n |= uint64(one[0]&0x7f) << (7 * i)
		if one[0] < 0x80 {
			break
		}
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// Request is a report request: the bank's signed query and the region
// asking for it.
type Request struct {
	Requester credit.RegionID
	Query     credit.Query
}

// Response is an answer or a refusal.
type Response struct {
	Err       *Error // nil when answered
	Receipt   credit.Receipt
	Report    credit.Report
	LeafIndex uint64
}

// Field numbers (wire.proto).
const (
	fVersion = 1

	fReqRequester = 2
	fReqQuery     = 3

	fRespError     = 2
	fRespReceipt   = 3
	fRespReport    = 4
	fRespLeafIndex = 5

	fErrCode = 1
	fErrMsg  = 2

	fRepSubject = 1
	fRepRecord  = 2

	fRecSource   = 1
	fRecSourceID = 2
	fRecCategory = 3
	fRecDate     = 4
	fRecAttrs    = 5

	fAckAck = 2
)

// EncodeRequest encodes r.
func EncodeRequest(r *Request) ([]byte, error) {
	q, _, err := r.Query.CanonicalAndDigest()
	if err != nil {
		return nil, err
	}
	return appendRequest(r.Requester, q), nil
}

// appendRequest encodes a request whose query is already encoded, in its
// canonical form: the requester encodes it once for the wire and for the
// digest it checks receipts against.
func appendRequest(requester credit.RegionID, q []byte) []byte {
	b := make([]byte, 0, len(q)+64)
	b = protowire.AppendTag(b, fVersion, protowire.VarintType)
	b = protowire.AppendVarint(b, wireVersion)
	b = protowire.AppendTag(b, fReqRequester, protowire.BytesType)
	b = protowire.AppendString(b, string(requester))
	b = protowire.AppendTag(b, fReqQuery, protowire.BytesType)
	return protowire.AppendBytes(b, q)
}

// DecodeRequest decodes and validates a request (fields only; signatures are
// the server's business).
func DecodeRequest(b []byte) (*Request, error) {
	var r Request
	var version uint64
	var query []byte
	err := walk(b, func(num protowire.Number, typ protowire.Type, v uint64, bs []byte) error {
		switch {
		case num == fVersion && typ == protowire.VarintType:
			version = v
		case num == fReqRequester && typ == protowire.BytesType:
			r.Requester = credit.RegionID(bs)
		case num == fReqQuery && typ == protowire.BytesType:
			query = bs
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if version != wireVersion {
		return nil, fmt.Errorf("%w: version %d", ErrMalformed, version)
	}
	if err := credit.ValidateRegionID(r.Requester); err != nil {
		return nil, fmt.Errorf("%w: requester: %w", ErrMalformed, err)
	}
	if query == nil {
		return nil, fmt.Errorf("%w: no query", ErrMalformed)
	}
	if err := decodeQuery(query, &r.Query); err != nil {
		return nil, fmt.Errorf("%w: query: %w", ErrMalformed, err)
	}
	if err := r.Query.Validate(); err != nil {
		return nil, fmt.Errorf("%w: query: %w", ErrMalformed, err)
	}
	return &r, nil
}

func appendError(b []byte, e *Error) []byte {
	var inner []byte
	inner = protowire.AppendTag(inner, fErrCode, protowire.BytesType)
	inner = protowire.AppendString(inner, string(e.Code))
	if e.Msg != "" {
		inner = protowire.AppendTag(inner, fErrMsg, protowire.BytesType)
		inner = protowire.AppendString(inner, e.Msg)
	}
	b = protowire.AppendTag(b, fRespError, protowire.BytesType)
	return protowire.AppendBytes(b, inner)
}

// maxErrMsg bounds a refusal's message on the wire.
const maxErrMsg = 1024

// EncodeResponse encodes r; a refusal carries only the error.
func EncodeResponse(r *Response) ([]byte, error) {
	return appendResponse(nil, r, nil)
}

// framePrefix is the room responseFrame keeps for the length prefix of a
// response frame (at most MaxResponseFrame, under 2^28).
const framePrefix = binary.MaxVarintLen32

// responseFrame encodes r as a whole frame (length prefix and message) in
// buf's storage, so the answer's ~40 KB is written once and not copied
// again into a frame as WriteFrame would. It returns the frame and the
// storage it used (to be reused once the frame is written). leaf is as
// for appendResponse.
func responseFrame(buf []byte, r *Response, leaf []byte) (frame, storage []byte, err error) {
	b, err := appendResponse(append(buf[:0], make([]byte, framePrefix)...), r, leaf)
	if err != nil {
		return nil, b, err
	}
	n := len(b) - framePrefix
	if n > MaxResponseFrame {
		return nil, b, fmt.Errorf("%w: answer of %d bytes, limit %d", ErrFrameTooLarge, n, MaxResponseFrame)
	}
	// The minimal prefix ends where the message starts.
	var pre [binary.MaxVarintLen64]byte
	p := binary.PutUvarint(pre[:], uint64(n))
	copy(b[framePrefix-p:], pre[:p])
	return b[framePrefix-p:], b, nil
}

// frameBufs recycles answer frames: an answering node writes one ~40 KB
// frame per answer, and allocating each anew is most of what its garbage
// collector has to do. io.Writer must not keep the slice, so a frame can
// be reused as soon as the stream's Write returns.
var frameBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledFrame: larger frames (rare, very large slices) are left to the
// collector rather than pinned in the pool.
const maxPooledFrame = 1 << 20

func putFrameBuf(p *[]byte, b []byte) {
	if cap(b) > maxPooledFrame {
		return
	}
	*p = b[:0]
	frameBufs.Put(p)
}

// appendResponse appends r's encoding to b. leaf, when not nil, is
// r.Receipt.LeafBytes() as the answering pipeline made it while signing.
func appendResponse(b []byte, r *Response, leaf []byte) ([]byte, error) {
	b = protowire.AppendTag(b, fVersion, protowire.VarintType)
	b = protowire.AppendVarint(b, wireVersion)
	if r.Err != nil {
		e := *r.Err
		if len(e.Msg) > maxErrMsg {
			e.Msg = e.Msg[:maxErrMsg]
		}
		return appendError(b, &e), nil
	}
	// The receipt travels in its canonical form, which credit encodes by
	// hand at a fraction of encoding/json's reflection cost.
	rc := leaf
	if rc == nil {
		var err error
		if rc, err = r.Receipt.LeafBytes(); err != nil {
			return nil, err
		}
	}
	size := len(b) + len(rc) + 64
	for _, s := range r.Report.Sections {
		for i := range s.Records {
			rec := &s.Records[i]
			size += len(rec.Source) + len(rec.SourceID) + len(rec.Category) + len(rec.Date) + len(rec.Attrs) + 16
		}
	}
	b = slices.Grow(b, size-len(b))
	b = protowire.AppendTag(b, fRespReceipt, protowire.BytesType)
	b = protowire.AppendBytes(b, rc)
	b = protowire.AppendTag(b, fRespLeafIndex, protowire.VarintType)
	b = protowire.AppendVarint(b, r.LeafIndex)
	// The report is embedded by hand: its length is known only after the
	// records are written, so reserve the maximal varint and fix it up.
	b = protowire.AppendTag(b, fRespReport, protowire.BytesType)
	lenAt := len(b)
	b = append(b, make([]byte, binary.MaxVarintLen32)...)
	start := len(b)
	b = protowire.AppendTag(b, fRepSubject, protowire.BytesType)
	b = protowire.AppendString(b, string(r.Report.Subject))
	for _, s := range r.Report.Sections {
		for i := range s.Records {
			x := &s.Records[i]
			// The record's length is known before its fields are written,
			// so it is encoded in place, not in a scratch buffer copied in.
			b = protowire.AppendTag(b, fRepRecord, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(recordSize(x)))
			b = protowire.AppendTag(b, fRecSource, protowire.BytesType)
			b = protowire.AppendString(b, x.Source)
			b = protowire.AppendTag(b, fRecSourceID, protowire.BytesType)
			b = protowire.AppendString(b, x.SourceID)
			b = protowire.AppendTag(b, fRecCategory, protowire.BytesType)
			b = protowire.AppendString(b, string(x.Category))
			b = protowire.AppendTag(b, fRecDate, protowire.BytesType)
			b = protowire.AppendString(b, string(x.Date))
			b = protowire.AppendTag(b, fRecAttrs, protowire.BytesType)
			b = protowire.AppendBytes(b, x.Attrs)
		}
	}
	n := len(b) - start
	if n >= 1<<28 {
		return nil, fmt.Errorf("%w: report of %d bytes", ErrFrameTooLarge, n)
	}
	// A padded (non-minimal) varint is still a valid protobuf varint.
	v := uint64(n)
	for i := 0; i < binary.MaxVarintLen32; i++ {
		c := byte(v & 0x7f)
		v >>= 7
		if i < binary.MaxVarintLen32-1 {
			c |= 0x80
		}
		b[lenAt+i] = c
	}
	return b, nil
}

// DecodeResponse decodes a response. The report's strings share one
// allocation and its attributes alias b, so b must not be reused.
func DecodeResponse(b []byte) (*Response, error) {
	var r Response
	var version uint64
	var receipt, report, errb []byte
	haveReport := false
	err := walk(b, func(num protowire.Number, typ protowire.Type, v uint64, bs []byte) error {
		switch {
		case num == fVersion && typ == protowire.VarintType:
			version = v
		case num == fRespError && typ == protowire.BytesType:
			errb = bs
		case num == fRespReceipt && typ == protowire.BytesType:
			receipt = bs
		case num == fRespReport && typ == protowire.BytesType:
			report, haveReport = bs, true
		case num == fRespLeafIndex && typ == protowire.VarintType:
			r.LeafIndex = v
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if version != wireVersion {
		return nil, fmt.Errorf("%w: version %d", ErrMalformed, version)
	}
	if errb != nil {
		e, err := decodeError(errb)
		if err != nil {
			return nil, err
		}
		r.Err = e
		return &r, nil
	}
	if receipt == nil || !haveReport {
		return nil, fmt.Errorf("%w: answer without receipt or report", ErrMalformed)
	}
	if err := decodeReceipt(receipt, &r.Receipt); err != nil {
		return nil, fmt.Errorf("%w: receipt: %w", ErrMalformed, err)
	}
	rep, err := decodeReport(report)
	if err != nil {
		return nil, err
	}
	r.Report = rep
	return &r, nil
}

// decodeJSON decodes a signed document (the bank's query, the receipt)
// into *v, which must be zero, with goccy/go-json: encoding/json's
// reflection took a tenth of an answer's CPU on each side, goccy about a
// third of that. goccy does not check what it skips and keeps invalid
// UTF-8 where encoding/json writes U+FFFD, so a document goes to goccy
// only after encoding/json's scanner found it valid JSON in valid UTF-8,
// and anything goccy refuses is decoded again by encoding/json, so that
// what is refused, and why, is encoding/json's (FuzzDecodeJSON holds the
// two to the same result). Either way the signature is then checked over
// the canonical re-encoding of what was decoded, so a decoder's quirk
// could at worst refuse a document, never accept an unsigned one.
func decodeJSON[T any](b []byte, v *T) error {
	if json.Valid(b) && utf8.Valid(b) {
		if err := gojson.Unmarshal(b, v); err == nil {
			return nil
		}
		var zero T
		*v = zero
	}
	return json.Unmarshal(b, v)
}

// decodeQuery decodes the bank's signed query of a request. A requesting
// node sends it in its canonical form, which credit decodes by hand in one
// pass (DecodeCanonicalQuery); anything else goes through decodeJSON.
func decodeQuery(b []byte, q *credit.Query) error {
	if v, ok := credit.DecodeCanonicalQuery(b); ok {
		*q = v
		return nil
	}
	return decodeJSON(b, q)
}

// decodeReceipt is decodeQuery for the receipt of an answer, which an
// answering node sends in its canonical form (LeafBytes).
func decodeReceipt(b []byte, r *credit.Receipt) error {
	if v, ok := credit.DecodeCanonicalReceipt(b); ok {
		*r = v
		return nil
	}
	return decodeJSON(b, r)
}

// recordSize is the encoded size of a record message's fields.
func recordSize(x *credit.Record) int {
	field := func(n int) int { return 1 + protowire.SizeVarint(uint64(n)) + n } // tags 1-5 take one byte
	return field(len(x.Source)) + field(len(x.SourceID)) + field(len(x.Category)) + field(len(x.Date)) + field(len(x.Attrs))
}

func decodeError(b []byte) (*Error, error) {
	var e Error
	err := walk(b, func(num protowire.Number, typ protowire.Type, _ uint64, bs []byte) error {
		switch {
		case num == fErrCode && typ == protowire.BytesType:
			e.Code = Code(bs)
		case num == fErrMsg && typ == protowire.BytesType:
			e.Msg = string(bs)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !e.Code.Known() {
		// A code from a newer peer: keep its text, treat it as internal.
		e.Msg = string(e.Code) + ": " + e.Msg
		e.Code = CodeInternal
	}
	return &e, nil
}

func decodeReport(b []byte) (credit.Report, error) {
	if len(b) == 0 {
		return credit.Report{Sections: []credit.Section{}}, nil
	}
	// Every text field is a string over b itself, not over a copy: b is
	// the frame ReadFrame allocated for this answer alone, never written
	// after it was read (DecodeResponse's contract), and the attributes
	// alias it already. This saves copying the ~40 KB answer once more.
	arena := unsafe.String(&b[0], len(b))
	var subject string
	// Records are about 220 bytes on the wire; sizing for that avoids
	// growing the slice (and copying it) several times per answer.
	recs := make([]credit.Record, 0, len(b)/192+1)
	err := walk(b, func(num protowire.Number, typ protowire.Type, _ uint64, bs []byte) error {
		switch {
		case num == fRepSubject && typ == protowire.BytesType:
			subject = sub(arena, b, bs)
		case num == fRepRecord && typ == protowire.BytesType:
			var rec credit.Record
			err := walk(bs, func(num protowire.Number, typ protowire.Type, _ uint64, f []byte) error {
				if typ != protowire.BytesType {
					return nil
				}
				switch num {
				case fRecSource:
					rec.Source = sub(arena, b, f)
				case fRecSourceID:
					rec.SourceID = sub(arena, b, f)
				case fRecCategory:
					rec.Category = credit.Category(sub(arena, b, f))
				case fRecDate:
					rec.Date = credit.Date(sub(arena, b, f))
				case fRecAttrs:
					rec.Attrs = json.RawMessage(f)
				}
				return nil
			})
			if err != nil {
				return err
			}
			recs = append(recs, rec)
		}
		return nil
	})
	if err != nil {
		return credit.Report{}, err
	}
	u := credit.USCC(subject)
	for i := range recs {
		recs[i].Subject = u
	}
	return reportOf(u, recs), nil
}

// reportOf is credit.NewReport without copying every record again: its
// sections slice recs, which the caller must not change afterwards.
func reportOf(u credit.USCC, recs []credit.Record) credit.Report {
	n := 0
	for i := range recs {
		if i == 0 || recs[i].Category != recs[i-1].Category {
			n++
		}
	}
	rep := credit.Report{Subject: u, Sections: make([]credit.Section, 0, n)}
	start := 0
	for i := range recs {
		if i > start && recs[i].Category != recs[start].Category {
			rep.Sections = append(rep.Sections, credit.Section{Category: recs[start].Category, Records: recs[start:i:i]})
			start = i
		}
	}
	if len(recs) > start {
		rep.Sections = append(rep.Sections, credit.Section{Category: recs[start].Category, Records: recs[start:len(recs):len(recs)]})
	}
	return rep
}

// sub returns the part of arena (a copy of whole) at the position of part
// inside whole.
func sub(arena string, whole, part []byte) string {
	if len(part) == 0 {
		return ""
	}
	off := cap(whole) - cap(part)
	return arena[off : off+len(part)]
}

// versionAndField reads a message of two fields, the wire version and one
// bytes field (nil when absent), as acks and their answers are.
func versionAndField(b []byte, field protowire.Number) (version uint64, body []byte, err error) {
	err = walk(b, func(num protowire.Number, typ protowire.Type, v uint64, bs []byte) error {
		switch {
		case num == fVersion && typ == protowire.VarintType:
			version = v
		case num == field && typ == protowire.BytesType:
			body = bs
		}
		return nil
	})
	return version, body, err
}

// walk calls f for every field of the message in b, skipping groups.
func walk(b []byte, f func(num protowire.Number, typ protowire.Type, v uint64, bs []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %w", ErrMalformed, protowire.ParseError(n))
		}
		b = b[n:]
		var v uint64
		var bs []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			bs, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: field %d: %w", ErrMalformed, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := f(num, typ, v, bs); err != nil {
			return err
		}
	}
	return nil
}

// EncodeAck encodes an acknowledgement.
func EncodeAck(a *credit.Ack) ([]byte, error) {
	j, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(j)+16)
	b = protowire.AppendTag(b, fVersion, protowire.VarintType)
	b = protowire.AppendVarint(b, wireVersion)
	b = protowire.AppendTag(b, fAckAck, protowire.BytesType)
	return protowire.AppendBytes(b, j), nil
}

// DecodeAck decodes an acknowledgement.
func DecodeAck(b []byte) (*credit.Ack, error) {
	version, j, err := versionAndField(b, fAckAck)
	if err != nil {
		return nil, err
	}
	if version != wireVersion || j == nil {
		return nil, fmt.Errorf("%w: ack version %d", ErrMalformed, version)
	}
	var a credit.Ack
	if err := json.Unmarshal(j, &a); err != nil {
		return nil, fmt.Errorf("%w: ack: %w", ErrMalformed, err)
	}
	if err := credit.ValidateID("receipt id", a.ReceiptID); err != nil {
		return nil, fmt.Errorf("%w: ack: %w", ErrMalformed, err)
	}
	if err := credit.ValidateRegionID(a.Requester); err != nil {
		return nil, fmt.Errorf("%w: ack: %w", ErrMalformed, err)
	}
	return &a, nil
}

// EncodeAckResponse encodes the answer to an ack: nil error means stored.
func EncodeAckResponse(e *Error) []byte {
	b := protowire.AppendTag(nil, fVersion, protowire.VarintType)
	b = protowire.AppendVarint(b, wireVersion)
	if e != nil {
		b = appendError(b, e)
	}
	return b
}

// DecodeAckResponse decodes the answer to an ack: nil means stored.
func DecodeAckResponse(b []byte) (*Error, error) {
	version, errb, err := versionAndField(b, fRespError)
	if err != nil {
		return nil, err
	}
	if version != wireVersion {
		return nil, fmt.Errorf("%w: version %d", ErrMalformed, version)
	}
	if errb == nil {
		return nil, nil
	}
	return decodeError(errb)
}
