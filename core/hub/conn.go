package hub

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/saltpeter/saltpeter/core/events"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// Buffers, for an idle connection's sake: it holds only its read buffer.
// That one takes a frame's header and a heartbeat or two; a frame is read
// out of it into a pooled buffer of a chunk's size, and once that buffer
// asks for more than it holds, the rest comes from the socket straight
// (see readFrame), so a larger one would save a read only where small
// frames come in bursts. gorilla/websocket reuses a hijacked reader only
// above 256 bytes. Write buffers are shared through a pool and held only
// during a write.
const (
	readBufferSize  = 512
	writeBufferSize = 4 << 10
)

// upgrader reads through the buffered reader the HTTP server hands it at
// the hijack (ReadBufferSize 0, as gorilla/websocket documents it), which
// ownReader makes the hub's own: see readPump.
var upgrader = websocket.Upgrader{WriteBufferSize: writeBufferSize, WriteBufferPool: &sync.Pool{}}

// ownReader hands the upgrader a read buffer of readBufferSize that the
// hub keeps a hand on, in place of the HTTP server's (4 KiB).
type ownReader struct {
	http.ResponseWriter
	br *bufio.Reader // the connection's read buffer, once hijacked
}

func (w *ownReader) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the response writer cannot be hijacked")
	}
	nc, brw, err := hj.Hijack()
	if err != nil || brw.Reader.Buffered() > 0 {
		return nc, brw, err // the upgrader refuses bytes read ahead of it
	}
	w.br = bufio.NewReaderSize(notAdopted{}, readBufferSize)
	return nc, bufio.NewReadWriter(w.br, brw.Writer), nil
}

// notAdopted is what the hub's read buffer reads from until the upgrader
// takes it, which resets it to the socket. An upgrader that kept a buffer
// of its own would leave it here, and the connection would fail at once
// rather than lose the bytes the hub's buffer took from the socket.
type notAdopted struct{}

var errNotAdopted = errors.New("the websocket upgrader did not take the hub's read buffer")

func (notAdopted) Read([]byte) (int, error) { return 0, errNotAdopted }

// outFrame is one message for the writer.
type outFrame struct {
	data  []byte // nil: none, only the close
	close bool   // close the connection once written
	// code and reason go in the close message; code 0 is a policy
	// violation (a refusal).
	code   int
	reason string
}

// conn is one wrapper connection. It has one goroutine for as long as it
// lives, the reader (readPump), which handles a frame itself when nothing
// is queued before it, unless it is output (see readOne), and writes its
// own replies (see writeLoop). A handler goroutine (output, for batching)
// and a writer goroutine (the hub's commands) live only while they have
// work: most connections idle between heartbeats, and an idle goroutine
// costs its stack.
type conn struct {
	ws       *websocket.Conn
	br       *bufio.Reader // ws's read buffer; see readPump
	send     sendQueue
	quit     chan struct{} // closed by abort, with the socket
	quitOnce sync.Once
	// writing is set while a writer runs; see writeLoop.
	writing atomic.Bool
	// writeTimeout bounds a write, and a reply's wait for buffer room.
	writeTimeout time.Duration
	closing      atomic.Bool  // a frame with close is queued
	draining     atomic.Bool  // the core is stopping: read nothing more
	lastSeen     atomic.Int64 // unix nanoseconds of the last frame
	log          *connLog

	// frames are read and not handled yet, in order (nil until the
	// reader first queues one; only the reader sets it, before it starts
	// the handler that reads it); handling is set while a frame is being
	// handled, by the reader or by a handler goroutine (see
	// handleFrames), which handlers counts; ended is closed when the
	// handling ended the connection.
	frames   chan *inbound
	handling atomic.Bool
	handlers sync.WaitGroup
	ended    chan struct{}
	endOnce  sync.Once
	// queued is what the frames read ahead hold, from queueing until
	// handled (see queueBytes); room, made with frames, is signalled
	// whenever that goes down.
	queued atomic.Int64
	room   chan struct{}

	// bound is set once the connection serves a machine; bindBy is the
	// BindTimeout's deadline and bindTimer closes the connection then
	// unless it is bound.
	bound     atomic.Bool
	bindBy    time.Time
	bindTimer *time.Timer

	// Only for whoever holds handling.
	key         key
	v2          bool
	job         string
	next        *atomic.Int64 // the machine's stored output (mstate.next)
	lastHBWrite time.Time
}

// abort drops the connection: it closes the socket, which ends the reader
// and any write, and stops the writer.
func (c *conn) abort() {
	c.quitOnce.Do(func() {
		close(c.quit)
		_ = c.ws.Close()
	})
}

// goAway starts a graceful close: the read pump stops reading (a read it
// is waiting in ends now), the frames it had read are handled, and the
// connection closes with "going away". Safe from any goroutine.
func (c *conn) goAway() {
	c.draining.Store(true)
	_ = c.ws.SetReadDeadline(time.Now())
}

// stop ends the connection once its handling decided so: a connection
// closing after a last frame (a refusal) is closed by the writer once
// that frame is out; any other is aborted now. Either closes the socket,
// which ends the read pump.
func (c *conn) stop() {
	if !c.closing.Load() {
		c.abort()
	}
}

// queue hands a frame to the writer; false if the buffer is full. own
// says the caller is the connection's own reader or handler, which then
// writes itself when no writer runs (see writeLoop); any other caller, the
// hub goroutine, must never wait on a socket and starts a writer
// goroutine.
func (c *conn) queue(m *outFrame, own bool) bool {
	if ok, _ := c.send.push(m); !ok {
		return false
	}
	if m.close {
		c.closing.Store(true)
	}
	c.kickWriter(own)
	return true
}

// enqueue queues a frame without blocking; a full buffer drops the
// connection (the wrapper will resume). It reports whether the frame was
// queued. For callers other than the connection's own goroutines.
func (c *conn) enqueue(f wire.Frame, closeAfter bool) bool { return c.push(f, closeAfter, false) }

// push is enqueue for any caller; own as for queue.
func (c *conn) push(f wire.Frame, closeAfter, own bool) bool {
	b, err := wire.Encode(f)
	if err != nil {
		c.log.Error("encode frame", "type", f.Type, "error", err)
		return false
	}
	select {
	case <-c.quit:
		return false
	default:
	}
	if !c.queue(&outFrame{data: b, close: closeAfter}, own) {
		c.log.Warn("dropping connection: send buffer full (slow reader)")
		c.abort()
		return false
	}
	return true
}

// kickWriter makes sure a writer runs: the caller itself when own, else a
// goroutine.
func (c *conn) kickWriter(own bool) {
	if c.writing.CompareAndSwap(false, true) {
		if own {
			c.writeLoop()
		} else {
			go c.writeLoop()
		}
	}
}

// writeLoop writes what is queued, one frame at a time (the one writer
// per connection that gorilla/websocket allows), and ends when nothing is
// left: the next frame queued starts another. The connection's own
// goroutines run it themselves, for their replies; it runs as a
// goroutine of its own only for frames the hub sends (kill and signal
// commands), so that a connection keeps no writer goroutine, and spawns
// none per ack. It clears writing before it looks at the buffer a last
// time, so that a frame queued meanwhile either is seen here or starts a
// writer of its own; never both, never neither.
func (c *conn) writeLoop() {
	for {
		select {
		case <-c.quit:
			return // writing stays set: nothing is written any more
		default:
		}
		if m := c.send.pop(); m != nil {
			if !c.write(m) {
				c.abort()
				return
			}
			continue
		}
		c.writing.Store(false)
		if c.send.len() == 0 || !c.writing.CompareAndSwap(false, true) {
			return
		}
	}
}

// write writes one queued frame; false when the connection is done (a
// close was written, or the write failed).
func (c *conn) write(m *outFrame) bool {
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	if m.data != nil {
		if err := c.ws.WriteMessage(websocket.TextMessage, m.data); err != nil {
			c.log.Debug("write failed", "error", err)
			return false
		}
	}
	if m.close {
		code := m.code
		if code == 0 {
			code = websocket.ClosePolicyViolation
		}
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, m.reason),
			time.Now().Add(c.writeTimeout))
		return false
	}
	return true
}

// ServeHTTP is the /ws endpoint. It returns once the connection is
// upgraded: the connection's reader is a goroutine of its own, so that
// net/http's request, response and the stack of its serving goroutine do
// not stay alive with a connection that lasts as long as its job.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.draining.Load() {
		http.Error(w, "core shutting down", http.StatusServiceUnavailable)
		return
	}
	ow := &ownReader{ResponseWriter: w}
	ws, err := upgrader.Upgrade(ow, r, nil)
	if err != nil {
		h.log.Debug("websocket upgrade failed", "remote_addr", r.RemoteAddr, "error", err)
		return // the upgrader answered
	}
	if ow.br == nil { // the upgrader hijacked otherwise than through ow
		h.log.Error("websocket upgrade without the hub's read buffer", "remote_addr", r.RemoteAddr)
		ws.Close()
		return
	}
	now := h.now()
	c := &conn{
		ws: ws, br: ow.br, send: sendQueue{max: h.cfg.SendBuffer}, quit: make(chan struct{}),
		log: newConnLog(h.log, r.RemoteAddr), writeTimeout: h.cfg.WriteTimeout,
		ended:  make(chan struct{}),
		bindBy: time.Now().Add(h.cfg.BindTimeout),
	}
	c.lastSeen.Store(now.UnixNano())
	if !h.post(registerMsg{c}) {
		ws.Close()
		return
	}
	c.bindTimer = time.AfterFunc(h.cfg.BindTimeout, func() {
		if !c.bound.Load() {
			c.log.Warn("closing a connection not bound within the bind timeout", "bind_timeout", h.cfg.BindTimeout)
			c.abort()
		}
	})
	go h.readPump(c)
}

// readPump is a connection's reader (see conn). After a frame other than
// a heartbeat handled here, it goes on in a goroutine of its own making
// and ends: the handling of such a frame (a bind, a start: store calls)
// grows the reader's stack to 8 or 16 KiB, which only halves at each
// collection, and an idle core collects seldom; the new goroutine starts
// with the runtime's average stack, which an idle connection's heartbeats
// keep within. BenchmarkHubIdleConnections, after two collections: 4,040
// → 1,760 bytes of stack a connection.
func (h *Hub) readPump(c *conn) {
	if h.readFrames(c) {
		go h.readPump(c)
		return
	}
	// Everything read is handled by now, unless the handling ended the
	// connection.
	c.handlers.Wait()
	c.bindTimer.Stop()
	if c.draining.Load() && !c.closing.Load() {
		// Say why the socket closes.
		c.closeWith(websocket.CloseGoingAway, "core shutting down")
	}
	if c.closing.Load() {
		// Let the writer deliver the last frame and close.
		t := time.NewTimer(c.writeTimeout)
		select {
		case <-c.quit:
		case <-t.C:
		}
		t.Stop()
	}
	c.abort()
	h.post(unregMsg{c})
}

// readFrames reads and handles frames until the connection ends (false)
// or the reader is to go on in a new goroutine (true; see readPump).
func (h *Hub) readFrames(c *conn) bool {
	for {
		_ = c.ws.SetReadDeadline(time.Now().Add(h.cfg.HeartbeatTimeout))
		// Checked after the deadline is set: goAway sets the flag before
		// its own deadline, so one of the two stops this read.
		if c.draining.Load() {
			return false
		}
		// An idle connection waits here, in its read buffer, rather than
		// deep in NextReader, and the frame is read in a function of its
		// own: the stack of a goroutine waiting here is shallow.
		if _, err := c.br.Peek(1); err != nil {
			if errors.Is(err, errNotAdopted) {
				c.log.Error("connection dropped", "error", err)
			}
			c.log.Debug("connection ended", "error", err, "draining", c.draining.Load())
			return false
		}
		switch h.readOne(c) {
		case readEnded:
			return false
		case readHandledDeep:
			return true
		}
	}
}

// What readOne did with a frame.
type readOutcome int

const (
	readEnded       readOutcome = iota // the connection ended
	readHandled                        // a heartbeat handled, or a frame queued
	readHandledDeep                    // another frame handled by the reader
)

// readOne reads a frame and has it handled.
// Output is handled by a handler goroutine the reader feeds through a
// queue in frame order: while a batch of output is being stored, the next
// frames are read, and the output among them is stored as the next batch.
func (h *Hub) readOne(c *conn) readOutcome {
	mt, r, err := c.ws.NextReader()
	if err != nil {
		c.log.Debug("connection ended", "error", err, "draining", c.draining.Load())
		return readEnded
	}
	data, buf, err := readFrame(r)
	if err != nil {
		c.log.Debug("connection ended mid-frame", "error", err)
		return readEnded
	}
	var in inbound
	classify(mt, data, &in)
	in.held = len(data)
	if buf != nil {
		switch {
		case in.kind == inOutput && in.binary && len(data) >= minKeptChunk:
			in.buf = buf // given back once stored: see recycle
			in.held = cap(*buf)
		case in.kind == inOutput && in.binary:
			// A small chunk is copied out, so that a queue of them does
			// not hold a chunk buffer each.
			in.data = bytes.Clone(in.data)
			chunkPool.Put(buf)
		default:
			// A text frame's decoding shares nothing with the buffer
			// (DecodeInto), and a bad frame keeps nothing of it: a
			// heartbeat costs no copy.
			chunkPool.Put(buf)
		}
	}
	if in.kind != inOutput && c.handling.CompareAndSwap(false, true) {
		// No handler runs, and only this goroutine queues: with nothing
		// queued, a frame other than output (a heartbeat, mostly) is
		// handled here, so that an idle connection's heartbeat costs no
		// goroutine. Output goes to a handler, for batching.
		if len(c.frames) == 0 {
			if frameQueued != nil {
				frameQueued()
			}
			if !h.receive(c, &in) {
				c.end() // handling stays set: nothing more is handled
				return readEnded
			}
			c.handling.Store(false)
			if in.kind == inControl && in.frame.Type == wire.TypeHeartbeat {
				return readHandled
			}
			return readHandledDeep
		}
		c.handlers.Add(1)
		go h.handleFrames(c)
	}
	if c.frames == nil {
		// Made by the reader, once, before it starts a handler: most
		// connections never queue a frame (see frameQueue).
		c.frames = make(chan *inbound, frameQueue)
		c.room = make(chan struct{}, 1)
	}
	if !c.waitRoom(int64(in.held)) {
		h.recycle(&in)
		return readEnded
	}
	queued := new(inbound) // the reader's own stays on its stack
	*queued = in
	select {
	case c.frames <- queued:
		if frameQueued != nil {
			frameQueued()
		}
	case <-c.ended:
		return readEnded
	}
	if c.handling.CompareAndSwap(false, true) {
		c.handlers.Add(1)
		go h.handleFrames(c)
	}
	return readHandled
}

// chunkPool holds the buffers frames are read into, each large enough
// for a binary output frame of a wrapper's largest chunk, and a byte more,
// so that a frame that fills one is known to be larger (see readFrame). An
// output chunk of at least minKeptChunk stays in its buffer until its
// store call has returned (see recycle), then the buffer reads another:
// an exact-size allocation per chunk, freed by the collector and given
// back to the kernel by the scavenger, cost the core more than the rest
// of its work on the chunk, most of it the kernel zeroing the pages
// again. Pooled rather than kept per connection, since a connection
// waits for its next frame far longer than it reads one.
var chunkPool = sync.Pool{New: func() any {
	b := make([]byte, chunkBufBytes)
	return &b
}}

const chunkBufBytes = wire.BinaryHeaderBytes + wire.MaxOutputChunk + 1

// minKeptChunk is the smallest frame that keeps its pooled buffer; a
// smaller one's data gets an allocation of its own size, as the decoded
// fields of a text frame do, so that a connection's queue of small chunks
// (a job writing lines) does not hold a whole chunk buffer each.
const minKeptChunk = chunkBufBytes / 4

// chunkRecycled, set only by tests, sees each buffer recycle gives back,
// before the pool can hand it out again.
var chunkRecycled func([]byte)

// recycle gives the pooled buffers of ins back, once whatever got their
// chunks has returned: the contract of store.Chunk.Data. Not when the
// hub's context is done: a store call that returned because of that may
// still be sending the bytes (store.GRPCClient), so they are left to the
// collector, as are those of calls that failed unanswered
// (keepUnanswered).
func (h *Hub) recycle(ins ...*inbound) {
	if h.ctx.Err() != nil {
		return
	}
	for _, in := range ins {
		if in.buf == nil {
			continue
		}
		if chunkRecycled != nil {
			chunkRecycled(*in.buf)
		}
		chunkPool.Put(in.buf)
		in.buf, in.data = nil, nil
	}
}

// scratchPool holds the buffers a frame larger than a chunk buffer is
// read on into, before it gets an allocation of its own exact size rather
// than a growing one (a large one keeps the buffer). Such frames are
// rare: a v1 wrapper's JSON output of a large chunk, say.
var scratchPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledScratch is the largest scratch buffer kept for the next large
// frame: one grown by a rare frame of megabytes is left to the collector.
// It holds a v1 wrapper's largest output frame (wire.MaxOutputChunk in
// base64 and JSON, for which the buffer doubles to twice that) with room
// to spare: a frame larger than the pooled buffers is read into buffers
// grown from 512 bytes, each allocated, cleared and copied into.
const maxPooledScratch = 4 * wire.MaxOutputChunk

// readFrame reads one message, up to one byte more than a frame may have
// (classify refuses it then), into a buffer of chunkPool, which it
// returns with the frame unless the frame did not fit (nil then: the
// frame has an allocation of its own). The caller owns the buffer.
func readFrame(r io.Reader) ([]byte, *[]byte, error) {
	buf := chunkPool.Get().(*[]byte)
	b := *buf
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if errors.Is(err, io.EOF) {
			return b[:n], buf, nil
		}
		if err != nil {
			chunkPool.Put(buf)
			return nil, nil, err
		}
	}
	data, err := readLarge(b, r)
	chunkPool.Put(buf)
	return data, nil, err
}

// readLarge reads the rest of a message that filled head, a chunk buffer,
// and returns the whole in an allocation of its own.
func readLarge(head []byte, r io.Reader) ([]byte, error) {
	scratch := scratchPool.Get().(*bytes.Buffer)
	defer func() {
		if scratch.Cap() <= maxPooledScratch {
			scratch.Reset()
			scratchPool.Put(scratch)
		}
	}()
	scratch.Write(head)
	if _, err := scratch.ReadFrom(io.LimitReader(r, wire.MaxFrameBytes+1-int64(len(head)))); err != nil {
		return nil, err
	}
	if scratch.Cap() > maxPooledScratch {
		return scratch.Bytes(), nil // not pooled again: the frame keeps it, uncopied
	}
	return bytes.Clone(scratch.Bytes()), nil
}

// frameQueued, set only by tests, is told of every frame taken for
// handling, queued or handled by the reader: the one event a test of
// batching must await.
var frameQueued func()

// frameQueue and queueBytes bound the frames read ahead of their
// handling, in number and in the bytes they hold (a pooled chunk buffer
// counts whole); a wrapper that sends faster than the store commits waits
// in its own spool. One frame is always let in, however large, so a v1
// wrapper's largest frame still goes through. The queue is made when a
// connection first queues a frame (output, or a frame read while a
// handler runs): an idle connection, whose heartbeats the reader handles
// itself, never has one (600 bytes of heap each).
const (
	frameQueue = 64
	queueBytes = 4 << 20
)

// waitRoom takes n bytes of the connection's queueBytes for a frame about
// to be queued, waiting until they fit; false when the connection ended
// first. Only the reader takes, so what it saw cannot grow under it.
func (c *conn) waitRoom(n int64) bool {
	for {
		q := c.queued.Load()
		if q == 0 || q+n <= queueBytes {
			c.queued.Add(n)
			return true
		}
		if roomWaited != nil {
			roomWaited(q)
		}
		select {
		case <-c.room:
		case <-c.ended:
			return false
		}
	}
}

// roomWaited, set only by tests, is told each time the reader waits for
// room in the queue, with the bytes queued then.
var roomWaited func(queued int64)

// freeRoom gives back what handled frames held.
func (c *conn) freeRoom(ins ...*inbound) {
	var n int
	for _, in := range ins {
		n += in.held
	}
	c.queued.Add(-int64(n))
	select {
	case c.room <- struct{}{}:
	default:
	}
}

// maxBatch bounds the output chunks stored in one batch.
const maxBatch = 256

// end stops the reader after a handler ended the connection.
func (c *conn) end() {
	c.endOnce.Do(func() { close(c.ended) })
	c.stop()
}

// handleFrames handles a connection's frames in order until none is
// queued, or one ends the connection. Consecutive binary output frames
// already queued are stored as one batch. The reader starts it with a
// frame; it ends when the queue is empty, clearing handling before it
// looks at the queue a last time (as writeLoop does), so that one handler
// runs at a time and a queued frame always has one.
func (h *Hub) handleFrames(c *conn) {
	defer c.handlers.Done()
	var next *inbound
	for {
		in := next
		next = nil
		if in == nil {
			select {
			case in = <-c.frames:
			default:
				c.handling.Store(false)
				if len(c.frames) == 0 || !c.handling.CompareAndSwap(false, true) {
					return
				}
				continue
			}
		}
		if !c.bound.Load() || !in.binary || in.kind != inOutput {
			ok := h.receive(c, in)
			h.recycle(in)
			c.freeRoom(in)
			if !ok {
				c.end() // handling stays set: nothing more is handled
				return
			}
			continue
		}
		batch := []*inbound{in}
	more:
		for len(batch) < maxBatch {
			select {
			case f := <-c.frames:
				if f.binary && f.kind == inOutput {
					batch = append(batch, f)
					continue
				}
				next = f
				break more
			default:
				break more
			}
		}
		c.lastSeen.Store(h.now().UnixNano())
		ok := h.outputs(c, batch)
		h.recycle(batch...)
		c.freeRoom(batch...)
		if !ok {
			c.end()
			return
		}
	}
}

// replyError answers a frame with an error frame; the connection stays.
// Not inlined: the frame it builds would be in its caller's stack frame
// (receive's, on every heartbeat's path; see receive).
//
//go:noinline
func (c *conn) replyError(code, text string) bool {
	return c.reply(wire.ErrorFrame(code, text))
}

// refuse sends an error frame and closes the connection.
func (c *conn) refuse(code, text string) bool {
	c.push(wire.ErrorFrame(code, text), true, true)
	return false
}

// closeWith queues a close message with code and reason after the frames
// already queued.
func (c *conn) closeWith(code int, reason string) {
	select {
	case <-c.quit:
		return
	default:
	}
	if !c.queue(&outFrame{close: true, code: code, reason: reason}, true) {
		c.abort()
	}
}

// reply sends a frame from the connection's own reader or handler, which
// writes it itself unless a writer runs (see writeLoop); false when the
// connection was dropped. Unlike enqueue, it waits for room when the
// buffer is full behind a writer: waiting holds back only this
// connection's reading (its wrapper spools meanwhile), and a wrapper that
// reads nothing for the write timeout is dropped.
func (c *conn) reply(f wire.Frame) bool {
	b, err := wire.Encode(f)
	if err != nil {
		c.log.Error("encode frame", "type", f.Type, "error", err)
		return false
	}
	m := &outFrame{data: b}
	select {
	case <-c.quit:
		return false
	default:
	}
	if c.queue(m, true) {
		return true
	}
	// The buffer is full, so a writer runs (see writeLoop): wait for it.
	t := time.NewTimer(c.writeTimeout)
	defer t.Stop()
	for {
		ok, room := c.send.push(m)
		if ok {
			c.kickWriter(true)
			return true
		}
		select {
		case <-room:
		case <-c.quit:
			return false
		case <-t.C:
			c.log.Warn("dropping connection: the wrapper read nothing for the write timeout", "write_timeout", c.writeTimeout)
			c.abort()
			return false
		}
	}
}

// receive handles one message; false ends the connection. It, dispatch
// and the functions they call for every heartbeat keep their frames
// small: a reader's stack is as deep as its deepest frame's handling, and
// a heartbeat's is what an idle connection needs (see readPump). The
// rest, whose frames hold wire.Frames to send (400 bytes each), are
// functions of their own.
func (h *Hub) receive(c *conn, in *inbound) bool {
	switch in.kind {
	case inTooLarge, inBad, inUnknown:
		return h.refuseFrame(c, in)
	case inIgnored:
		return true
	}
	if !c.bound.Load() {
		return h.bindConn(c, in)
	}
	c.lastSeen.Store(h.now().UnixNano())
	if f := &in.frame; !in.binary &&
		((f.JobInstance != "" && f.JobInstance != c.key.run) || (f.Machine != "" && f.Machine != c.key.machine)) {
		return c.replyError(wire.CodeWrongRun, "this connection serves another run or machine")
	}
	return h.dispatch(c, in)
}

// refuseFrame answers a frame the hub cannot act on: too large, bad, of
// an unknown type.
func (h *Hub) refuseFrame(c *conn, in *inbound) bool {
	switch in.kind {
	case inTooLarge:
		c.log.Warn("frame too large", "run_id", c.key.run, "machine", c.key.machine)
		return c.refuse(wire.CodeTooLarge, in.err.Error())
	case inBad:
		if !c.bound.Load() {
			return c.refuse(wire.CodeBadFrame, in.err.Error())
		}
		return c.replyError(wire.CodeBadFrame, in.err.Error())
	}
	return c.replyError(wire.CodeUnknownType, "unknown frame type "+fmt.Sprintf("%q", in.frame.Type))
}

// bindConn handles the first frames of a connection: a v2 connect, or a v1
// frame naming a live run and machine of a protocol = 1 job. The hub
// decides from its own state (see Hub.bind) and one conditional write
// lets the store veto; the store is read only for a machine the hub does
// not know or whose state the write found behind the store's. Everything
// shares the bind's deadline (Config.BindTimeout).
func (h *Hub) bindConn(c *conn, in *inbound) bool {
	f := in.frame
	if in.binary {
		return c.refuse(wire.CodeUnauthorized, "connect first")
	}
	log := c.log.naming(f.JobInstance, f.Machine)
	v2 := v2Connect(f)
	bootstrap := false
	if v2 {
		if f.Protocol != wire.ProtocolV2 {
			return c.refuse(wire.CodeUnauthorized, fmt.Sprintf("unsupported protocol %d", f.Protocol))
		}
		var err error
		if f.Session != "" {
			err = h.cfg.Tokens.VerifySession(f.Session, f.JobInstance, f.Machine)
		} else {
			bootstrap = true
			err = h.cfg.Tokens.VerifyBootstrap(f.Token, f.JobInstance, f.Machine)
		}
		if err != nil {
			log.Warn("connect refused", "error", err, "resume", f.Resume)
			return c.refuse(wire.CodeUnauthorized, "bad credential")
		}
	} else if !h.cfg.LegacyWrappers {
		log.Warn("unauthenticated frame refused", "type", f.Type)
		return c.refuse(wire.CodeUnauthorized, "connect with protocol 2 first")
	}
	if f.JobInstance == "" || f.Machine == "" {
		return c.refuse(wire.CodeUnauthorized, "frame names no run and machine")
	}
	ctx, cancel := context.WithDeadline(h.ctx, c.bindBy)
	defer cancel()
	k := key{f.JobInstance, f.Machine}
	var stored *storedMachine
	// read asks the store; false (with the connection's answer in ok)
	// when the connection cannot be bound.
	read := func() (done, ok bool) {
		var err error
		stored, err = h.lookup(ctx, k)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if v2 {
				return true, c.refuse(wire.CodeJobNotFound, "unknown run or machine")
			}
			return true, h.unknownV1(c, f, nil)
		case err != nil:
			log.Error("read machine for connect", "error", err)
			return true, false
		}
		return false, false
	}
	var resp bindResp
	for {
		var ok bool
		resp, ok = ask(ctx, h, func(reply chan bindResp) any {
			return bindReq{c: c, key: k, v2: v2, bootstrap: bootstrap, stored: stored, reply: reply}
		})
		if !ok {
			return false
		}
		if resp.unknown {
			if done, ok := read(); done {
				return ok
			}
			continue
		}
		if resp.final {
			return h.unknownV1(c, f, stored)
		}
		if !resp.ok {
			log.Warn("connection refused", "why", resp.why, "v2", v2)
			return c.refuse(resp.code, resp.why)
		}
		err := h.markBound(ctx, k, resp, v2, f.Version)
		if err == nil {
			break
		}
		h.post(bindFailedMsg{c: c, key: k, bootstrap: bootstrap, marked: resp.markRunning})
		switch {
		case errors.Is(err, store.ErrFinal) && stored == nil:
			// The hub's state is behind the store's: decide again
			// with what the store holds.
			if done, ok := read(); done {
				return ok
			}
			continue
		case errors.Is(err, store.ErrFinal):
			return c.refuse(wire.CodeUnauthorized, "machine already final")
		}
		log.Error("store running status", "error", err)
		return false
	}
	now := h.now()
	if resp.markRunning {
		h.cfg.Publish(events.Event{Kind: events.MachineUpdated, Job: resp.exp.Job, RunID: k.run,
			Machine: k.machine, Status: store.StatusRunning, At: now})
	}
	c.key, c.v2, c.job, c.next = k, v2, resp.exp.Job, resp.next
	if resp.markRunning || resp.verify {
		c.lastHBWrite = now // markBound wrote it
	}
	c.bound.Store(true)
	c.bindTimer.Stop()
	c.log.bound(k.run, k.machine)
	c.lastSeen.Store(now.UnixNano())
	next := c.next.Load()
	c.log.Debug("wrapper bound", "v2", v2, "resume", !bootstrap && v2, "next_seq", next)
	if v2 {
		spec := resp.exp.Spec
		ack := wire.Frame{Type: wire.TypeAck, AckType: wire.TypeConnect, Protocol: wire.ProtocolV2,
			Session: h.cfg.Tokens.NewSession(k.run, k.machine), NextSeq: wire.Int64(next), Spec: &spec}
		if !c.reply(ack) {
			return false
		}
	} else if !h.dispatch(c, in) {
		return false
	}
	return h.post(readyMsg{c})
}

// markBound makes the bind's one store write: the running status of a
// machine that was pending, or, when the hub must verify (bindResp), the
// heartbeat of one it holds running. Either is written only if the
// machine is not final, which is how the store vetoes the hub's decision.
func (h *Hub) markBound(ctx context.Context, k key, resp bindResp, v2 bool, version string) error {
	now := h.now()
	var u store.MachineUpdate
	switch {
	case resp.markRunning:
		running, proto := store.StatusRunning, wire.ProtocolV1
		if v2 {
			proto = wire.ProtocolV2
		}
		u = store.MachineUpdate{Status: &running, Protocol: &proto, ConnectedAt: &now, LastHeartbeat: &now}
		if version != "" {
			u.WrapperVersion = &version
		}
	case resp.verify:
		u = store.MachineUpdate{LastHeartbeat: &now}
	default:
		return nil
	}
	u.OnlyIfNotFinal = true
	return h.cfg.Store.UpdateMachine(ctx, k.run, k.machine, u)
}

// unknownV1 answers a v1 frame naming no live machine: a repeated
// complete of a final machine is acked, a sync_request says the job is
// gone, the rest get JOB_NOT_FOUND. The connection stays unbound. stored
// is what the store said of the machine, nil if it does not have it.
func (h *Hub) unknownV1(c *conn, f wire.Frame, stored *storedMachine) bool {
	switch f.Type {
	case wire.TypeComplete:
		if stored != nil && store.Final(stored.machine.Status) {
			return c.reply(wire.Ack(wire.TypeComplete))
		}
	case wire.TypeSyncRequest:
		return c.reply(wire.Frame{Type: wire.TypeSyncResponse, LastSeq: wire.Int64(-1)})
	}
	return c.reply(wire.ErrorFrame(wire.CodeJobNotFound, "unknown run or machine"))
}

// dispatch handles a frame of a bound connection: a heartbeat itself,
// output and the rest (control) in functions of their own.
func (h *Hub) dispatch(c *conn, in *inbound) bool {
	if in.kind == inOutput {
		return h.output(c, in)
	}
	if in.frame.Type != wire.TypeHeartbeat {
		return h.control(c, &in.frame)
	}
	// The heartbeat itself is in lastSeen, which receive set; the store
	// gets it only every hbEvery (see heartbeatWriteEvery), from the
	// heartbeat writer.
	if now := h.now(); now.Sub(c.lastHBWrite) >= h.hbEvery && h.noteHeartbeat(c.key, now) {
		c.lastHBWrite = now
	}
	return true
}

// control handles a bound connection's frames other than heartbeats and
// output.
func (h *Hub) control(c *conn, f *wire.Frame) bool {
	now := h.now()
	switch f.Type {
	case wire.TypeConnect:
		if c.v2 {
			return c.reply(wire.ErrorFrame(wire.CodeBadFrame, "already connected"))
		}
		return c.reply(wire.Ack(wire.TypeConnect))
	case wire.TypeStart:
		// Copies, pointed to by the update: pointing into f or at now
		// would have them allocated for every frame.
		at, pid, version := now, f.PID, f.Version
		u := store.MachineUpdate{StartedAt: &at, OnlyIfNotFinal: true}
		if pid != 0 {
			u.PID = &pid
		}
		if version != "" {
			u.WrapperVersion = &version
		}
		err := h.cfg.Store.UpdateMachine(h.ctx, c.key.run, c.key.machine, u)
		if err != nil && !errors.Is(err, store.ErrFinal) {
			c.log.Error("store start", "error", err)
			return false
		}
		h.post(startedMsg{key: c.key, at: now})
		if err == nil {
			h.cfg.Publish(events.Event{Kind: events.MachineUpdated, Job: c.job, RunID: c.key.run,
				Machine: c.key.machine, Status: store.StatusRunning, At: now})
		}
		return c.reply(wire.Ack(wire.TypeStart))
	case wire.TypeSyncRequest:
		if !c.v2 && c.next.Load() == 0 {
			// -1 tells a v1 wrapper that its job is gone. The hub counts
			// the output it stored from what the store held when it
			// learned of the machine, so output stored through another
			// core since is not in its count: the store confirms.
			if sm, err := h.lookup(h.ctx, c.key); err == nil {
				advance(c.next, sm.machine.NextSeq)
			} else {
				c.log.Warn("read machine for a sync", "error", err)
			}
		}
		return c.reply(wire.Frame{Type: wire.TypeSyncResponse, LastSeq: wire.Int64(c.next.Load() - 1)})
	case wire.TypeComplete:
		return h.complete(c, *f)
	case wire.TypeError:
		return h.wrapperError(c, *f)
	case wire.TypeKilled:
		c.log.Info("wrapper carried out a command", "signal", f.Signal)
		h.post(killedMsg{key: c.key, signal: f.Signal})
		return true
	}
	return true
}

func (h *Hub) output(c *conn, in *inbound) bool {
	now := h.now()
	next, err := h.cfg.Store.AppendOutput(h.ctx, c.key.run, c.key.machine,
		store.Chunk{Seq: in.seq, Stream: in.stream, Data: in.data, At: now})
	keepUnanswered(in, err)
	return h.stored(c, in, now, next, err)
}

// keepUnanswered leaves a chunk's buffer to the collector when its store
// call failed without the store's answer: the client may still be
// sending its bytes (see store.Chunk.Data), so recycle must not hand the
// buffer out again.
func keepUnanswered(in *inbound, err error) {
	var a interface{ PluginAnswered() bool }
	if err != nil && !(errors.As(err, &a) && a.PluginAnswered()) {
		in.buf = nil
	}
}

// outputs stores a batch of output chunks, in one call when the store
// takes batches, and answers each as output does.
func (h *Hub) outputs(c *conn, batch []*inbound) bool {
	if len(batch) == 1 {
		return h.output(c, batch[0])
	}
	now := h.now()
	appends := make([]store.Append, len(batch))
	for i, in := range batch {
		appends[i] = store.Append{RunID: c.key.run, Machine: c.key.machine,
			Chunk: store.Chunk{Seq: in.seq, Stream: in.stream, Data: in.data, At: now}}
	}
	res := store.AppendBatch(h.ctx, h.cfg.Store, appends)
	for i, in := range batch {
		keepUnanswered(in, res[i].Err)
	}
	for i, in := range batch {
		if !h.stored(c, in, now, res[i].Next, res[i].Err) {
			return false
		}
	}
	return true
}

// stored answers one chunk from what the store said: ack, nack, or an
// error that ends the connection.
func (h *Hub) stored(c *conn, in *inbound, now time.Time, next int64, err error) bool {
	switch {
	case errors.Is(err, store.ErrOutOfOrder):
		advance(c.next, next)
		c.log.Debug("output out of order", "seq", in.seq, "expected_seq", next)
		return c.reply(wire.NackOutOfOrderFrame(next, in.seq))
	case errors.Is(err, store.ErrNotFound):
		return c.reply(wire.ErrorFrame(wire.CodeJobNotFound, "unknown run or machine"))
	case err != nil:
		// Not acked: the wrapper re-sends after it resumes.
		c.log.Error("store output", "seq", in.seq, "error", err)
		return false
	}
	// Moved on before the ack, so that a resume the wrapper makes once
	// it has the ack finds it in the hub's count (mstate.next).
	if advance(c.next, next) {
		h.cfg.Publish(events.Event{Kind: events.Output, Job: c.job, RunID: c.key.run,
			Machine: c.key.machine, At: now})
	}
	return c.reply(wire.AckOutput(in.seq))
}

func (h *Hub) complete(c *conn, f wire.Frame) bool {
	var q queryResp
	if f.Reason == "" {
		r, ok := ask(h.ctx, h, func(reply chan queryResp) any { return queryMsg{key: c.key, reply: reply} })
		if !ok {
			return false
		}
		q = r
	}
	status, reason := outcome(f, q.killSent, q.timedOut)
	now := h.now()
	u := store.MachineUpdate{Status: &status, ExitCode: f.Retcode, Reason: &reason,
		FinishedAt: &now, OnlyIfNotFinal: true}
	if f.SignalName != "" {
		u.SignalName = &f.SignalName
	}
	err := h.cfg.Store.UpdateMachine(h.ctx, c.key.run, c.key.machine, u)
	switch {
	case err == nil:
		c.log.Debug("machine completed", "status", status, "exit_code", *f.Retcode, "reason", reason)
		if !c.reply(wire.Ack(wire.TypeComplete)) {
			h.post(finalMsg{key: c.key, status: status})
			return false
		}
		return h.post(finalMsg{key: c.key, status: status})
	case errors.Is(err, store.ErrFinal):
		return h.late(c, *f.Retcode, reason) && c.reply(wire.Ack(wire.TypeComplete))
	case errors.Is(err, store.ErrNotFound):
		return c.reply(wire.ErrorFrame(wire.CodeJobNotFound, "unknown run or machine"))
	default:
		c.log.Error("store complete", "error", err)
		return false
	}
}

// late records a result that came after the machine was marked lost,
// beside the 253; for any other final status it changes nothing.
func (h *Hub) late(c *conn, code int, reason string) bool {
	sm, err := h.lookup(h.ctx, c.key)
	if err != nil {
		c.log.Error("read machine for a late result", "error", err)
		return false
	}
	m := sm.machine
	if m.Status != store.StatusLost || m.LateExitCode != nil {
		return true
	}
	if err := h.cfg.Store.UpdateMachine(h.ctx, c.key.run, c.key.machine,
		store.MachineUpdate{LateExitCode: &code, LateReason: &reason}); err != nil {
		c.log.Error("store late result", "error", err)
		return false
	}
	c.log.Info("late result recorded beside lost", "exit_code", code, "reason", reason)
	h.post(finalMsg{key: c.key, status: store.StatusLost, late: true})
	return true
}

func (h *Hub) wrapperError(c *conn, f wire.Frame) bool {
	status, code, reason, now := store.StatusError, wire.ExitError, "wrapper error", h.now()
	text := f.Error
	err := h.cfg.Store.UpdateMachine(h.ctx, c.key.run, c.key.machine, store.MachineUpdate{
		Status: &status, ExitCode: &code, Reason: &reason, Error: &text, FinishedAt: &now, OnlyIfNotFinal: true})
	switch {
	case err == nil:
		c.log.Warn("wrapper reported an error", "error_text", text)
		return h.post(finalMsg{key: c.key, status: status})
	case errors.Is(err, store.ErrFinal):
		return h.late(c, code, "error: "+text)
	case errors.Is(err, store.ErrNotFound):
		return c.reply(wire.ErrorFrame(wire.CodeJobNotFound, "unknown run or machine"))
	default:
		c.log.Error("store wrapper error", "error", err)
		return false
	}
}
