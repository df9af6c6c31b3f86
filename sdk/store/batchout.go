package store

import (
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/saltpeter/saltpeter/sdk/internal/grpcbuf"
	"github.com/saltpeter/saltpeter/sdk/store/internal/storepb"
)

// batchOut is one AppendBatch as the core's client sends it.
//
// Under grpcbuf.Codec it encodes itself: the fields of all its items go
// into one small buffer, and a chunk's Data of at least aliasMin bytes
// is handed to gRPC where it lies, between its item's fields and the
// next item's, instead of being copied into the marshalled message: the
// largest copy the core made of a job's output on its way to the store.
// gRPC reads the Data after Send has returned (see grpcbuf.Encoder): the
// caller keeps it until its result comes (see Chunk.Data).
//
// Any other codec marshals the embedded message.
type batchOut struct {
	storepb.AppendBatch
}

var _ grpcbuf.Encoder = (*batchOut)(nil)

// aliasMin is the least Data handed to gRPC in place; smaller Data is
// copied with its fields, as a slice of the message costs gRPC more
// than a copy of so few bytes.
const aliasMin = 1 << 10

// Encode implements grpcbuf.Encoder. Every field goes where proto puts
// it but a chunk's data, which comes last in its chunk (a proto reader
// takes fields in any order), and proto3's rules hold: zero scalars
// and empty strings are left out, data is present whenever it is not
// nil.
func (b *batchOut) Encode() (mem.BufferSlice, error) {
	size, aliased := 0, 0
	for _, it := range b.Items {
		n := itemSize(it)
		size += protowire.SizeTag(1) + protowire.SizeBytes(n)
		if d := it.GetChunk().GetData(); len(d) >= aliasMin {
			size -= len(d)
			aliased++
		}
	}
	buf := make([]byte, 0, size)
	out := make(mem.BufferSlice, 0, 2*aliased+1)
	start := 0
	for _, it := range b.Items {
		buf = protowire.AppendTag(buf, 1, protowire.BytesType)
		buf = protowire.AppendVarint(buf, uint64(itemSize(it)))
		if it.Id != 0 {
			buf = protowire.AppendTag(buf, 1, protowire.VarintType)
			buf = protowire.AppendVarint(buf, it.Id)
		}
		buf = appendString(buf, 2, it.RunId)
		buf = appendString(buf, 3, it.Machine)
		c := it.Chunk
		if c == nil {
			continue
		}
		buf = protowire.AppendTag(buf, 4, protowire.BytesType)
		buf = protowire.AppendVarint(buf, uint64(chunkSize(c)))
		if c.Seq != 0 {
			buf = protowire.AppendTag(buf, 1, protowire.VarintType)
			buf = protowire.AppendVarint(buf, uint64(c.Seq))
		}
		buf = appendString(buf, 2, c.Stream)
		if c.At != nil {
			buf = protowire.AppendTag(buf, 4, protowire.BytesType)
			buf = protowire.AppendVarint(buf, uint64(stampSize(c.At.Seconds, c.At.Nanos)))
			buf = appendStamp(buf, c.At.Seconds, c.At.Nanos)
		}
		if c.Data == nil {
			continue
		}
		buf = protowire.AppendTag(buf, 3, protowire.BytesType)
		buf = protowire.AppendVarint(buf, uint64(len(c.Data)))
		if len(c.Data) < aliasMin {
			buf = append(buf, c.Data...)
			continue
		}
		out = append(out, mem.SliceBuffer(buf[start:len(buf):len(buf)]), mem.SliceBuffer(c.Data))
		start = len(buf)
	}
	if start < len(buf) {
		out = append(out, mem.SliceBuffer(buf[start:]))
	}
	return out, nil
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendStamp(b []byte, seconds int64, nanos int32) []byte {
	if seconds != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(seconds))
	}
	if nanos != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(nanos)))
	}
	return b
}

func stringSize(s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(2) + protowire.SizeBytes(len(s))
}

func stampSize(seconds int64, nanos int32) int {
	n := 0
	if seconds != 0 {
		n += protowire.SizeTag(1) + protowire.SizeVarint(uint64(seconds))
	}
	if nanos != 0 {
		n += protowire.SizeTag(2) + protowire.SizeVarint(uint64(int64(nanos)))
	}
	return n
}

func chunkSize(c *storepb.Chunk) int {
	n := stringSize(c.Stream)
	if c.Seq != 0 {
		n += protowire.SizeTag(1) + protowire.SizeVarint(uint64(c.Seq))
	}
	if c.At != nil {
		n += protowire.SizeTag(4) + protowire.SizeBytes(stampSize(c.At.Seconds, c.At.Nanos))
	}
	if c.Data != nil {
		n += protowire.SizeTag(3) + protowire.SizeBytes(len(c.Data))
	}
	return n
}

func itemSize(it *storepb.AppendItem) int {
	n := stringSize(it.RunId) + stringSize(it.Machine)
	if it.Id != 0 {
		n += protowire.SizeTag(1) + protowire.SizeVarint(it.Id)
	}
	if it.Chunk != nil {
		n += protowire.SizeTag(4) + protowire.SizeBytes(chunkSize(it.Chunk))
	}
	return n
}
