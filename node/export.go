package node

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/prdcredit/ccnode/credit"
	"github.com/prdcredit/ccnode/store/receipts"
)

// ExportAnswered writes the region's receipt log from leaf from to its
// current size in the auditor's format (credit.ExportFormat, kind
// answered): leaf bytes verbatim, with the acks stored beside each.
func ExportAnswered(w io.Writer, region credit.RegionID, l *receipts.Log, from uint64, now time.Time) (int, error) {
	size := l.Size()
	ew, err := credit.NewExportWriter(w, credit.ExportHeader{Kind: credit.ExportAnswered, Region: region, From: from, Size: size, ExportedAt: now})
	if err != nil {
		return 0, err
	}
	n := 0
	err = l.Scan(from, size, func(e receipts.Entry) error {
		r, err := e.Receipt()
		if err != nil {
			return err
		}
		acks, err := l.Acks(r.ID)
		if err != nil {
			return err
		}
		n++
		return ew.Write(credit.ExportLine{Index: e.Index, Receipt: json.RawMessage(e.Leaf), Acks: acks})
	})
	if err != nil {
		return n, fmt.Errorf("export answered receipts of %s: %w", region, err)
	}
	return n, ew.Flush()
}

// ExportReceived writes the receipts the region received as requester
// (kind received), each with the ack it signed, streamed from one
// snapshot of the store.
func ExportReceived(w io.Writer, region credit.RegionID, req *receipts.Requested, now time.Time) (int, error) {
	var ew *credit.ExportWriter
	i := 0
	err := req.ScanCounted(func(n int) error {
		var err error
		ew, err = credit.NewExportWriter(w, credit.ExportHeader{Kind: credit.ExportReceived, Region: region, Size: uint64(n), ExportedAt: now})
		return err
	}, func(h receipts.Held) error {
		leaf := h.Leaf
		if leaf == nil {
			var err error
			if leaf, err = h.Receipt.LeafBytes(); err != nil {
				return err
			}
		}
		at := h.ReceivedAt
		if err := ew.Write(credit.ExportLine{Index: uint64(i), Receipt: leaf, Acks: []credit.Ack{h.Ack}, ReceivedAt: &at}); err != nil {
			return err
		}
		i++
		return nil
	})
	if err != nil {
		return i, fmt.Errorf("export received receipts of %s: %w", region, err)
	}
	return i, ew.Flush()
}
