package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/prdcredit/ccnode/credit"
)

// ErrNoConsents: a consent file given to the audit holds no document,
// which is never what an auditor meant to hand over.
var ErrNoConsents = errors.New("no consent documents")

// readConsentFile reads the consent documents of src, a JSON array of them
// or one after the other (JSON Lines), one document at a time, handing
// each to add: the audit keeps only each document's commitment, so the
// file is never held whole.
func readConsentFile(src Source, add func(credit.ConsentGrant) error) error {
	rc, err := src.Open()
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInput, src.Name, err)
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 64<<10)
	first, err := firstByte(br)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %s: %w (the file is empty)", ErrInput, src.Name, ErrNoConsents)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInput, src.Name, err)
	}
	dec := json.NewDecoder(br)
	array := first == '['
	if array {
		if _, err := dec.Token(); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInput, src.Name, err)
		}
	}
	n := 0
	for {
		if array && !dec.More() {
			if _, err := dec.Token(); err != nil {
				return fmt.Errorf("%w: %s: after consent document %d: %w", ErrInput, src.Name, n, err)
			}
			break
		}
		var g credit.ConsentGrant
		err := dec.Decode(&g)
		if !array && errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %s: consent document %d (byte %d): %w", ErrInput, src.Name, n+1, dec.InputOffset(), err)
		}
		n++
		if err := add(g); err != nil {
			return fmt.Errorf("%w: %s: consent document %d (%s): %w", ErrInput, src.Name, n, credit.Quote(g.ID), err)
		}
	}
	if array {
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: %s: data after the array of consent documents", ErrInput, src.Name)
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: %s: %w", ErrInput, src.Name, ErrNoConsents)
	}
	return nil
}

// firstByte peeks at the first byte that is not white space.
func firstByte(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return b, br.UnreadByte()
	}
}
