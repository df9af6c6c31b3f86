package grpcbuf

import (
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type selfDecoding struct{ got []byte }

func (s *selfDecoding) Decode(data mem.BufferSlice) error {
	s.got = data.Materialize()
	return nil
}

// Codec is what gRPC finds under proto's name, hands a Decoder its
// buffers, and is proto's codec for every other message.
func TestCodecInProtosPlace(t *testing.T) {
	c, ok := encoding.GetCodecV2(proto.Name).(Codec)
	if !ok {
		t.Fatalf("gRPC's %q codec is %T", proto.Name, encoding.GetCodecV2(proto.Name))
	}
	data, err := c.Marshal(wrapperspb.String("hello"))
	if err != nil {
		t.Fatal(err)
	}
	var d selfDecoding
	if err := c.Unmarshal(data, &d); err != nil || len(d.got) != data.Len() {
		t.Fatalf("the Decoder got %q (%v), want the %d bytes marshalled", d.got, err, data.Len())
	}
	var s wrapperspb.StringValue
	if err := c.Unmarshal(data, &s); err != nil || s.GetValue() != "hello" {
		t.Fatalf("proto's way: %q, %v", s.GetValue(), err)
	}
}
