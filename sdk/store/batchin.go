package store

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/saltpeter/saltpeter/sdk/internal/grpcbuf"
	"github.com/saltpeter/saltpeter/sdk/store/internal/storepb"
)

// batchIn is one AppendBatch as the plugin's server receives it.
//
// Under grpcbuf.Codec (gRPC's proto codec wherever the SDK is imported)
// it decodes itself: the message is gathered into one pooled buffer, the
// chunks' Data alias it, and release hands it back once the store has
// answered. The proto codec would copy each chunk's bytes once more,
// into a fresh allocation a chunk: the largest copy in the store
// plugin's profile while one job's output streamed in, and garbage at
// the output's rate. A store keeps a copy of what it keeps (see
// Chunk.Data), so the buffer is free once it has answered.
//
// Any other codec (should a program register its own in proto's place)
// fills the embedded message.
type batchIn struct {
	storepb.AppendBatch
	decoded bool
	ids     []uint64
	appends []Append
	buf     mem.Buffer // nil unless decoded
}

var _ grpcbuf.Decoder = (*batchIn)(nil)

// Decode implements grpcbuf.Decoder. It accepts what proto.Unmarshal
// accepts and yields the same values: unknown fields and fields of an
// unexpected wire type are skipped, a repeated singular field's last
// value wins, a repeated message field merges, and strings must be UTF-8.
func (b *batchIn) Decode(data mem.BufferSlice) error {
	buf := data.MaterializeToBuffer(grpcbuf.Pool)
	if err := b.parse(buf.ReadOnlyData()); err != nil {
		buf.Free()
		b.ids, b.appends = nil, nil
		return fmt.Errorf("decode an output batch: %w", err)
	}
	b.buf, b.decoded = buf, true
	return nil
}

// items are the batch's item ids and appends, in order.
func (b *batchIn) items() ([]uint64, []Append) {
	if b.decoded {
		return b.ids, b.appends
	}
	items := b.GetItems()
	ids, appends := make([]uint64, len(items)), make([]Append, len(items))
	for i, it := range items {
		ids[i] = it.GetId()
		appends[i] = Append{RunID: it.GetRunId(), Machine: it.GetMachine()}
		if c := it.GetChunk(); c != nil {
			appends[i].Chunk = goChunk(c)
		}
	}
	return ids, appends
}

// release gives the buffer the chunks' Data alias back to the pool; the
// appends must not be read after.
func (b *batchIn) release() {
	if b.buf != nil {
		b.buf.Free()
		b.buf = nil
	}
	b.appends = nil
}

var (
	errInvalidUTF8 = errors.New("string field holds invalid UTF-8")
	errFieldNumber = errors.New("field number out of range")
)

// fieldFn reads one field's value from m, returning the bytes it used or
// a negative protowire error code.
type fieldFn func(num protowire.Number, typ protowire.Type, m []byte) (int, error)

// fields walks a message's fields, skipping those each does not take
// (it returns 0 for them).
func fields(m []byte, each fieldFn) error {
	for len(m) > 0 {
		num, typ, n := protowire.ConsumeTag(m)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if num > protowire.MaxValidNumber { // ConsumeTag lets these by; proto does not
			return errFieldNumber
		}
		m = m[n:]
		used, err := each(num, typ, m)
		if err != nil {
			return err
		}
		if used == 0 {
			used = protowire.ConsumeFieldValue(num, typ, m)
		}
		if used < 0 {
			return protowire.ParseError(used)
		}
		m = m[used:]
	}
	return nil
}

func (b *batchIn) parse(m []byte) error {
	b.ids, b.appends = b.ids[:0], b.appends[:0]
	return fields(m, func(num protowire.Number, typ protowire.Type, m []byte) (int, error) {
		if num != 1 || typ != protowire.BytesType {
			return 0, nil
		}
		v, n := protowire.ConsumeBytes(m)
		if n < 0 {
			return n, nil
		}
		var id uint64
		var a Append
		if err := parseItem(v, &id, &a); err != nil {
			return 0, err
		}
		b.ids, b.appends = append(b.ids, id), append(b.appends, a)
		return n, nil
	})
}

func parseItem(m []byte, id *uint64, a *Append) error {
	hasChunk := false
	var at stamp
	err := fields(m, func(num protowire.Number, typ protowire.Type, m []byte) (int, error) {
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(m)
			*id = v
			return n, nil
		case (num == 2 || num == 3) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(m)
			if n < 0 {
				return n, nil
			}
			if !utf8.Valid(v) {
				return 0, errInvalidUTF8
			}
			if num == 2 {
				a.RunID = string(v)
			} else {
				a.Machine = string(v)
			}
			return n, nil
		case num == 4 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(m)
			if n < 0 {
				return n, nil
			}
			hasChunk = true
			return n, parseChunk(v, &a.Chunk, &at)
		}
		return 0, nil
	})
	if hasChunk && at.set {
		a.Chunk.At = time.Unix(at.seconds, int64(at.nanos)).UTC()
	}
	return err
}

// stamp is a google.protobuf.Timestamp as decoded so far.
type stamp struct {
	set     bool
	seconds int64
	nanos   int32
}

func parseChunk(m []byte, c *Chunk, at *stamp) error {
	return fields(m, func(num protowire.Number, typ protowire.Type, m []byte) (int, error) {
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(m)
			c.Seq = int64(v)
			return n, nil
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(m)
			if n < 0 {
				return n, nil
			}
			if !utf8.Valid(v) {
				return 0, errInvalidUTF8
			}
			c.Stream = string(v)
			return n, nil
		case num == 3 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(m)
			if n >= 0 {
				c.Data = v[:len(v):len(v)] // aliases the buffer; the cap keeps an append off its neighbours
			}
			return n, nil
		case num == 4 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(m)
			if n < 0 {
				return n, nil
			}
			at.set = true
			return n, fields(v, func(num protowire.Number, typ protowire.Type, m []byte) (int, error) {
				if typ != protowire.VarintType || (num != 1 && num != 2) {
					return 0, nil
				}
				v, n := protowire.ConsumeVarint(m)
				if num == 1 {
					at.seconds = int64(v)
				} else {
					at.nanos = int32(v)
				}
				return n, nil
			})
		}
		return 0, nil
	})
}
