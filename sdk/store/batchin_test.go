package store

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/saltpeter/saltpeter/sdk/store/internal/storepb"
)

// split cuts m into a slice of buffers at random points, as gRPC hands a
// message over in the frames it arrived in.
func split(r *rand.Rand, m []byte) mem.BufferSlice {
	var s mem.BufferSlice
	for len(m) > 0 {
		n := 1 + r.IntN(len(m))
		if r.IntN(3) == 0 {
			n = len(m)
		}
		s = append(s, mem.SliceBuffer(append([]byte(nil), m[:n]...)))
		m = m[n:]
	}
	return s
}

// checkDecode decodes m both ways, batchIn's own and proto's, and fails
// unless they agree: both refuse m, or both yield the same appends.
func checkDecode(t *testing.T, r *rand.Rand, m []byte) {
	t.Helper()
	var want batchIn
	wantErr := proto.Unmarshal(m, &want.AppendBatch)
	var got batchIn
	gotErr := got.Decode(split(r, m))
	defer got.release()
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("Decode: %v; proto.Unmarshal: %v (message %x)", gotErr, wantErr, m)
	}
	if gotErr != nil {
		return
	}
	if !got.decoded {
		t.Fatal("Decode did not decode the batch itself")
	}
	wantIDs, wantAppends := want.items()
	gotIDs, gotAppends := got.items()
	if len(wantIDs) == 0 && len(gotIDs) == 0 {
		return
	}
	if !reflect.DeepEqual(gotIDs, wantIDs) {
		t.Fatalf("ids %v, want %v", gotIDs, wantIDs)
	}
	if !reflect.DeepEqual(gotAppends, wantAppends) {
		t.Fatalf("appends\n%+v\nwant\n%+v", gotAppends, wantAppends)
	}
}

func randomBatch(r *rand.Rand) *storepb.AppendBatch {
	b := &storepb.AppendBatch{}
	strs := []string{"", "run-1", "web-01.example", "stdout", "stderr", "ça va ✓"}
	for range r.IntN(6) {
		it := &storepb.AppendItem{Id: r.Uint64(), RunId: strs[r.IntN(len(strs))], Machine: strs[r.IntN(len(strs))]}
		if r.IntN(4) != 0 {
			c := &storepb.Chunk{Seq: r.Int64() - r.Int64(), Stream: strs[r.IntN(len(strs))]}
			switch r.IntN(3) {
			case 0: // absent
			case 1:
				c.Data = []byte{}
			default:
				c.Data = make([]byte, r.IntN(70<<10))
				for i := range c.Data {
					c.Data[i] = byte(r.Uint32())
				}
			}
			if r.IntN(3) != 0 {
				c.At = &timestamppb.Timestamp{Seconds: r.Int64N(1<<40) - 1<<39, Nanos: r.Int32N(1e9)}
			}
			it.Chunk = c
		}
		b.Items = append(b.Items, it)
	}
	return b
}

// TestBatchInDecodeMatchesProto: random batches, some with unknown fields
// or repeated fields appended (which proto merges), some truncated,
// split into frames at random.
func TestBatchInDecodeMatchesProto(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for i := range 2000 {
		m, err := proto.Marshal(randomBatch(r))
		if err != nil {
			t.Fatal(err)
		}
		switch i % 5 {
		case 1: // an unknown field at the top
			m = protowire.AppendTag(m, 9, protowire.BytesType)
			m = protowire.AppendBytes(m, []byte("later"))
		case 2: // a second batch: its items follow the first's
			m2, _ := proto.Marshal(randomBatch(r))
			m = append(m, m2...)
		case 3: // cut short
			if len(m) > 0 {
				m = m[:r.IntN(len(m))]
			}
		case 4: // one byte changed
			if len(m) > 0 {
				m[r.IntN(len(m))] ^= byte(1 + r.IntN(255))
			}
		}
		checkDecode(t, r, m)
	}
}

// TestBatchInDecodeMerges: an item whose fields come twice, the chunk and
// its time in two parts, and fields of an unexpected wire type, which
// proto keeps as unknown.
func TestBatchInDecodeMerges(t *testing.T) {
	var item []byte
	item = protowire.AppendTag(item, 2, protowire.BytesType)
	item = protowire.AppendString(item, "first")
	item = protowire.AppendTag(item, 2, protowire.BytesType)
	item = protowire.AppendString(item, "run-2")
	item = protowire.AppendTag(item, 1, protowire.BytesType) // id, wrong type
	item = protowire.AppendBytes(item, []byte{1})
	chunk1, _ := proto.Marshal(&storepb.Chunk{Seq: 4, Data: []byte("abc"), At: &timestamppb.Timestamp{Seconds: 100}})
	chunk2, _ := proto.Marshal(&storepb.Chunk{Stream: "stderr", At: &timestamppb.Timestamp{Nanos: 5}})
	item = protowire.AppendTag(item, 4, protowire.BytesType)
	item = protowire.AppendBytes(item, chunk1)
	item = protowire.AppendTag(item, 4, protowire.BytesType)
	item = protowire.AppendBytes(item, chunk2)
	item = protowire.AppendTag(item, 1, protowire.VarintType)
	item = protowire.AppendVarint(item, 77)
	var m []byte
	m = protowire.AppendTag(m, 1, protowire.BytesType)
	m = protowire.AppendBytes(m, item)
	m = protowire.AppendTag(m, 1, protowire.VarintType) // items, wrong type
	m = protowire.AppendVarint(m, 3)
	checkDecode(t, rand.New(rand.NewPCG(1, 2)), m)

	var b batchIn
	if err := b.Decode(mem.BufferSlice{mem.SliceBuffer(m)}); err != nil {
		t.Fatal(err)
	}
	defer b.release()
	ids, appends := b.items()
	if len(ids) != 1 || ids[0] != 77 || appends[0].RunID != "run-2" || string(appends[0].Chunk.Data) != "abc" ||
		appends[0].Chunk.Stream != "stderr" || appends[0].Chunk.At.UnixNano() != 100e9+5 {
		t.Fatalf("decoded %v %+v", ids, appends)
	}
}

// TestBatchInDataAliasesPool: a decoded chunk's bytes are in the pooled
// buffer the message was gathered into, not copied again, and cannot
// grow into the bytes after them.
func TestBatchInDataAliasesPool(t *testing.T) {
	m, _ := proto.Marshal(&storepb.AppendBatch{Items: []*storepb.AppendItem{
		{Id: 1, Chunk: &storepb.Chunk{Data: []byte("first")}},
		{Id: 2, Chunk: &storepb.Chunk{Data: []byte("second")}},
	}})
	var b batchIn
	if err := b.Decode(split(rand.New(rand.NewPCG(3, 4)), m)); err != nil {
		t.Fatal(err)
	}
	defer b.release()
	whole := b.buf.ReadOnlyData()
	_, appends := b.items()
	for _, a := range appends {
		d := a.Chunk.Data
		if cap(d) != len(d) {
			t.Errorf("Data %q has room to grow (cap %d)", d, cap(d))
		}
		in := false
		for i := range whole {
			in = in || len(d) > 0 && &whole[i] == &d[0]
		}
		if !in {
			t.Errorf("Data %q is not in the message's buffer", d)
		}
	}
}

func FuzzBatchInDecode(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 8 {
		// Cut short: the fuzzer minimizes every input it finds new, and
		// a long one takes it most of a minute.
		m, _ := proto.Marshal(randomBatch(r))
		f.Add(m[:min(len(m), 512)])
	}
	f.Fuzz(func(t *testing.T, m []byte) {
		checkDecode(t, rand.New(rand.NewPCG(uint64(len(m)), 1)), m)
	})
}
