package hub

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/go-hclog"
	"github.com/saltpeter/saltpeter/core/events"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

var upgrader = websocket.Upgrader{ReadBufferSize: 16 << 10, WriteBufferSize: 16 << 10}

// outFrame is one message for the write pump.
type outFrame struct {
	data  []byte // nil: none, only the close
	close bool   // close the connection once written
	// code and reason go in the close message; code 0 is a policy
	// violation (a refusal).
	code   int
	reason string
}

// conn is one wrapper connection. send, quit and lastSeen are shared; the
// rest belongs to the read pump.
type conn struct {
	ws         *websocket.Conn
	send       chan outFrame
	quit       chan struct{}
	quitOnce   sync.Once
	writerDone chan struct{}
	// writeTimeout bounds a write, and a reply's wait for buffer room.
	writeTimeout time.Duration
	closing      atomic.Bool  // a frame with close is queued
	draining     atomic.Bool  // the core is stopping: read nothing more
	lastSeen     atomic.Int64 // unix nanoseconds of the last frame
	log          hclog.Logger

	// Read pump only.
	bound       bool
	key         key
	v2          bool
	job         string
	next        int64 // first seq not stored, as far as this connection knows
	lastHBWrite time.Time
}

// abort drops the connection: the write pump stops and closes the socket,
// which ends the read pump.
func (c *conn) abort() { c.quitOnce.Do(func() { close(c.quit) }) }

// goAway starts a graceful close: the read pump stops reading (a read it
// is waiting in ends now), the frames it had read are handled, and the
// connection closes with "going away". Safe from any goroutine.
func (c *conn) goAway() {
	c.draining.Store(true)
	_ = c.ws.SetReadDeadline(time.Now())
}

// stop ends the connection once its handling decided so: a connection
// closing after a last frame (a refusal) is closed by the write pump once
// that frame is out; any other is aborted now. Either closes the socket,
// which ends the read pump.
func (c *conn) stop() {
	if !c.closing.Load() {
		c.abort()
	}
}

// enqueue queues a frame without blocking; a full buffer drops the
// connection (the wrapper will resume). It reports whether the frame was
// queued.
func (c *conn) enqueue(f wire.Frame, closeAfter bool) bool {
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
	select {
	case c.send <- outFrame{data: b, close: closeAfter}:
		if closeAfter {
			c.closing.Store(true)
		}
		return true
	default:
		c.log.Warn("dropping connection: send buffer full (slow reader)")
		c.abort()
		return false
	}
}

func (h *Hub) writePump(c *conn) {
	defer close(c.writerDone)
	defer c.ws.Close()
	for {
		select {
		case <-c.quit:
			return
		case m := <-c.send:
			_ = c.ws.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
			if m.data != nil {
				if err := c.ws.WriteMessage(websocket.TextMessage, m.data); err != nil {
					c.log.Debug("write failed", "error", err)
					c.abort()
					return
				}
			}
			if m.close {
				code := m.code
				if code == 0 {
					code = websocket.ClosePolicyViolation
				}
				_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, m.reason),
					time.Now().Add(h.cfg.WriteTimeout))
				c.abort()
				return
			}
		}
	}
}

// ServeHTTP is the /ws endpoint.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.draining.Load() {
		http.Error(w, "core shutting down", http.StatusServiceUnavailable)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		h.log.Debug("websocket upgrade failed", "remote_addr", r.RemoteAddr, "error", err)
		return // the upgrader answered
	}
	c := &conn{
		ws: ws, send: make(chan outFrame, h.cfg.SendBuffer), quit: make(chan struct{}),
		writerDone: make(chan struct{}), log: h.log.With("remote_addr", r.RemoteAddr),
		writeTimeout: h.cfg.WriteTimeout,
	}
	c.lastSeen.Store(h.now().UnixNano())
	if !h.post(registerMsg{c}) {
		ws.Close()
		return
	}
	go h.writePump(c)
	h.readPump(c)
}

func (h *Hub) readPump(c *conn) {
	defer func() {
		if c.draining.Load() && !c.closing.Load() {
			// Everything read is handled and acked by now (the deferred
			// handler wait below ran first): say why the socket closes.
			c.closeWith(websocket.CloseGoingAway, "core shutting down")
		}
		if c.closing.Load() {
			// Let the write pump deliver the last frame and close.
			select {
			case <-c.writerDone:
			case <-time.After(h.cfg.WriteTimeout):
			}
		}
		c.abort()
		h.post(unregMsg{c})
	}()
	// Reading and handling are two goroutines joined by a queue in frame
	// order: while a batch of output is being stored, the next frames are
	// read, and the output among them is stored as the next batch.
	frames := make(chan inbound, frameQueue)
	handled := make(chan struct{})
	go func() {
		defer close(handled)
		h.handleFrames(c, frames)
	}()
	defer func() {
		close(frames)
		<-handled
	}()
	// scratch takes each frame, read in pieces; the frame then gets an
	// allocation of its own exact size rather than a growing one.
	var scratch bytes.Buffer
	for {
		_ = c.ws.SetReadDeadline(time.Now().Add(h.cfg.HeartbeatTimeout))
		// Checked after the deadline is set: goAway sets the flag before
		// its own deadline, so one of the two stops this read.
		if c.draining.Load() {
			return
		}
		mt, r, err := c.ws.NextReader()
		if err != nil {
			c.log.Debug("connection ended", "error", err, "draining", c.draining.Load())
			return
		}
		scratch.Reset()
		if _, err := scratch.ReadFrom(io.LimitReader(r, wire.MaxFrameBytes+1)); err != nil {
			c.log.Debug("connection ended mid-frame", "error", err)
			return
		}
		data := bytes.Clone(scratch.Bytes())
		select {
		case frames <- classify(mt, data):
			if frameQueued != nil {
				frameQueued()
			}
		case <-handled:
			return
		}
	}
}

// frameQueued, set only by tests, is told of every frame queued for
// handling: the one event a test of batching must await.
var frameQueued func()

// frameQueue bounds the frames read ahead of their handling; a wrapper
// that sends faster than the store commits waits in its own spool.
const frameQueue = 256

// maxBatch bounds the output chunks stored in one batch.
const maxBatch = 256

// handleFrames handles a connection's frames in order until one ends the
// connection or the reader stops. Consecutive binary output frames
// already queued are stored as one batch.
func (h *Hub) handleFrames(c *conn, frames <-chan inbound) {
	defer func() {
		for range frames { // let the reader finish
		}
	}()
	var next *inbound
	for {
		var in inbound
		if next != nil {
			in, next = *next, nil
		} else {
			f, ok := <-frames
			if !ok {
				return
			}
			in = f
		}
		if !c.bound || !in.binary || in.kind != inOutput {
			if !h.receive(c, in) {
				c.stop()
				return
			}
			continue
		}
		batch := []inbound{in}
	more:
		for len(batch) < maxBatch {
			select {
			case f, ok := <-frames:
				if !ok {
					break more
				}
				if f.binary && f.kind == inOutput {
					batch = append(batch, f)
					continue
				}
				next = &f
				break more
			default:
				break more
			}
		}
		c.lastSeen.Store(h.now().UnixNano())
		if !h.outputs(c, batch) {
			c.stop()
			return
		}
	}
}

// refuse sends an error frame and closes the connection.
func (c *conn) refuse(code, text string) bool {
	c.enqueue(wire.ErrorFrame(code, text), true)
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
	select {
	case c.send <- outFrame{close: true, code: code, reason: reason}:
		c.closing.Store(true)
	default:
		c.abort()
	}
}

// reply sends a frame from the connection's own handler; false when the
// connection was dropped. Unlike enqueue it waits for room in the send
// buffer: the handler acks a whole batch of output at once, more frames
// than the buffer holds, and waiting holds back only this connection's
// reading (its wrapper spools meanwhile). A wrapper that reads nothing for
// the write timeout is dropped.
func (c *conn) reply(f wire.Frame) bool {
	b, err := wire.Encode(f)
	if err != nil {
		c.log.Error("encode frame", "type", f.Type, "error", err)
		return false
	}
	m := outFrame{data: b}
	select {
	case c.send <- m:
		return true
	case <-c.quit:
		return false
	default:
	}
	t := time.NewTimer(c.writeTimeout)
	defer t.Stop()
	select {
	case c.send <- m:
		return true
	case <-c.quit:
		return false
	case <-t.C:
		c.log.Warn("dropping connection: the wrapper read nothing for the write timeout", "write_timeout", c.writeTimeout)
		c.abort()
		return false
	}
}

// receive handles one message; false ends the connection.
func (h *Hub) receive(c *conn, in inbound) bool {
	switch in.kind {
	case inTooLarge:
		c.log.Warn("frame too large", "run_id", c.key.run, "machine", c.key.machine)
		return c.refuse(wire.CodeTooLarge, in.err.Error())
	case inBad:
		if !c.bound {
			return c.refuse(wire.CodeBadFrame, in.err.Error())
		}
		return c.reply(wire.ErrorFrame(wire.CodeBadFrame, in.err.Error()))
	case inUnknown:
		return c.reply(wire.ErrorFrame(wire.CodeUnknownType, "unknown frame type "+fmt.Sprintf("%q", in.frame.Type)))
	case inIgnored:
		return true
	}
	if !c.bound {
		return h.bindConn(c, in)
	}
	c.lastSeen.Store(h.now().UnixNano())
	if !in.binary {
		f := in.frame
		if (f.JobInstance != "" && f.JobInstance != c.key.run) || (f.Machine != "" && f.Machine != c.key.machine) {
			return c.reply(wire.ErrorFrame(wire.CodeWrongRun, "this connection serves another run or machine"))
		}
	}
	return h.dispatch(c, in)
}

// snapshot reads the run and the machine a connection names.
func (h *Hub) snapshot(runID, machine string) (store.Run, store.Machine, error) {
	r, err := h.cfg.Store.GetRun(h.ctx, runID)
	if err != nil {
		return store.Run{}, store.Machine{}, err
	}
	for _, m := range r.Machines {
		if m.Machine == machine {
			return r, m, nil
		}
	}
	return store.Run{}, store.Machine{}, fmt.Errorf("machine %s of run %s: %w", machine, runID, store.ErrNotFound)
}

// bindConn handles the first frames of a connection: a v2 connect, or a v1
// frame naming a live run and machine of a protocol = 1 job.
func (h *Hub) bindConn(c *conn, in inbound) bool {
	f := in.frame
	if in.binary {
		return c.refuse(wire.CodeUnauthorized, "connect first")
	}
	log := c.log.With("run_id", f.JobInstance, "machine", f.Machine)
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
	run, m, err := h.snapshot(f.JobInstance, f.Machine)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if v2 {
			return c.refuse(wire.CodeJobNotFound, "unknown run or machine")
		}
		return h.unknownV1(c, f)
	case err != nil:
		log.Error("read machine for connect", "error", err)
		return false
	}
	k := key{f.JobInstance, f.Machine}
	resp, ok := ask(h, func(reply chan bindResp) any {
		return bindReq{c: c, key: k, v2: v2, bootstrap: bootstrap, run: run, machine: m, reply: reply}
	})
	if !ok {
		return false
	}
	if resp.final {
		return h.unknownV1(c, f)
	}
	if !resp.ok {
		log.Warn("connection refused", "why", resp.why, "v2", v2)
		return c.refuse(resp.code, resp.why)
	}
	now := h.now()
	if resp.markRunning {
		running, proto := store.StatusRunning, wire.ProtocolV1
		if v2 {
			proto = wire.ProtocolV2
		}
		u := store.MachineUpdate{Status: &running, Protocol: &proto, ConnectedAt: &now, LastHeartbeat: &now,
			OnlyIfNotFinal: true}
		if f.Version != "" {
			u.WrapperVersion = &f.Version
		}
		if err := h.cfg.Store.UpdateMachine(h.ctx, k.run, k.machine, u); err != nil {
			h.post(bindFailedMsg{c: c, key: k, bootstrap: bootstrap})
			if errors.Is(err, store.ErrFinal) {
				return c.refuse(wire.CodeUnauthorized, "machine already final")
			}
			log.Error("store running status", "error", err)
			return false
		}
		h.cfg.Publish(events.Event{Kind: events.MachineUpdated, Job: resp.exp.Job, RunID: k.run,
			Machine: k.machine, Status: running, At: now})
	}
	c.bound, c.key, c.v2, c.job, c.next = true, k, v2, resp.exp.Job, m.NextSeq
	c.log = c.log.With("run_id", k.run, "machine", k.machine)
	c.lastSeen.Store(now.UnixNano())
	c.log.Info("wrapper bound", "v2", v2, "resume", !bootstrap && v2, "next_seq", m.NextSeq)
	if v2 {
		spec := resp.exp.Spec
		ack := wire.Frame{Type: wire.TypeAck, AckType: wire.TypeConnect, Protocol: wire.ProtocolV2,
			Session: h.cfg.Tokens.NewSession(k.run, k.machine), NextSeq: wire.Int64(m.NextSeq), Spec: &spec}
		if !c.reply(ack) {
			return false
		}
	} else if !h.dispatch(c, in) {
		return false
	}
	return h.post(readyMsg{c})
}

// unknownV1 answers a v1 frame naming no live machine: a repeated
// complete of a final machine is acked, a sync_request says the job is
// gone, the rest get JOB_NOT_FOUND. The connection stays unbound.
func (h *Hub) unknownV1(c *conn, f wire.Frame) bool {
	switch f.Type {
	case wire.TypeComplete:
		run, m, err := h.snapshot(f.JobInstance, f.Machine)
		if err == nil && store.Final(m.Status) && run.ID != "" {
			return c.reply(wire.Ack(wire.TypeComplete))
		}
	case wire.TypeSyncRequest:
		return c.reply(wire.Frame{Type: wire.TypeSyncResponse, LastSeq: wire.Int64(-1)})
	}
	return c.reply(wire.ErrorFrame(wire.CodeJobNotFound, "unknown run or machine"))
}

// dispatch handles a frame of a bound connection.
func (h *Hub) dispatch(c *conn, in inbound) bool {
	if in.kind == inOutput {
		return h.output(c, in)
	}
	f := in.frame
	now := h.now()
	switch f.Type {
	case wire.TypeConnect:
		if c.v2 {
			return c.reply(wire.ErrorFrame(wire.CodeBadFrame, "already connected"))
		}
		return c.reply(wire.Ack(wire.TypeConnect))
	case wire.TypeStart:
		u := store.MachineUpdate{StartedAt: &now, OnlyIfNotFinal: true}
		if f.PID != 0 {
			u.PID = &f.PID
		}
		if f.Version != "" {
			u.WrapperVersion = &f.Version
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
	case wire.TypeHeartbeat:
		if now.Sub(c.lastHBWrite) < heartbeatWriteEvery {
			return true
		}
		if err := h.cfg.Store.UpdateMachine(h.ctx, c.key.run, c.key.machine,
			store.MachineUpdate{LastHeartbeat: &now}); err != nil {
			c.log.Warn("store heartbeat", "error", err)
			return true
		}
		c.lastHBWrite = now
		return true
	case wire.TypeSyncRequest:
		return c.reply(wire.Frame{Type: wire.TypeSyncResponse, LastSeq: wire.Int64(c.next - 1)})
	case wire.TypeComplete:
		return h.complete(c, f)
	case wire.TypeError:
		return h.wrapperError(c, f)
	case wire.TypeKilled:
		c.log.Info("wrapper carried out a command", "signal", f.Signal)
		h.post(killedMsg{key: c.key, signal: f.Signal})
		return true
	}
	return true
}

func (h *Hub) output(c *conn, in inbound) bool {
	now := h.now()
	next, err := h.cfg.Store.AppendOutput(h.ctx, c.key.run, c.key.machine,
		store.Chunk{Seq: in.seq, Stream: in.stream, Data: in.data, At: now})
	return h.stored(c, in, now, next, err)
}

// outputs stores a batch of output chunks, in one call when the store
// takes batches, and answers each as output does.
func (h *Hub) outputs(c *conn, batch []inbound) bool {
	b, ok := h.cfg.Store.(store.Batcher)
	if !ok || len(batch) == 1 {
		for _, in := range batch {
			if !h.output(c, in) {
				return false
			}
		}
		return true
	}
	now := h.now()
	appends := make([]store.Append, len(batch))
	for i, in := range batch {
		appends[i] = store.Append{RunID: c.key.run, Machine: c.key.machine,
			Chunk: store.Chunk{Seq: in.seq, Stream: in.stream, Data: in.data, At: now}}
	}
	res := b.AppendOutputBatch(h.ctx, appends)
	for i, in := range batch {
		if !h.stored(c, in, now, res[i].Next, res[i].Err) {
			return false
		}
	}
	return true
}

// stored answers one chunk from what the store said: ack, nack, or an
// error that ends the connection.
func (h *Hub) stored(c *conn, in inbound, now time.Time, next int64, err error) bool {
	switch {
	case errors.Is(err, store.ErrOutOfOrder):
		c.next = max(c.next, next)
		c.log.Debug("output out of order", "seq", in.seq, "expected_seq", next)
		return c.reply(wire.NackOutOfOrderFrame(next, in.seq))
	case errors.Is(err, store.ErrNotFound):
		return c.reply(wire.ErrorFrame(wire.CodeJobNotFound, "unknown run or machine"))
	case err != nil:
		// Not acked: the wrapper re-sends after it resumes.
		c.log.Error("store output", "seq", in.seq, "error", err)
		return false
	}
	stored := next > c.next
	c.next = max(c.next, next)
	if stored {
		h.cfg.Publish(events.Event{Kind: events.Output, Job: c.job, RunID: c.key.run,
			Machine: c.key.machine, At: now})
	}
	return c.reply(wire.AckOutput(in.seq))
}

func (h *Hub) complete(c *conn, f wire.Frame) bool {
	var q queryResp
	if f.Reason == "" {
		r, ok := ask(h, func(reply chan queryResp) any { return queryMsg{key: c.key, reply: reply} })
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
		c.log.Info("machine completed", "status", status, "exit_code", *f.Retcode, "reason", reason)
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
	_, m, err := h.snapshot(c.key.run, c.key.machine)
	if err != nil {
		c.log.Error("read machine for a late result", "error", err)
		return false
	}
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
