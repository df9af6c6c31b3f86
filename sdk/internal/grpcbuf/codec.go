package grpcbuf

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// Decoder is a message that decodes itself from the buffers gRPC read it
// into. Decode may keep data past its return only by taking a reference
// (mem.BufferSlice.Ref, or MaterializeToBuffer), which it must free.
type Decoder interface {
	Decode(data mem.BufferSlice) error
}

// Encoder is a message that encodes itself into buffers for gRPC to
// write. They may alias the message's own bytes: gRPC reads them until
// it has written the message or given the stream up, after Send has
// returned, so the sender must keep them unchanged until the peer has
// answered the message, or for good when it gets no answer.
type Encoder interface {
	Encode() (mem.BufferSlice, error)
}

// Codec is gRPC's proto codec, except that an Encoder encodes itself and
// a Decoder decodes itself. It takes proto's place in gRPC's registry of
// codecs, so every gRPC server and client of a process that imports the
// SDK uses it: the core's connections to its plugins, the plugin's server
// under Serve, and the in-process servers of the SDK's test helpers too,
// so that tests cross the same encoding and decoding. For every
// other message it is the proto codec itself.
type Codec struct{}

// protoCodec is gRPC's own, looked up before init replaces it: this
// package imports gRPC's proto codec, whose init registers it first.
var protoCodec = encoding.GetCodecV2(proto.Name)

func init() { encoding.RegisterCodecV2(Codec{}) }

// Marshal implements encoding.CodecV2.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	if e, ok := v.(Encoder); ok {
		return e.Encode()
	}
	return protoCodec.Marshal(v)
}

// Unmarshal implements encoding.CodecV2.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	if d, ok := v.(Decoder); ok {
		return d.Decode(data)
	}
	return protoCodec.Unmarshal(data, v)
}

// Name implements encoding.CodecV2.
func (Codec) Name() string { return proto.Name }
