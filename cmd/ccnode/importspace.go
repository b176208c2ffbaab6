package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/prdcredit/ccnode/node"
	"github.com/prdcredit/ccnode/store"
)

// Bytes of uncompressed tables per input byte, measured on `ccnode gen`
// feeds (9,016 records: JSON Lines 2,665,240 bytes and CSV 2,297,230
// bytes both became 2,584,822 bytes of tables): 0.97 and 1.13, rounded
// up. Compressed tables are smaller (snappy 1,204,880 bytes, zstd
// 1,040,254: 0.47 and 0.40 of uncompressed).
const (
	tablesPerJSONLByte = 1.0
	tablesPerCSVByte   = 1.15
	snappyShare        = 0.5
	zstdShare          = 0.45
)

// importSpaceNeed estimates the bytes an import of paths writes into the
// store's filesystem at its peak: the load plan (the uncompressed
// entries) and the tables it becomes, which exist together until the plan
// is applied. Standard input has no size and counts nothing; a gzip
// file counts its uncompressed size (from its trailer).
func importSpaceNeed(paths []string, format, compression string) (uint64, error) {
	var entries float64
	for _, p := range paths {
		if p == "-" {
			continue
		}
		n, err := inputSize(p)
		if err != nil {
			return 0, err
		}
		per := tablesPerJSONLByte
		if format == "csv" || (format == "" && strings.HasSuffix(strings.TrimSuffix(strings.ToLower(p), ".gz"), ".csv")) {
			per = tablesPerCSVByte
		}
		entries += float64(n) * per
	}
	tables := entries
	switch compression {
	case "snappy":
		tables *= snappyShare
	case "zstd":
		tables *= zstdShare
	}
	return uint64(entries + tables*1.25 + store.OpenReserve), nil
}

// inputSize is a file's size, uncompressed when it is gzip: the trailer's
// ISIZE (the size modulo 4 GiB) when it is plausible, else eight times
// the compressed size (a feed compresses about six times).
func inputSize(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("import: %w", err)
	}
	size := uint64(fi.Size())
	var magic [2]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil || magic != [2]byte{0x1f, 0x8b} || size < 18 {
		return size, nil
	}
	var trailer [4]byte
	if _, err := f.ReadAt(trailer[:], fi.Size()-4); err != nil {
		return size, nil
	}
	if isize := uint64(binary.LittleEndian.Uint32(trailer[:])); isize >= size && size < 1<<31 {
		return isize, nil
	}
	return 8 * size, nil
}

// checkImportSpace refuses an import, before it opens the store, when
// what it writes would leave less than the node's free-space floor
// (store.min_free_bytes) on the store's filesystem.
func checkImportSpace(dir string, cfg node.Config, paths []string, format, compression string) error {
	need, err := importSpaceNeed(paths, format, compression)
	if err != nil {
		return err
	}
	floor := cfg.Store.MinFreeBytesOrDefault()
	avail, _, ok := store.FreeSpace(dir)
	if !ok || avail >= need+floor {
		return nil
	}
	return fmt.Errorf("import: %w (about %d bytes for the load and its tables, plus store.min_free_bytes %d kept free for the node)",
		&store.SpaceError{Dir: dir, What: "import " + strings.Join(paths, ", "), Need: need + floor, Free: avail}, need, floor)
}
