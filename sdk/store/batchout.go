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
// nil. An item's and a chunk's other fields are written first into
// scratch space, which gives their lengths.
func (b *batchOut) Encode() (mem.BufferSlice, error) {
	// The fields of an item take under perItem bytes unless its names
	// are long; then the buffer grows past its first array, and the
	// slices of it already handed out keep the old one, whose bytes do
	// not change.
	const perItem = 128
	size, aliased := 0, 0
	for _, it := range b.Items {
		size += perItem
		if d := len(it.GetChunk().GetData()); d >= aliasMin {
			aliased++
		} else {
			size += d
		}
	}
	buf := make([]byte, 0, size)
	out := make(mem.BufferSlice, 0, 2*aliased+1)
	var itemSpace, chunkSpace [perItem]byte
	item, chunk := itemSpace[:0], chunkSpace[:0]
	start := 0
	for _, it := range b.Items {
		item = item[:0]
		if it.Id != 0 {
			item = protowire.AppendTag(item, 1, protowire.VarintType)
			item = protowire.AppendVarint(item, it.Id)
		}
		item = appendString(item, 2, it.RunId)
		item = appendString(item, 3, it.Machine)
		c := it.Chunk
		if c == nil {
			buf = protowire.AppendTag(buf, 1, protowire.BytesType)
			buf = protowire.AppendBytes(buf, item)
			continue
		}
		chunk = chunk[:0]
		if c.Seq != 0 {
			chunk = protowire.AppendTag(chunk, 1, protowire.VarintType)
			chunk = protowire.AppendVarint(chunk, uint64(c.Seq))
		}
		chunk = appendString(chunk, 2, c.Stream)
		if c.At != nil {
			var stamp [22]byte // two fields of a one-byte tag and a varint of at most ten
			chunk = protowire.AppendTag(chunk, 4, protowire.BytesType)
			chunk = protowire.AppendBytes(chunk, appendStamp(stamp[:0], c.At.Seconds, c.At.Nanos))
		}
		chunkLen := len(chunk)
		if c.Data != nil {
			chunkLen += protowire.SizeTag(3) + protowire.SizeBytes(len(c.Data))
		}
		buf = protowire.AppendTag(buf, 1, protowire.BytesType)
		buf = protowire.AppendVarint(buf, uint64(len(item)+protowire.SizeTag(4)+protowire.SizeBytes(chunkLen)))
		buf = append(buf, item...)
		buf = protowire.AppendTag(buf, 4, protowire.BytesType)
		buf = protowire.AppendVarint(buf, uint64(chunkLen))
		buf = append(buf, chunk...)
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
