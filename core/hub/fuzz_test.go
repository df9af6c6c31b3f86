package hub

import (
	"bytes"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// FuzzDecodeFrame drives the hub's frame decoding path (wire.Decode,
// wire.DecodeBinaryOutput and classify) with arbitrary messages. It checks
// that nothing panics, that classification is consistent with what it
// found, and that output chunks round-trip through the encoders the
// wrapper uses.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(true, []byte(`{"type":"connect","protocol":2,"token":"x","job_instance":"r","machine":"m"}`))
	f.Add(true, []byte(`{"type":"output","seq":3,"stream":"stdout","data":"hi\n"}`))
	f.Add(true, []byte(`{"type":"output","seq":0,"stream":"stderr","data_b64":"/w=="}`))
	f.Add(true, []byte(`{"type":"complete","retcode":143,"reason":"killed","seq":9}`))
	f.Add(true, []byte(`{"type":"killed","signal":"SIGTERM","pid_count":2}`))
	f.Add(true, []byte(`{"type":"sync_request","last_acked_seq":-1,"next_seq":0}`))
	f.Add(true, []byte(`{"type":"nope"}`))
	f.Add(true, []byte(`{"type":"output","seq":-1,"stream":"stdout"}`))
	f.Add(true, []byte(`null`))
	f.Add(true, []byte(`[1,2]`))
	f.Add(false, []byte{1, 0, 0, 0, 0, 0, 0, 0, 7, 'a', 0xff})
	f.Add(false, []byte{3, 0x40, 0, 0, 0, 0, 0, 0, 1})
	f.Add(false, []byte{9, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(false, []byte{1, 0})
	f.Fuzz(func(t *testing.T, isText bool, data []byte) {
		mt := websocket.BinaryMessage
		if isText {
			mt = websocket.TextMessage
		}
		var in, again inbound
		classify(mt, data, &in)
		classify(mt, data, &again)
		if in.kind != again.kind || in.seq != again.seq || !bytes.Equal(in.data, again.data) {
			t.Fatalf("classify is not deterministic")
		}
		switch in.kind {
		case inBad, inTooLarge:
			if in.err == nil {
				t.Fatalf("%s without an error", in.kind)
			}
			return
		case inOutput:
			if in.seq < 0 {
				t.Fatalf("output with negative seq %d", in.seq)
			}
			if _, ok := wire.StreamCode(in.stream); !ok {
				t.Fatalf("output on unknown stream %q", in.stream)
			}
			if in.binary {
				if isText {
					t.Fatalf("a text message classified binary")
				}
				b, err := wire.EncodeBinaryOutput(in.stream, in.seq, in.data)
				if err != nil || !bytes.Equal(b, data) {
					t.Fatalf("binary frame does not round-trip: %v", err)
				}
				return
			}
			// A JSON chunk re-encoded the way a v2 wrapper does it
			// carries the same bytes.
			var fr wire.Frame
			fr.Type, fr.Seq, fr.Stream = wire.TypeOutput, wire.Int64(in.seq), in.stream
			fr.SetBytes(in.data)
			enc, err := wire.Encode(fr)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			var back inbound
			classify(websocket.TextMessage, enc, &back)
			if back.kind != inOutput || back.seq != in.seq || !bytes.Equal(back.data, in.data) {
				t.Fatalf("JSON output does not round-trip: %q → %q", in.data, back.data)
			}
		case inControl, inUnknown, inIgnored:
			if !isText {
				t.Fatalf("a binary message classified %s", in.kind)
			}
			if in.frame.Type == "" {
				t.Fatalf("%s frame without type", in.kind)
			}
			if (in.kind == inUnknown) == wire.KnownType(in.frame.Type) {
				t.Fatalf("type %q classified %s", in.frame.Type, in.kind)
			}
			if in.frame.Type == wire.TypeComplete && in.frame.Retcode == nil {
				t.Fatalf("complete without retcode accepted")
			}
			if in.kind == inControl {
				// The hub's other decisions on a frame must not panic.
				_ = v2Connect(in.frame)
				if in.frame.Type == wire.TypeComplete {
					_, _ = outcome(in.frame, false, true)
				}
			}
		}
	})
}
