package store

import (
	"bytes"
	"testing"

	"github.com/dgraph-io/badger/v4/pb"
	"google.golang.org/protobuf/proto"
)

func TestAppendKVMatchesProto(t *testing.T) {
	long := bytes.Repeat([]byte("值"), 300)
	for _, c := range []struct {
		k, v, meta []byte
		version    uint64
		stream     uint32
	}{
		{[]byte("Rkey"), []byte("value"), nil, 1, 2},
		{[]byte("Ukey"), nil, nil, 1 << 40, 1},
		{[]byte("Rdel"), nil, deleteMeta, 77, 2},
		{long, long, nil, 0, 0},
		{[]byte("k"), []byte{}, []byte{}, 300, 1 << 20},
	} {
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(&pb.KV{Key: c.k, Value: c.v, Meta: c.meta, Version: c.version, StreamId: c.stream})
		if err != nil {
			t.Fatal(err)
		}
		got := appendKV(nil, c.k, c.v, c.meta, c.version, c.stream)
		if !bytes.Equal(got, want) {
			t.Errorf("%q: got %x, want %x", c.k, got, want)
		}
		if n := kvSize(c.k, c.v, c.meta, c.version, c.stream); n != len(want) {
			t.Errorf("%q: size %d, want %d", c.k, n, len(want))
		}
	}
}
