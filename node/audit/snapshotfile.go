package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prdcredit/ccnode/credit"
)

// consentSink receives a snapshot's consent records one at a time, with
// where each one's member ("id": {...}) starts and ends in the file.
type consentSink func(id string, c credit.ConsentCommitment, start, end int64) error

// decodeSnapshot reads a snapshot's top-level object member by member.
// The consent records, which grow with every consent the consortium ever
// recorded and are the bulk of a large snapshot, are decoded one at a time
// and handed to sink (into s.ConsentRecords when sink is nil); every other
// member is decoded as the Snapshot type says. A json.Decoder asked for the
// whole object would buffer the whole file first.
func decodeSnapshot(r io.Reader, sink consentSink) (*Snapshot, error) {
	bad := func(err error) (*Snapshot, error) { return nil, fmt.Errorf("%w: %w", ErrSnapshotFormat, err) }
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return bad(err)
	}
	s := &Snapshot{}
	if sink == nil {
		s.ConsentRecords = map[string]credit.ConsentCommitment{}
		sink = func(id string, c credit.ConsentCommitment, _, _ int64) error {
			s.ConsentRecords[id] = c
			return nil
		}
	}
	rest := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bad(err)
		}
		name, _ := tok.(string)
		// encoding/json matches member names without regard to case.
		if !strings.EqualFold(name, "consents") {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return bad(fmt.Errorf("%s: %w", name, err))
			}
			rest[name] = raw
			continue
		}
		if err := decodeConsents(dec, sink); err != nil {
			return bad(fmt.Errorf("consents: %w", err))
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return bad(err)
	}
	// The small members, decoded by the Snapshot type itself.
	b, err := json.Marshal(rest)
	if err != nil {
		return bad(err)
	}
	consents := s.ConsentRecords
	if err := json.Unmarshal(b, s); err != nil {
		return bad(err)
	}
	if consents != nil {
		s.ConsentRecords = consents
	}
	return s, nil
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("found %v where %q was due", tok, d)
	}
	return nil
}

// decodeConsents reads the consents object (or null), one record at a time.
func decodeConsents(dec *json.Decoder, sink consentSink) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		return nil
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("found %v where an object was due", tok)
	}
	for dec.More() {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		id, _ := tok.(string)
		var c credit.ConsentCommitment
		if err := dec.Decode(&c); err != nil {
			return fmt.Errorf("consent %s: %w", credit.Quote(id), err)
		}
		if err := sink(id, c, start, dec.InputOffset()); err != nil {
			return err
		}
	}
	_, err = dec.Token()
	return err
}

// SnapshotFile is a snapshot file opened for an audit: everything but the
// consent records is in memory as a Snapshot; the consent records stay in
// the file, indexed by a fingerprint of their id and read back when the
// audit asks for one, so memory does not grow with the consents the
// consortium ever recorded (16 bytes each instead of the whole record).
type SnapshotFile struct {
	*Snapshot // ConsentRecords empty
	f         io.ReaderAt
	close     func() error
	seed      maphash.Seed
	index     []consentEntry // sorted by hash
	mu        sync.Mutex
	cache     map[string]credit.ConsentCommitment
}

type consentEntry struct {
	hash  uint64
	start int64
	n     int64
}

// consentCacheMax bounds the consent records kept decoded: an audit asks
// for the same few consents again and again (a bank's consent serves many
// queries).
const consentCacheMax = 8192

var _ LedgerView = (*SnapshotFile)(nil)
var _ KeyHistory = (*SnapshotFile)(nil)

// OpenSnapshotFile reads and checks a snapshot file as ReadSnapshot does,
// holding at most one consent record at a time while it reads. The file
// stays open until Close.
func OpenSnapshotFile(path string) (*SnapshotFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	sf, err := readSnapshotFile(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	sf.close = f.Close
	return sf, nil
}

func readSnapshotFile(f interface {
	io.Reader
	io.ReaderAt
}) (*SnapshotFile, error) {
	sf := &SnapshotFile{f: f, seed: maphash.MakeSeed(), cache: map[string]credit.ConsentCommitment{}, close: func() error { return nil }}
	s, err := readSnapshot(f, func(id string, _ credit.ConsentCommitment, start, end int64) error {
		sf.index = append(sf.index, consentEntry{hash: maphash.String(sf.seed, id), start: start, n: end - start})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sf.Snapshot = s
	sf.index = slices.Clip(sf.index)
	slices.SortFunc(sf.index, func(a, b consentEntry) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		// Equal ids: the later member wins, as in a map decoded whole.
		return int(b.start - a.start)
	})
	return sf, nil
}

// Close closes the file.
func (sf *SnapshotFile) Close() error { return sf.close() }

// ConsentAt returns the commitment with its status at t, as Snapshot does.
func (sf *SnapshotFile) ConsentAt(_ context.Context, id string, t time.Time) (credit.ConsentCommitment, credit.ConsentStatus, error) {
	c, ok, err := sf.consent(id)
	if err != nil {
		return c, credit.ConsentNotExists, err
	}
	return consentAt(c, ok, id, t)
}

// consent returns the record filed under id.
func (sf *SnapshotFile) consent(id string) (credit.ConsentCommitment, bool, error) {
	sf.mu.Lock()
	c, ok := sf.cache[id]
	sf.mu.Unlock()
	if ok {
		return c, true, nil
	}
	h := maphash.String(sf.seed, id)
	i, _ := slices.BinarySearchFunc(sf.index, h, func(e consentEntry, h uint64) int {
		switch {
		case e.hash < h:
			return -1
		case e.hash > h:
			return 1
		}
		return 0
	})
	for ; i < len(sf.index) && sf.index[i].hash == h; i++ {
		key, c, err := sf.readConsent(sf.index[i])
		if err != nil {
			return c, false, fmt.Errorf("snapshot file: consent %s: %w", credit.Quote(id), err)
		}
		if key != id {
			continue // another id with the same fingerprint
		}
		sf.mu.Lock()
		if len(sf.cache) >= consentCacheMax {
			clear(sf.cache)
		}
		sf.cache[id] = c
		sf.mu.Unlock()
		return c, true, nil
	}
	return credit.ConsentCommitment{}, false, nil
}

// readConsent reads the member at e back from the file: its id and record.
func (sf *SnapshotFile) readConsent(e consentEntry) (string, credit.ConsentCommitment, error) {
	var c credit.ConsentCommitment
	b := make([]byte, e.n+2)
	if _, err := sf.f.ReadAt(b[1:e.n+1], e.start); err != nil {
		return "", c, err
	}
	// The member as the decoder saw it, after the previous one's end (a
	// comma and white space, the id, a colon, the record), read as the
	// one member of an object.
	m := bytes.TrimLeft(b[1:e.n+1], " \t\r\n,")
	b = b[len(b)-len(m)-2:]
	b[0], b[len(b)-1] = '{', '}'
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := expectDelim(dec, '{'); err != nil {
		return "", c, err
	}
	tok, err := dec.Token()
	if err != nil {
		return "", c, err
	}
	id, ok := tok.(string)
	if !ok {
		return "", c, errors.New("consent record moved in the snapshot file")
	}
	if err := dec.Decode(&c); err != nil {
		return "", c, err
	}
	return id, c, nil
}
