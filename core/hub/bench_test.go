package hub_test

import (
	"bytes"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// heartbeatsPerSync is how many heartbeats BenchmarkHubMessage/heartbeat
// sends between two syncs: a heartbeat has no answer, and the sync keeps
// the client from running ahead of the hub by more than that.
const heartbeatsPerSync = 64

// BenchmarkHubMessage is the hub's cost per message from one wrapper over
// a real WebSocket on loopback, round trip: the client sends and awaits
// the core's answer before the next. sync is a message the hub answers
// without the store; heartbeat is what an idle wrapper sends, which has
// no answer (a sync follows every heartbeatsPerSync of them, its cost
// counted in theirs); output is a binary output frame, stored in the
// in-memory store and acked. allocs/op include the test client's own.
func BenchmarkHubMessage(b *testing.B) {
	h := newHarness(b, opts{})
	h.expect(exp{run: "bench", machine: "m"})
	c := h.dial("bench", "m")
	c.connect()
	c.start(1)
	b.Run("sync", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.sync()
		}
	})
	hb, err := wire.Encode(c.frame(wire.TypeHeartbeat))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("heartbeat", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			c.sendRaw(websocket.TextMessage, hb)
			if n++; n%heartbeatsPerSync == 0 {
				c.sync()
			}
		}
	})
	data := bytes.Repeat([]byte("x"), 512)
	var seq int64
	b.Run("output", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			c.outBinary(seq, wire.StreamStdout, data)
			c.ackOutput(seq)
			seq++
		}
	})
}
