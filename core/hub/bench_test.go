package hub_test

import (
	"bytes"
	"testing"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// BenchmarkHubMessage is the hub's cost per message from one wrapper over
// a real WebSocket on loopback, round trip: the client sends and awaits
// the core's answer before the next. sync is a message the hub answers
// without the store; output is a binary output frame, stored in the
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
