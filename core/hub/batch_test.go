package hub_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/saltpeter/saltpeter/core/hub"
	"github.com/saltpeter/saltpeter/core/store/memory"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// batchingStore is the memory store with batches, counting them; gate,
// while held, keeps the first write (alone or in a batch) from committing
// so that the frames behind it queue up.
type batchingStore struct {
	*memory.Store
	mu      sync.Mutex
	batches []int
	gate    chan struct{}
	once    sync.Once
}

func (b *batchingStore) AppendOutput(ctx context.Context, runID, machine string, c store.Chunk) (int64, error) {
	b.once.Do(func() { <-b.gate })
	return b.Store.AppendOutput(ctx, runID, machine, c)
}

func (b *batchingStore) AppendOutputBatch(ctx context.Context, batch []store.Append) []store.AppendResult {
	b.once.Do(func() { <-b.gate })
	b.mu.Lock()
	b.batches = append(b.batches, len(batch))
	b.mu.Unlock()
	out := make([]store.AppendResult, len(batch))
	for i, a := range batch {
		out[i].Next, out[i].Err = b.Store.AppendOutput(ctx, a.RunID, a.Machine, a.Chunk)
	}
	return out
}

// TestOutputIsStoredInBatches: binary output frames that queue while the
// store commits are stored as one batch, in order, each acked after.
func TestOutputIsStoredInBatches(t *testing.T) {
	bs := &batchingStore{gate: make(chan struct{})}
	h, c, queued := queuedConn(t, opts{}, func(m *memory.Store) store.Store { bs.Store = m; return bs })
	const n = 50
	var want strings.Builder
	c.outBinary(0, wire.StreamStdout, []byte("chunk 0\n"))
	want.WriteString("chunk 0\n")
	for i := int64(1); i < n; i++ {
		data := fmt.Sprintf("chunk %d\n", i)
		c.outBinary(i, wire.StreamStdout, []byte(data))
		want.WriteString(data)
	}
	// The first write waits at the gate until every frame is queued.
	for range n {
		select {
		case <-queued:
		case <-time.After(wait):
			t.Fatal("the hub did not read the output frames")
		}
	}
	close(bs.gate)
	for i := int64(0); i < n; i++ {
		c.ackOutput(i)
	}
	if got := h.output("r1", "m", ""); got != want.String() {
		t.Fatalf("stored %q, want %q", got, want.String())
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	total, biggest := 0, 0
	for _, b := range bs.batches {
		total += b
		biggest = max(biggest, b)
	}
	// The first chunk may go alone (by AppendOutput); the rest were queued.
	if total < n-1 || biggest < 2 {
		t.Fatalf("batches %v: %d of %d chunks in batches, biggest %d; want all but at most one, some batch bigger than 1",
			bs.batches, total, n, biggest)
	}
}

// TestQueueBoundedInBytes: behind a store that does not commit, the
// reader queues output frames only while what they hold fits in
// QueueBytes, then waits; once the store commits, every chunk is stored
// and acked in order.
func TestQueueBoundedInBytes(t *testing.T) {
	waited := make(chan int64, 1)
	hub.SetRoomWaited(func(q int64) {
		select {
		case waited <- q:
		default:
		}
	})
	t.Cleanup(func() { hub.SetRoomWaited(nil) })
	bs := &batchingStore{gate: make(chan struct{})}
	h, c, queued := queuedConn(t, opts{}, func(m *memory.Store) store.Store { bs.Store = m; return bs })
	// Ten MiB, more than the queue may hold, in frames larger than a
	// chunk buffer, each an allocation of its own.
	const n, size = 10, 1 << 20
	var want bytes.Buffer
	sent := make(chan error, 1)
	go func() {
		for i := range int64(n) {
			data := bytes.Repeat([]byte{byte('a' + i%26)}, size)
			want.Write(data)
			b, err := wire.EncodeBinaryOutput(wire.StreamStdout, i, data)
			if err == nil {
				err = c.ws.WriteMessage(websocket.BinaryMessage, b)
			}
			if err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	var q int64
	select {
	case q = <-waited:
	case <-time.After(wait):
		t.Fatal("the reader queued every frame: no bound in bytes")
	}
	frames := len(queued)
	if q > hub.QueueBytes || frames > hub.QueueBytes/size+1 {
		t.Fatalf("the reader waited with %d bytes and %d frames queued; want at most %d bytes",
			q, frames, hub.QueueBytes)
	}
	close(bs.gate)
	for i := range int64(n) {
		c.ackOutput(i)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if got := h.output("r1", "m", ""); got != want.String() {
		t.Fatalf("stored %d bytes, want the %d sent", len(got), want.Len())
	}
}

// TestGracefulStopAcksThenGoesAway: a core stopping gracefully stores and
// acks the output it had read, even while the store is slow, then closes
// the connection with "going away"; a wrapper dialling meanwhile is
// turned away.
func TestGracefulStopAcksThenGoesAway(t *testing.T) {
	bs := &batchingStore{gate: make(chan struct{})}
	draining := make(chan struct{})
	hub.SetDrainStarted(func() { close(draining) })
	t.Cleanup(func() { hub.SetDrainStarted(nil) })
	h, c, queued := queuedConn(t, opts{}, func(m *memory.Store) store.Store { bs.Store = m; return bs })
	const n = 5
	var want strings.Builder
	for i := range n {
		line := fmt.Sprintf("line %d\n", i)
		want.WriteString(line)
		c.outBinary(int64(i), wire.StreamStdout, []byte(line))
		<-queued
	}
	// Every chunk is read and waits behind the held store write.
	stopped := make(chan struct{})
	go func() { h.stop(); close(stopped) }()
	<-draining
	if ws, resp, err := websocket.DefaultDialer.Dial(h.url, nil); err == nil {
		ws.Close()
		t.Errorf("a wrapper could connect to a stopping core")
	} else if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dialling a stopping core: %v, response %+v; want 503", err, resp)
	}
	close(bs.gate)
	for i := range n {
		c.ackOutput(int64(i))
	}
	_, err := c.read()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("after the acks: %v; want a close with code %d (going away)", err, websocket.CloseGoingAway)
	}
	<-stopped
	if got := h.output("r1", "m", ""); got != want.String() {
		t.Errorf("stored output %q, want %q", got, want.String())
	}
}

// TestBatchAcksLargerThanTheSendBuffer: a batch's acks do not fit in a
// small send buffer; they wait for room instead of dropping a wrapper
// that reads them.
func TestBatchAcksLargerThanTheSendBuffer(t *testing.T) {
	bs := &batchingStore{gate: make(chan struct{})}
	queued := make(chan struct{}, 1024)
	hub.SetFrameQueued(func() { queued <- struct{}{} })
	t.Cleanup(func() { hub.SetFrameQueued(nil) })
	h := newHarness(t, opts{sendBuffer: 4, wrap: func(m *memory.Store) store.Store { bs.Store = m; return bs }})
	h.expect(exp{run: "r1", machine: "m"})
	c := h.dial("r1", "m")
	c.connect()
	<-queued
	const n = 40
	for i := range n {
		c.outBinary(int64(i), wire.StreamStdout, []byte("x"))
		<-queued
	}
	close(bs.gate)
	for i := range n {
		c.ackOutput(int64(i))
	}
	if logs := h.logs.String(); strings.Contains(logs, "dropping connection") {
		t.Fatalf("the wrapper was dropped:\n%s", logs)
	}
	if got := h.output("r1", "m", ""); got != strings.Repeat("x", n) {
		t.Errorf("stored %q", got)
	}
}

// heldStore is the memory store, checking that every chunk it gets holds
// its seq's bytes (fill) when the call starts and still when it ends;
// the first call waits at gate, after sending on entered.
type heldStore struct {
	*memory.Store
	t       *testing.T
	gate    chan struct{}
	entered chan struct{}
	once    sync.Once
}

// fill is chunk seq's byte.
func fill(seq int64) byte { return 'a' + byte(seq%26) }

func (s *heldStore) check(when string, c store.Chunk) {
	for i, b := range c.Data {
		if b != fill(c.Seq) {
			s.t.Errorf("chunk %d %s its store call: byte %d is %q, want %q", c.Seq, when, i, b, fill(c.Seq))
			return
		}
	}
}

func (s *heldStore) AppendOutput(ctx context.Context, runID, machine string, c store.Chunk) (int64, error) {
	return s.one(store.Append{RunID: runID, Machine: machine, Chunk: c}, func() (int64, error) {
		return s.Store.AppendOutput(ctx, runID, machine, c)
	})
}

func (s *heldStore) AppendOutputBatch(ctx context.Context, batch []store.Append) []store.AppendResult {
	for _, a := range batch {
		s.check("at the start of", a.Chunk)
	}
	s.once.Do(func() { s.entered <- struct{}{}; <-s.gate })
	out := make([]store.AppendResult, len(batch))
	for i, a := range batch {
		out[i].Next, out[i].Err = s.Store.AppendOutput(ctx, a.RunID, a.Machine, a.Chunk)
	}
	for _, a := range batch {
		s.check("at the end of", a.Chunk)
	}
	return out
}

func (s *heldStore) one(a store.Append, f func() (int64, error)) (int64, error) {
	s.check("at the start of", a.Chunk)
	s.once.Do(func() { s.entered <- struct{}{}; <-s.gate })
	next, err := f()
	s.check("at the end of", a.Chunk)
	return next, err
}

// TestOutputBufferOutlivesItsStoreCall: a chunk's bytes stay as read
// until its store call has returned, while the connection reads on: the
// first chunk's call is held while the others are read, into buffers the
// hub may have recycled. The hub's recycled buffers are overwritten at
// once here, so a buffer given back too early shows whether or not it
// was reused.
func TestOutputBufferOutlivesItsStoreCall(t *testing.T) {
	cases := []struct {
		name     string
		size     int
		recycled bool // the chunks are read into recycled buffers
	}{
		{"line", 100, false},
		{"largest chunk", wire.MaxOutputChunk, true},
		{"quarter chunk", wire.MaxOutputChunk / 4, true},
		{"larger than a chunk", 2 * wire.MaxOutputChunk, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var recycled atomic.Int64
			hub.SetChunkRecycled(func(b []byte) {
				for i := range b {
					b[i] = '!'
				}
				recycled.Add(1)
			})
			t.Cleanup(func() { hub.SetChunkRecycled(nil) })
			hs := &heldStore{t: t, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
			h, c, queued := queuedConn(t, opts{}, func(m *memory.Store) store.Store { hs.Store = m; return hs })
			const n = 6 // all queued at once, even of the largest: see QueueBytes
			var want strings.Builder
			send := func(seq int64) {
				data := bytes.Repeat([]byte{fill(seq)}, tc.size)
				c.outBinary(seq, wire.StreamStdout, data)
				want.Write(data)
				<-queued
			}
			send(0)
			<-hs.entered
			for seq := int64(1); seq < n; seq++ {
				send(seq)
			}
			close(hs.gate)
			for seq := range int64(n) {
				c.ackOutput(seq)
			}
			if got := h.output("r1", "m", ""); got != want.String() {
				t.Errorf("stored %d bytes unlike those sent", len(got))
			}
			// Chunk 0's buffer is given back before the handler stores
			// the next batch, so before the last ack.
			if got := recycled.Load(); (got > 0) != tc.recycled {
				t.Errorf("%d buffers recycled; want some: %v", got, tc.recycled)
			}
		})
	}
}

// queuedConn connects the wrapper of r1/m to a hub over the memory store
// as wrap wraps it, and returns the harness, the wrapper and what hears
// each frame the hub queues (the connect's already heard).
func queuedConn(t *testing.T, o opts, wrap func(*memory.Store) store.Store) (*harness, *client, <-chan struct{}) {
	t.Helper()
	queued := make(chan struct{}, 1024)
	hub.SetFrameQueued(func() { queued <- struct{}{} })
	t.Cleanup(func() { hub.SetFrameQueued(nil) })
	o.wrap = wrap
	h := newHarness(t, o)
	h.expect(exp{run: "r1", machine: "m"})
	c := h.dial("r1", "m")
	c.connect()
	<-queued // the connect
	return h, c, queued
}

// failingStore fails every chunk with err.
type failingStore struct {
	*memory.Store
	err error
}

func (s *failingStore) AppendOutput(context.Context, string, string, store.Chunk) (int64, error) {
	return 0, s.err
}

// answeredError is a failure the store plugin returned itself.
type answeredError struct{ error }

func (answeredError) PluginAnswered() bool { return true }

// TestUnansweredOutputBufferNotRecycled: a chunk whose store call failed
// without the store's answer keeps its buffer out of the pool, since the
// store's client may still be sending its bytes; one the store answered
// gives it back. Either failure ends the connection, after the recycle.
func TestUnansweredOutputBufferNotRecycled(t *testing.T) {
	unavailable := fmt.Errorf("store output stream ended: %w", store.ErrUnavailable)
	for _, tc := range []struct {
		name     string
		err      error
		recycled int64
	}{
		{"unanswered", unavailable, 0},
		{"answered", answeredError{unavailable}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var recycled atomic.Int64
			hub.SetChunkRecycled(func([]byte) { recycled.Add(1) })
			t.Cleanup(func() { hub.SetChunkRecycled(nil) })
			_, c, queued := queuedConn(t, opts{}, func(m *memory.Store) store.Store {
				return &failingStore{Store: m, err: tc.err}
			})
			c.outBinary(0, wire.StreamStdout, bytes.Repeat([]byte{'x'}, wire.MaxOutputChunk))
			<-queued
			c.closed()
			if got := recycled.Load(); got != tc.recycled {
				t.Errorf("%d buffers recycled, want %d", got, tc.recycled)
			}
		})
	}
}
