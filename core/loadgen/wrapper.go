package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// Version is what fake wrappers report as their version.
const Version = "saltpeter-loadgen"

// Defaults where the spec leaves a field empty, as the real wrapper has
// them (wire-protocol.md).
const (
	defaultHeartbeat = 5 * time.Second
	defaultGrace     = 5 * time.Second
	defaultSignal    = "SIGTERM"
	// signalDedup: a signal command repeated within this is the core's
	// re-send, not a new request.
	signalDedup = 3 * time.Second
)

// Frames whose bytes never vary, compared against instead of decoded.
var (
	ackStartBytes    = mustEncode(wire.Ack(wire.TypeStart))
	ackCompleteBytes = mustEncode(wire.Ack(wire.TypeComplete))
	// ackOutputPrefix and ackOutputSuffix frame the seq in the core's
	// output ack, the frame a chatty job gets most of.
	ackOutputPrefix, ackOutputSuffix = splitAck()
)

func mustEncode(f wire.Frame) []byte {
	b, err := wire.Encode(f)
	if err != nil {
		panic(err)
	}
	return b
}

func splitAck() ([]byte, []byte) {
	b := mustEncode(wire.AckOutput(918273645))
	i := bytes.Index(b, []byte("918273645"))
	return b[:i], b[i+len("918273645"):]
}

// parseOutputAck reads the seq of an output ack in the core's encoding;
// ok is false for any other frame (which then goes through wire.Decode).
func parseOutputAck(b []byte) (int64, bool) {
	if !bytes.HasPrefix(b, ackOutputPrefix) || !bytes.HasSuffix(b, ackOutputSuffix) {
		return 0, false
	}
	digits := b[len(ackOutputPrefix) : len(b)-len(ackOutputSuffix)]
	if len(digits) == 0 || len(digits) > 18 {
		return 0, false
	}
	var n int64
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	return n, true
}

// readBufs are the buffers frames from the core are read into, shared by
// every connection: an idle connection holds none.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// refusedError is the core's definitive no: retrying cannot help.
type refusedError struct{ code, text string }

func (e *refusedError) Error() string { return fmt.Sprintf("core refused: %s: %s", e.code, e.text) }

func fatalCode(code string) bool {
	switch code {
	case wire.CodeUnauthorized, wire.CodeJobNotFound, wire.CodeWrongRun:
		return true
	}
	return false
}

// policy is a kill policy: the signal's canonical name and the grace.
type policy struct {
	signal string
	grace  time.Duration
}

// override returns p with the kill command's (or spec's) signal and grace
// where they are set and valid.
func (p policy) override(signal, grace string) policy {
	if c, ok := wire.CanonicalSignal(signal); ok {
		p.signal = c
	}
	if d, err := wire.ParseDuration(grace); err == nil {
		p.grace = d
	}
	return p
}

// fakeWrapper plays one v2 wrapper: one goroutine (run) dials, reads the
// core's frames and reacts to them; timers (heartbeat, the job's end, the
// grace of a kill) fire on the runtime's timer heap and take mu to write.
// Every write happens under mu, which gorilla's one-writer rule needs.
type fakeWrapper struct {
	srv                        *Server
	rec                        *Record
	job, runID, machine, token string
	urls                       []string
	tls                        *tls.Config
	pid                        int
	hbPrefix                   []byte // the heartbeat frame up to its timestamp

	mu      sync.Mutex
	ws      *websocket.Conn // live connection; nil between connections
	session string
	hdr     [9]byte // binary frame header scratch

	// The job, once the first connect ack gave its spec.
	started    bool
	cmd        Command
	heartbeat  time.Duration
	kill       policy
	startAcked bool
	nOut       int64    // output chunks
	notes      [][]byte // system stream chunks, after the output's seqs
	sent       int64    // next seq to send on this connection
	acked      int64    // every seq below is acked

	terminating bool
	termReason  string // wire.ReasonKilled, ReasonTimeout, ReasonNoOutputTimeout
	termPolicy  policy
	ended       bool
	complete    wire.Frame
	errText     string // sent as an error frame before complete
	sentFinal   bool   // complete sent on this connection
	done        bool   // complete acked
	lastSignal  string
	lastSigAt   time.Time
	lastSigN    int

	hbTimer  *time.Timer
	beats    int           // heartbeats sent
	jobTimer []*time.Timer // the job's end, its timeouts, a kill's grace
}

func newFakeWrapper(s *Server, rec *Record, job, run, machine, token string, urls []string, tlsCfg *tls.Config, pid int) *fakeWrapper {
	w := &fakeWrapper{srv: s, rec: rec, job: job, runID: run, machine: machine, token: token,
		urls: urls, tls: tlsCfg, pid: pid}
	var b bytes.Buffer
	b.WriteString(`{"type":"heartbeat","job_name":`)
	writeJSONString(&b, job)
	b.WriteString(`,"job_instance":`)
	writeJSONString(&b, run)
	b.WriteString(`,"machine":`)
	writeJSONString(&b, machine)
	b.WriteString(`,"timestamp":"`)
	w.hbPrefix = b.Bytes()
	return w
}

func writeJSONString(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s) // a string always encodes
	b.Write(q)
}

// run connects, and reconnects with resume, until the core acked the
// complete frame, refused the wrapper, could not be reached for GiveUp,
// or ctx ended.
func (w *fakeWrapper) run(ctx context.Context) {
	err := w.serve(ctx)
	w.mu.Lock()
	w.stopTimers()
	if w.hbTimer != nil {
		w.hbTimer.Stop()
	}
	done := w.done
	w.mu.Unlock()
	w.srv.stats.update(func(c *Stats) {
		c.Active--
		switch {
		case done:
			c.Completed++
		case ctx.Err() == nil:
			c.Failed++
			w.rec.Error = err.Error()
		}
	})
	if err != nil && ctx.Err() == nil {
		w.srv.log.Warn("fake wrapper gave up", "run_id", w.runID, "machine", w.machine, "error", err)
	}
}

func (w *fakeWrapper) serve(ctx context.Context) error {
	lostAt := time.Now()
	for attempt := 0; ; attempt++ {
		ws, ack, err := w.connect(ctx)
		if err == nil {
			attempt = 0
			stop := context.AfterFunc(ctx, func() { ws.Close() })
			w.attach(ws, ack)
			err = w.read(ws)
			stop()
			w.detach(ws)
			w.mu.Lock()
			done := w.done
			w.mu.Unlock()
			if done {
				return nil
			}
			lostAt = time.Now()
		}
		var refused *refusedError
		switch {
		case ctx.Err() != nil:
			return errStopped
		case errors.As(err, &refused):
			return err
		case time.Since(lostAt) > w.srv.cfg.GiveUp:
			return fmt.Errorf("no core reachable for %s: %w", w.srv.cfg.GiveUp, err)
		}
		w.srv.log.Debug("fake wrapper reconnecting", "run_id", w.runID, "machine", w.machine, "error", err)
		t := time.NewTimer(backoff(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return errStopped
		case <-t.C:
		}
	}
}

// backoff is the real wrapper's: randomised, 250ms doubling to 10s, so
// that wrappers cut off together do not come back together.
func backoff(attempt int) time.Duration {
	const lo, hi = 250 * time.Millisecond, 10 * time.Second
	d := hi
	if attempt < 6 {
		d = min(hi, lo<<attempt)
	}
	return d/2 + rand.N(d/2+1)
}

// connect dials the advertised cores in order and exchanges connect for
// its ack: with the bootstrap token the first time, the session after.
func (w *fakeWrapper) connect(ctx context.Context) (*websocket.Conn, wire.Frame, error) {
	w.mu.Lock()
	f := wire.Frame{Type: wire.TypeConnect, Protocol: wire.ProtocolV2, Version: Version}
	if w.session != "" {
		f.Resume, f.Session = true, w.session
	} else {
		f.Token = w.token
	}
	w.mu.Unlock()
	connect, err := wire.Encode(w.stamp(f))
	if err != nil {
		return nil, wire.Frame{}, err
	}
	var errs []error
	for _, u := range w.urls {
		hctx, cancel := context.WithTimeout(ctx, w.srv.cfg.Handshake)
		ws, err := w.srv.dial(hctx, u, w.tls)
		if err == nil {
			var ack wire.Frame
			ack, err = exchangeConnect(hctx, ws, connect)
			if err == nil {
				cancel()
				return ws, ack, nil
			}
			ws.Close()
			var refused *refusedError
			if errors.As(err, &refused) {
				cancel()
				return nil, wire.Frame{}, err
			}
		}
		cancel()
		errs = append(errs, err)
	}
	return nil, wire.Frame{}, errors.Join(errs...)
}

// exchangeConnect sends connect and waits for its ack, or a refusal.
func exchangeConnect(ctx context.Context, ws *websocket.Conn, connect []byte) (wire.Frame, error) {
	stop := context.AfterFunc(ctx, func() { ws.Close() })
	defer stop()
	if d, ok := ctx.Deadline(); ok {
		ws.SetWriteDeadline(d)
		ws.SetReadDeadline(d)
	}
	if err := ws.WriteMessage(websocket.TextMessage, connect); err != nil {
		return wire.Frame{}, fmt.Errorf("send connect: %w", err)
	}
	for {
		mt, data, err := ws.ReadMessage()
		if err != nil {
			return wire.Frame{}, fmt.Errorf("await connect ack: %w", err)
		}
		if mt != websocket.TextMessage {
			continue
		}
		f, err := wire.Decode(data)
		if err != nil {
			return wire.Frame{}, fmt.Errorf("await connect ack: %w", err)
		}
		switch {
		case f.Type == wire.TypeAck && f.AckType == wire.TypeConnect:
			return f, nil
		case f.Type == wire.TypeError:
			return wire.Frame{}, &refusedError{code: f.Code, text: f.Error}
		}
	}
}

// attach adopts a connection: the session and next_seq of its ack, the
// job's start on the first one, then whatever is owed to the core.
func (w *fakeWrapper) attach(ws *websocket.Conn, ack wire.Frame) {
	now := time.Now()
	w.srv.stats.update(func(c *Stats) {
		c.Connected++
		c.ConnectAcks++
		w.rec.Connects++
		stampOnce(&w.rec.ConnectedAt, now)
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	if ack.Session != "" {
		w.session = ack.Session
	}
	if !w.started {
		// Before the connection is adopted, so that a job that ends at
		// once sends nothing ahead of its start frame.
		w.start(ack.Spec)
	}
	w.ws = ws
	w.sentFinal = false
	// next_seq is the core's durable view; the output is generated, so
	// anything from there can be sent again.
	if ack.NextSeq != nil {
		w.acked = min(*ack.NextSeq, w.total())
	}
	w.sent = w.acked
	if w.errText == "" && !w.startAcked {
		// A job that could not start has no start frame, as with the
		// real wrapper.
		if !w.writeJSON(wire.Frame{Type: wire.TypeStart, PID: w.pid, Version: Version}) {
			return
		}
		w.srv.stats.update(func(*Stats) { stampOnce(&w.rec.StartSentAt, time.Now()) })
	}
	w.armHeartbeat()
	w.pump()
}

// detach forgets a connection that ended.
func (w *fakeWrapper) detach(ws *websocket.Conn) {
	ws.Close()
	w.mu.Lock()
	if w.ws == ws {
		w.ws = nil
	}
	w.mu.Unlock()
	w.srv.stats.update(func(c *Stats) { c.Connected-- })
}

// start begins the job the spec describes. A spec or command the load
// generator cannot play ends the job at once with an error frame and
// 255, as the real wrapper does with a job it cannot start.
func (w *fakeWrapper) start(spec *wire.Spec) {
	w.started = true
	w.heartbeat = defaultHeartbeat
	w.kill = policy{signal: defaultSignal, grace: defaultGrace}
	if spec == nil {
		w.fail("connect ack carries no spec")
		return
	}
	if spec.Heartbeat != "" {
		if d, err := wire.ParseDuration(spec.Heartbeat); err == nil && d > 0 {
			w.heartbeat = d
		}
	}
	w.kill = w.kill.override(spec.Kill.Signal, spec.Kill.Grace)
	cmd, err := ParseCommand(spec.Command)
	if err != nil {
		w.fail("start job: " + err.Error())
		return
	}
	w.cmd = cmd
	w.nOut = (cmd.Output + int64(cmd.Chunk) - 1) / int64(cmd.Chunk)
	if cmd.Duration == 0 {
		w.end(cmd.Exit, wire.ReasonExit)
		return
	}
	if cmd.Duration != Forever {
		w.after(cmd.Duration, w.exited)
	}
	if d, err := wire.ParseDuration(spec.Timeout); err == nil && d > 0 {
		note := fmt.Sprintf("[Job exceeded timeout of %s]", spec.Timeout)
		w.after(d, func() { w.timedOut(wire.ReasonTimeout, note) })
	}
	// The output is all written at start, so the job is quiet from then
	// on.
	if d, err := wire.ParseDuration(spec.NoOutputTimeout); err == nil && d > 0 {
		note := fmt.Sprintf("[Job exceeded no-output timeout of %s]", spec.NoOutputTimeout)
		w.after(d, func() { w.timedOut(wire.ReasonNoOutputTimeout, note) })
	}
}

// after runs f under mu after d, unless the job ended first.
func (w *fakeWrapper) after(d time.Duration, f func()) {
	w.jobTimer = append(w.jobTimer, time.AfterFunc(d, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if !w.ended {
			f()
		}
	}))
}

func (w *fakeWrapper) stopTimers() {
	for _, t := range w.jobTimer {
		t.Stop()
	}
	w.jobTimer = nil
}

func (w *fakeWrapper) fail(text string) {
	w.errText = text
	w.complete = wire.Frame{Type: wire.TypeComplete, Retcode: wire.Int(wire.ExitError)}
	w.finish()
}

// exited: the job's main process ended by itself. During a termination
// that is the termination's end.
func (w *fakeWrapper) exited() {
	if w.terminating {
		w.terminated(false)
		return
	}
	w.end(w.cmd.Exit, wire.ReasonExit)
}

// end decides the job's result and sends what is owed.
func (w *fakeWrapper) end(code int, reason string) {
	w.complete = wire.Frame{Type: wire.TypeComplete, Retcode: wire.Int(code), Reason: reason}
	w.finish()
}

func (w *fakeWrapper) finish() {
	w.ended = true
	w.stopTimers()
	w.complete.Seq = wire.Int64(w.total() - 1)
	w.pump()
}

// timedOut applies the kill policy for a timeout.
func (w *fakeWrapper) timedOut(reason, note string) {
	if !w.terminating {
		w.begin(reason, w.kill, note)
	}
}

// begin applies kill policy p: a job that honours the signal dies of it
// now; one that ignores it dies at the SIGKILL step, after the grace.
func (w *fakeWrapper) begin(reason string, p policy, note string) {
	w.terminating, w.termReason, w.termPolicy = true, reason, p
	w.note(note)
	if w.cmd.Term == TermHonour {
		w.terminated(false)
		return
	}
	w.after(p.grace, func() { w.terminated(true) })
}

// terminated ends a termination: SIGKILL was needed when the job outlived
// the grace.
func (w *fakeWrapper) terminated(sigkill bool) {
	if sigkill {
		w.note(fmt.Sprintf("[Processes still alive after the grace period of %s were killed with SIGKILL: %d]",
			w.termPolicy.grace, w.pid))
	}
	code := wire.ExitTimeout
	if w.termReason == wire.ReasonKilled {
		code = wire.ExitKilled
	}
	w.end(code, w.termReason)
}

// note appends one of the wrapper's own lines to the system stream.
func (w *fakeWrapper) note(text string) {
	w.notes = append(w.notes, []byte(text+"\n"))
}

func (w *fakeWrapper) total() int64 { return w.nOut + int64(len(w.notes)) }

// onKill carries out a kill command.
func (w *fakeWrapper) onKill(f wire.Frame) {
	w.srv.stats.update(func(*Stats) { stampOnce(&w.rec.KillAt, time.Now()) })
	switch {
	case w.terminating:
		// The core's re-send, or a kill during a timeout's termination:
		// already being done, and the first reason stands, as with the
		// real wrapper.
		w.sendKilled(w.termPolicy.signal, 1)
	case w.ended:
		// Ended by itself first: its result stands.
		w.sendKilled(w.kill.signal, 0)
	default:
		// The job's own end stays armed: a job that ignores the signal
		// still exits by itself if its duration ends within the grace.
		p := w.kill.override(f.Signal, f.Grace)
		w.sendKilled(p.signal, 1)
		w.begin(wire.ReasonKilled, p, "[Job terminated by user request]")
	}
	w.pump()
}

// onSignal carries out a signal command once, however often it is sent.
func (w *fakeWrapper) onSignal(name string) {
	canon, ok := wire.CanonicalSignal(name)
	if !ok {
		canon = name
	}
	if canon == w.lastSignal && time.Since(w.lastSigAt) < signalDedup {
		w.sendKilled(canon, w.lastSigN)
		return
	}
	n := 0
	switch {
	case !ok:
		w.note(fmt.Sprintf("[Signal %q refused: unknown signal]", name))
	case canon == "SIGKILL":
		w.note("[Signal SIGKILL refused: only a kill command ends the job]")
	case w.ended:
	default:
		n = 1
		w.note(fmt.Sprintf("[Signal %s sent to 1 processes by user request]", canon))
	}
	w.lastSignal, w.lastSigAt, w.lastSigN = canon, time.Now(), n
	w.sendKilled(canon, n)
	if n == 1 && !w.terminating && w.cmd.Term == TermHonour && terminates(canon) {
		// Died of a signal the wrapper sent: reason exit, 128+signal.
		num, _ := wire.SignalNumber(canon)
		w.end(128+num, wire.ReasonExit)
	}
	w.pump()
}

// terminates reports whether a signal's default action ends a process.
func terminates(sig string) bool {
	switch sig {
	case "SIGCHLD", "SIGCONT", "SIGURG", "SIGWINCH", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU":
		return false
	}
	return true
}

func (w *fakeWrapper) sendKilled(signal string, n int) {
	w.writeJSON(wire.Frame{Type: wire.TypeKilled, Signal: signal, PIDCount: wire.Int(n)})
}

// pump sends what the window allows, and the complete frame once every
// chunk is acked.
func (w *fakeWrapper) pump() {
	if w.ws == nil {
		return
	}
	total := w.total()
	for w.sent < total && w.sent-w.acked < int64(w.srv.cfg.Window) {
		if !w.sendChunk(w.sent) {
			return
		}
		w.sent++
	}
	if !w.ended || w.sentFinal || w.acked < total {
		return
	}
	if w.errText != "" && !w.writeJSON(wire.Frame{Type: wire.TypeError, Error: w.errText}) {
		return
	}
	if !w.writeJSON(w.complete) {
		return
	}
	w.sentFinal = true
	now := time.Now()
	w.srv.stats.update(func(*Stats) {
		if w.rec.CompleteSentAt.IsZero() {
			w.rec.CompleteSentAt = now
			w.rec.ExitCode, w.rec.Reason = w.complete.Retcode, w.complete.Reason
		}
	})
}

// sendChunk sends output chunk seq as a binary frame, its bytes a slice
// of the shared pattern.
func (w *fakeWrapper) sendChunk(seq int64) bool {
	stream := wire.BinarySystem
	var data []byte
	if seq < w.nOut {
		stream = wire.BinaryStdout
		if w.cmd.Stream == wire.StreamStderr {
			stream = wire.BinaryStderr
		}
		off := seq * int64(w.cmd.Chunk)
		data = chunkAt(off, int(min(int64(w.cmd.Chunk), w.cmd.Output-off)))
	} else {
		data = w.notes[seq-w.nOut]
	}
	w.hdr[0] = stream
	for i := range 8 {
		w.hdr[1+i] = byte(uint64(seq) >> (56 - 8*i))
	}
	w.ws.SetWriteDeadline(time.Now().Add(w.srv.cfg.WriteTimeout))
	mw, err := w.ws.NextWriter(websocket.BinaryMessage)
	if err == nil {
		_, err = mw.Write(w.hdr[:])
	}
	if err == nil {
		_, err = mw.Write(data)
	}
	if err == nil {
		err = mw.Close()
	}
	if err != nil {
		w.broken(fmt.Errorf("send output seq %d: %w", seq, err))
		return false
	}
	return true
}

// writeJSON sends a control frame on the live connection; false when
// there is none or the write failed.
func (w *fakeWrapper) writeJSON(f wire.Frame) bool {
	if w.ws == nil {
		return false
	}
	b, err := wire.Encode(w.stamp(f))
	if err != nil {
		w.srv.log.Error("encode frame", "type", f.Type, "error", err)
		return false
	}
	return w.writeText(b, f.Type)
}

func (w *fakeWrapper) writeText(b []byte, what string) bool {
	w.ws.SetWriteDeadline(time.Now().Add(w.srv.cfg.WriteTimeout))
	if err := w.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		w.broken(fmt.Errorf("send %s: %w", what, err))
		return false
	}
	return true
}

// broken drops a connection whose write failed; the reader sees it
// closed and reconnects.
func (w *fakeWrapper) broken(err error) {
	w.srv.log.Debug("connection broken", "run_id", w.runID, "machine", w.machine, "error", err)
	w.ws.Close()
	w.ws = nil
}

// armHeartbeat schedules the next heartbeat of the live connection.
func (w *fakeWrapper) armHeartbeat() {
	if w.hbTimer == nil {
		w.hbTimer = time.AfterFunc(w.heartbeat, w.beat)
		return
	}
	w.hbTimer.Reset(w.heartbeat)
}

// beat sends the protocol's heartbeat and, with every pingEvery-th, a
// WebSocket ping, as the real wrapper does (the pong keeps its read
// deadline moving: the core answers nothing else to a wrapper that only
// heartbeats).
func (w *fakeWrapper) beat() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ws == nil || w.done {
		return
	}
	bp := readBufs.Get().(*[]byte)
	b := append((*bp)[:0], w.hbPrefix...)
	b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"', '}')
	ok := w.writeText(b, wire.TypeHeartbeat)
	*bp = b[:0]
	readBufs.Put(bp)
	if !ok {
		return
	}
	if w.beats++; w.beats%pingEvery == 1 {
		if err := w.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(w.srv.cfg.WriteTimeout)); err != nil {
			w.broken(fmt.Errorf("send ping: %w", err))
			return
		}
	}
	w.armHeartbeat()
}

// pingEvery is how many heartbeats go with one ping, as in the real
// wrapper (wrapper.pingEvery).
const pingEvery = 4

// idle is the silence after which a connection counts as dead, as in the
// real wrapper (wrapper.idleFor): a ping's interval, a heartbeat and a
// write's time.
func (w *fakeWrapper) idle() time.Duration {
	return (pingEvery+1)*w.heartbeat + w.srv.cfg.WriteTimeout
}

// read handles the core's frames until the connection fails or the
// complete frame is acked (then it closes it cleanly and returns nil).
func (w *fakeWrapper) read(ws *websocket.Conn) error {
	w.mu.Lock()
	idle := w.idle()
	w.mu.Unlock()
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(idle)) })
	for {
		ws.SetReadDeadline(time.Now().Add(idle))
		mt, r, err := ws.NextReader()
		if err != nil {
			return fmt.Errorf("read frame: %w", err)
		}
		bp := readBufs.Get().(*[]byte)
		b, err := readAll(r, (*bp)[:0])
		if err == nil && mt == websocket.TextMessage {
			err = w.handle(b)
		}
		if cap(b) <= 64<<10 { // keep the pool's buffers small
			*bp = b[:0]
			readBufs.Put(bp)
		}
		if errors.Is(err, errDone) {
			msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "run complete")
			_ = ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// errDone ends the read loop once the complete frame is acked.
var errDone = errors.New("complete acked")

// handle takes one text frame from the core.
func (w *fakeWrapper) handle(b []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if seq, ok := parseOutputAck(b); ok {
		w.ackOutput(seq)
		return nil
	}
	switch {
	case bytes.Equal(b, ackStartBytes):
		w.startAcked = true
		return nil
	case bytes.Equal(b, ackCompleteBytes):
		return w.completeAcked()
	}
	f, err := wire.Decode(b)
	if err != nil {
		w.srv.log.Debug("ignoring undecodable frame from core", "error", err)
		return nil
	}
	switch f.Type {
	case wire.TypeAck:
		switch f.AckType {
		case wire.TypeOutput:
			if f.Seq != nil {
				w.ackOutput(*f.Seq)
			}
		case wire.TypeStart:
			w.startAcked = true
		case wire.TypeComplete:
			return w.completeAcked()
		}
	case wire.TypeNack:
		if f.NackType == wire.NackOutOfOrder && f.ExpectedSeq != nil {
			// The output is generated, so even acked seqs can be sent
			// again.
			w.sent = max(0, min(*f.ExpectedSeq, w.total()))
			w.acked = min(w.acked, w.sent)
			w.pump()
		}
	case wire.TypeKill:
		w.onKill(f)
	case wire.TypeSignal:
		w.onSignal(f.Signal)
	case wire.TypeError:
		if fatalCode(f.Code) {
			return &refusedError{code: f.Code, text: f.Error}
		}
		w.srv.log.Debug("core reported an error", "run_id", w.runID, "machine", w.machine, "code", f.Code, "text", f.Error)
	}
	return nil
}

func (w *fakeWrapper) ackOutput(seq int64) {
	if seq+1 > w.acked {
		w.acked = min(seq+1, w.total())
		w.sent = max(w.sent, w.acked)
	}
	w.pump()
}

func (w *fakeWrapper) completeAcked() error {
	if !w.sentFinal {
		return nil // an ack of a complete this connection did not send
	}
	w.done = true
	now := time.Now()
	w.srv.stats.update(func(*Stats) { stampOnce(&w.rec.CompleteAckedAt, now) })
	return errDone
}

// stamp fills the fields every wrapper frame carries.
func (w *fakeWrapper) stamp(f wire.Frame) wire.Frame {
	f.JobName, f.JobInstance, f.Machine = w.job, w.runID, w.machine
	f.Timestamp = time.Now().UTC().Format(time.RFC3339Nano)
	return f
}
