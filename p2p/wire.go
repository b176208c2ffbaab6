package p2p

// The wire: every message is one frame, a uvarint length and a protobuf
// message of wire.proto, whose Go code is generated into p2p/pb. The
// signed documents (the bank's query, the receipt, the ack) travel as
// their canonical JSON inside bytes fields, because that is what their
// signatures cover; nothing else in a frame is trusted.

//go:generate protoc --plugin=protoc-gen-go=pb/protoc-gen-go --go_out=. --go_opt=module=github.com/prdcredit/ccnode/p2p wire.proto

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/p2p/pb"
)

// Frame size limits by kind. An answer is a Response frame and then Chunk
// frames of at most the answerer's ServerConfig.ChunkBytes.
const (
	MaxRequestFrame  = 64 << 10
	MaxResponseFrame = 64 << 10
	MaxChunkFrame    = 4 << 20
	MaxAckFrame      = 4 << 10
)

// maxErrMsg bounds a refusal's message on the wire.
const maxErrMsg = 1024

// WriteFrame writes payload with its uvarint length prefix in one write.
func WriteFrame(w io.Writer, payload []byte) error {
	_, err := w.Write(appendFrame(make([]byte, 0, binary.MaxVarintLen64+len(payload)), payload))
	return err
}

func appendFrame(b, payload []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(payload)))
	return append(b, payload...)
}

// ReadFrame reads one frame of at most max bytes into a new slice.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	return readFrame(r, max, nil)
}

// readFrame reads one frame of at most max bytes into buf's storage when
// it is large enough. It reads the length one byte at a time so that it
// never consumes past the frame, and allocates only after the length
// passed the limit.
func readFrame(r io.Reader, max int, buf []byte) ([]byte, error) {
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
	var b []byte
	if uint64(cap(buf)) >= n {
		b = buf[:n]
	} else {
		b = make([]byte, n)
	}
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// marshalFrame encodes m as a whole frame.
func marshalFrame(m proto.Message) ([]byte, error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return appendFrame(make([]byte, 0, binary.MaxVarintLen64+len(b)), b), nil
}

// EncodeRequest builds the request frame (length prefix and message) for
// a query in its canonical JSON form; the requester builds it once per
// query and sends the same bytes to every region.
func EncodeRequest(requester credit.RegionID, queryJSON []byte) []byte {
	b, err := marshalFrame(&pb.Request{Requester: string(requester), Query: queryJSON})
	if err != nil {
		// Only an invalid UTF-8 region id fails to encode; the answerer
		// refuses the empty request it becomes as invalid.
		b, _ = marshalFrame(&pb.Request{Query: queryJSON})
	}
	return b
}

// DecodeRequest decodes and validates a request message (without its
// length prefix): fields only; signatures are the node's business.
func DecodeRequest(b []byte) (*Request, error) {
	var m pb.Request
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	r := &Request{Requester: credit.RegionID(m.Requester), QueryJSON: m.Query}
	if err := credit.ValidateRegionID(r.Requester); err != nil {
		return nil, fmt.Errorf("%w: requester: %w", ErrMalformed, err)
	}
	if len(m.Query) == 0 {
		return nil, fmt.Errorf("%w: no query", ErrMalformed)
	}
	if err := decodeQuery(m.Query, &r.Query); err != nil {
		return nil, fmt.Errorf("%w: query: %w", ErrMalformed, credit.BoundError(err))
	}
	if err := r.Query.Validate(); err != nil {
		return nil, fmt.Errorf("%w: query: %w", ErrMalformed, err)
	}
	return r, nil
}

// decodeQuery decodes the bank's signed query. A requesting node sends it
// in its canonical form, which credit decodes in one pass; anything else
// goes to encoding/json.
func decodeQuery(b []byte, q *credit.Query) error {
	if v, ok := credit.DecodeCanonicalQuery(b); ok {
		*q = v
		return nil
	}
	return json.Unmarshal(b, q)
}

// decodeReceipt is decodeQuery for the receipt of an answer, which an
// answering node sends in its canonical form (its leaf bytes).
func decodeReceipt(b []byte) (credit.Receipt, error) {
	if v, ok := credit.DecodeCanonicalReceipt(b); ok {
		return v, nil
	}
	var r credit.Receipt
	err := json.Unmarshal(b, &r)
	return r, err
}

// wireError is a refusal as it travels: its code and message, the message
// cut to maxErrMsg bytes of valid UTF-8 (protobuf strings must be).
func wireError(r *credit.Refusal) *pb.Error {
	msg := strings.ToValidUTF8(r.Msg, "\uFFFD")
	if len(msg) > maxErrMsg {
		cut := maxErrMsg
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut]
	}
	return &pb.Error{Code: strings.ToValidUTF8(string(r.Code), "\uFFFD"), Message: msg}
}

// refusalOf is a refusal as it arrived: the region's code and message; a
// code this node does not know (a newer peer's) is credit.CodeInternal,
// keeping its text in the message.
func refusalOf(e *pb.Error) *credit.Refusal {
	c := credit.Code(e.Code)
	if !c.Known() {
		return &credit.Refusal{Code: credit.CodeInternal, Msg: e.Code + ": " + e.Message}
	}
	return &credit.Refusal{Code: c, Msg: e.Message}
}

// encodeAck is an ack's message: its JSON in an Ack.
func encodeAck(a *credit.Ack) ([]byte, error) {
	j, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	return marshalFrame(&pb.Ack{Ack: j})
}

// DecodeAck decodes and validates an ack message (without its length
// prefix); its signature is the node's business.
func DecodeAck(b []byte) (*credit.Ack, error) {
	var m pb.Ack
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var a credit.Ack
	if err := json.Unmarshal(m.Ack, &a); err != nil {
		return nil, fmt.Errorf("%w: ack: %w", ErrMalformed, credit.BoundError(err))
	}
	if err := credit.ValidateID("receipt id", a.ReceiptID); err != nil {
		return nil, fmt.Errorf("%w: ack: %w", ErrMalformed, err)
	}
	if err := credit.ValidateRegionID(a.Requester); err != nil {
		return nil, fmt.Errorf("%w: ack: %w", ErrMalformed, err)
	}
	return &a, nil
}

// DecodeResponse decodes an answer's first frame (without its length
// prefix): a refusal (*credit.Refusal) as err, or the receipt as sent and
// its leaf index.
func DecodeResponse(b []byte) (receipt []byte, leafIndex uint64, err error) {
	var m pb.Response
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if m.Error != nil {
		return nil, 0, refusalOf(m.Error)
	}
	if len(m.Receipt) == 0 {
		return nil, 0, fmt.Errorf("%w: answer without a receipt", ErrMalformed)
	}
	return m.Receipt, m.LeafIndex, nil
}

// DecodeChunk appends a chunk message's records (without its length
// prefix) to recs, with subject as their USCC, and reports whether it was
// the last.
func DecodeChunk(b []byte, subject credit.USCC, recs []credit.Record) (_ []credit.Record, last bool, err error) {
	var m pb.Chunk
	if err := proto.Unmarshal(b, &m); err != nil {
		return recs, false, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	for _, r := range m.Records {
		recs = append(recs, credit.Record{
			Subject: subject, Source: r.Source, SourceID: r.SourceId,
			Category: credit.Category(r.Category), Date: credit.Date(r.Date), Attrs: r.Attrs,
		})
	}
	return recs, m.Last, nil
}
