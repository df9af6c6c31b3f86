package store

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"

	"google.golang.org/protobuf/proto"

	"github.com/saltpeter/saltpeter/sdk/store/internal/storepb"
)

// TestBatchOutEncodeMatchesProto: what Encode writes is what proto.Marshal
// would have written, field order aside: proto reads it back to an equal
// message, and so does batchIn, to what proto's own bytes decode to.
func TestBatchOutEncodeMatchesProto(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 17))
	for range 2000 {
		want := randomBatch(r)
		if r.IntN(8) == 0 { // negative nanos, which proto writes as ten bytes
			for _, it := range want.Items {
				if it.GetChunk().GetAt() != nil {
					it.Chunk.At.Nanos = -it.Chunk.At.Nanos
				}
			}
		}
		out := batchOut{}
		out.Items = want.Items
		data, err := out.Encode()
		if err != nil {
			t.Fatal(err)
		}
		m := data.Materialize()
		var got storepb.AppendBatch
		if err := proto.Unmarshal(m, &got); err != nil {
			t.Fatalf("proto cannot read what Encode wrote: %v", err)
		}
		if !proto.Equal(&got, want) {
			t.Fatalf("Encode wrote\n%v\nwant\n%v", &got, want)
		}
		if pm, _ := proto.Marshal(want); len(pm) != len(m) {
			t.Fatalf("Encode wrote %d bytes, proto %d", len(m), len(pm))
		}
		checkDecode(t, r, m)
	}
}

// TestBatchOutAliasesData: Data of aliasMin bytes or more go to gRPC where
// they lie; smaller Data are copied with their fields.
func TestBatchOutAliasesData(t *testing.T) {
	big, small := make([]byte, aliasMin), make([]byte, aliasMin-1)
	out := batchOut{}
	out.Items = []*storepb.AppendItem{
		{Id: 1, RunId: "r", Chunk: &storepb.Chunk{Seq: 1, Data: big}},
		{Id: 2, RunId: "r", Chunk: &storepb.Chunk{Seq: 2, Data: small}},
		{Id: 3, RunId: "r", Chunk: &storepb.Chunk{Seq: 3, Data: big}},
	}
	data, err := out.Encode()
	if err != nil {
		t.Fatal(err)
	}
	aliased := 0
	for _, b := range data {
		d := b.ReadOnlyData()
		switch {
		case len(d) > 0 && unsafe.SliceData(d) == unsafe.SliceData(big):
			aliased++
		case len(d) > 0 && unsafe.SliceData(d) == unsafe.SliceData(small):
			t.Error("Data of fewer than aliasMin bytes went to gRPC in place")
		}
	}
	if aliased != 2 {
		t.Errorf("%d of the 2 large Data went to gRPC in place (%d buffers)", aliased, len(data))
	}
}

// BenchmarkBatchOutEncode: a batch's encoding the way the core sends it,
// against proto's, for lines (16 chunks of 100 bytes) and a chatty job's
// chunks (16 of 64 KiB).
func BenchmarkBatchOutEncode(b *testing.B) {
	for _, size := range []int{100, 64 << 10} {
		out := batchOut{}
		for i := range 16 {
			out.Items = append(out.Items, pbItem(int64(i), make([]byte, size)))
		}
		for _, way := range []struct {
			name   string
			encode func() int
		}{
			{"proto", func() int {
				m, err := proto.Marshal(&out.AppendBatch)
				if err != nil {
					b.Fatal(err)
				}
				return len(m)
			}},
			{"batchOut", func() int {
				data, err := out.Encode()
				if err != nil {
					b.Fatal(err)
				}
				return data.Len()
			}},
		} {
			b.Run(fmt.Sprintf("%dB/%s", size, way.name), func(b *testing.B) {
				b.SetBytes(int64(16 * size))
				b.ReportAllocs()
				for b.Loop() {
					way.encode()
				}
			})
		}
	}
}

func pbItem(seq int64, data []byte) *storepb.AppendItem {
	return &storepb.AppendItem{Id: uint64(seq + 1), RunId: "20261127T120000-backup", Machine: "web-01.example",
		Chunk: pbChunk(Chunk{Seq: seq, Stream: "stdout", Data: data, At: time.Now()})}
}
