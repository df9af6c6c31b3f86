package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/go-hclog"
	"github.com/saltpeter/saltpeter/core/auth"
	"github.com/saltpeter/saltpeter/core/events"
	"github.com/saltpeter/saltpeter/core/hub"
	"github.com/saltpeter/saltpeter/core/killq"
	"github.com/saltpeter/saltpeter/core/store/memory"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

const wait = 5 * time.Second // upper bound for anything awaited

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer collects the hub's log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type final struct{ run, machine, status string }

type opts struct {
	legacy       bool
	hb           time.Duration
	clock        *fakeClock
	sendBuffer   int
	writeTimeout time.Duration
	bindTimeout  time.Duration
	store        *memory.Store // shared with another harness: a restarted core
	// wrap, when set, is the store the hub gets, made from the memory
	// store (a batching store, a slow one).
	wrap func(*memory.Store) store.Store
	// slowReaders serves the hub on a Unix socket whose core side has a
	// tiny send buffer, so that a client that stops reading blocks the
	// core's writes after a few frames. Not loopback TCP: there a client
	// with a tiny receive buffer, full, that still sends was seen (in CI,
	// and in 2 of 160 runs under -race, four processes at once) stalled
	// for over 10 s, seeing a zero window from a core that waited
	// mid-frame for its data (ss: the client in persist, backoff 6); the
	// core's read deadline, not its write timeout, ended the connection.
	// A Unix socket's flow control has no window to lose.
	slowReaders bool
	// quiet discards the hub's log, for benchmarks whose figures must not
	// count a growing log buffer.
	quiet bool
	// onTakenOver is the hub's Config.OnTakenOver.
	onTakenOver func()
}

// smallSendBufListener sets a small SO_SNDBUF on each accepted connection.
type smallSendBufListener struct{ *net.UnixListener }

func (l smallSendBufListener) Accept() (net.Conn, error) {
	c, err := l.AcceptUnix()
	if err != nil {
		return nil, err
	}
	if err := c.SetWriteBuffer(4096); err != nil {
		c.Close()
		return nil, fmt.Errorf("set the send buffer: %w", err)
	}
	return c, nil
}

type harness struct {
	t      testing.TB
	hub    *hub.Hub
	store  *memory.Store
	tokens *auth.Tokens
	kills  *killq.Queue
	sub    *events.Subscription
	finals chan final
	url    string
	dialer *websocket.Dialer // dials url
	logs   *syncBuffer
	// stop ends the hub's Run (a graceful stop) and waits for it; the
	// test's cleanup calls it too.
	stop func()

	mu      sync.Mutex
	secrets []string // every credential seen, none may be logged
}

var testSecret = bytes.Repeat([]byte{42}, 32)

func newHarness(t testing.TB, o opts) *harness {
	t.Helper()
	if o.hb == 0 {
		o.hb = 10 * time.Second
	}
	st := o.store
	if st == nil {
		st = memory.New()
	}
	tk := auth.NewTokens(testSecret)
	q := killq.New()
	qdone := make(chan struct{})
	go q.Run(qdone)
	bus := events.New()
	sub, unsub := bus.Subscribe(10000)
	logs := &syncBuffer{}
	h := &harness{t: t, store: st, tokens: tk, kills: q, sub: sub, finals: make(chan final, 100), logs: logs}
	logOpts := &hclog.LoggerOptions{Output: logs, Level: hclog.Trace}
	if o.quiet {
		// A production core's level, so that a profile shows its cost.
		logOpts = &hclog.LoggerOptions{Output: io.Discard, Level: hclog.Info}
	}
	cfg := hub.Config{
		Logger:  hclog.New(logOpts),
		Store:   hubStore(st, o.wrap),
		Tokens:  tk,
		Kills:   q.C(),
		Publish: bus.Publish,
		OnFinal: func(run, machine, status string) {
			select {
			case h.finals <- final{run, machine, status}:
			default:
				t.Errorf("OnFinal buffer full")
			}
		},
		LegacyWrappers:   o.legacy,
		HeartbeatTimeout: o.hb,
		ResendInterval:   50 * time.Millisecond,
		SendBuffer:       o.sendBuffer,
		WriteTimeout:     o.writeTimeout,
		BindTimeout:      o.bindTimeout,
		OnTakenOver:      o.onTakenOver,
	}
	if o.clock != nil {
		cfg.Now = o.clock.Now
	}
	h.hub = hub.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- h.hub.Run(ctx) }()
	srv := httptest.NewUnstartedServer(h.hub)
	h.dialer = websocket.DefaultDialer
	if o.slowReaders {
		sock := filepath.Join(t.TempDir(), "hub.sock")
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			t.Fatalf("listen on a Unix socket: %v", err)
		}
		srv.Listener.Close()
		srv.Listener = smallSendBufListener{l}
		h.dialer = &websocket.Dialer{
			NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
			HandshakeTimeout: wait,
		}
	}
	srv.Start()
	h.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	if o.slowReaders {
		h.url = "ws://hub/ws" // its dialer ignores the host; srv.URL holds the socket's path
	}
	var stopOnce sync.Once
	h.stop = func() {
		stopOnce.Do(func() {
			cancel()
			if err := <-runDone; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		h.stop()
		srv.Close()
		close(qdone)
		unsub()
		log := logs.String()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, s := range h.secrets {
			if s != "" && strings.Contains(log, s) {
				t.Errorf("a credential appears in the log")
			}
		}
		if t.Failed() {
			t.Logf("hub log:\n%s", log)
		}
	})
	return h
}

func (h *harness) remember(s string) {
	h.mu.Lock()
	h.secrets = append(h.secrets, s)
	h.mu.Unlock()
}

type exp struct {
	run, machine string
	protocol     int
	timeout      time.Duration
	deadline     time.Time
}

var testSpec = wire.Spec{Command: "/usr/local/bin/backup.sh", Cwd: "/var/backups", User: "backup",
	Env: map[string]string{"PGHOST": "db1"}, Timeout: "", Kill: wire.KillPolicy{Signal: "SIGTERM", Grace: "5s"},
	Heartbeat: "5s"}

// expect creates the run (if new) and its pending machine in the store and
// registers the expectation, as the runner does before dispatch.
func (h *harness) expect(e exp) {
	h.t.Helper()
	ctx := context.Background()
	if e.protocol == 0 {
		e.protocol = 2
	}
	spec := testSpec
	if e.timeout > 0 {
		spec.Timeout = wire.FormatDuration(e.timeout)
	}
	specJSON, _ := json.Marshal(spec)
	err := h.store.CreateRun(ctx, store.Run{ID: e.run, Job: "backup", Trigger: store.TriggerManual,
		StartedAt: t0, Status: store.StatusRunning, Spec: specJSON})
	if err != nil && !errors.Is(err, store.ErrExists) {
		h.t.Fatal(err)
	}
	if err := h.store.AddMachines(ctx, e.run, []store.Machine{{Machine: e.machine, Protocol: e.protocol}}); err != nil {
		h.t.Fatal(err)
	}
	if err := h.hub.Expect(ctx, hub.Expectation{RunID: e.run, Job: "backup", Machine: e.machine,
		Protocol: e.protocol, Spec: spec, Timeout: e.timeout, ConnectDeadline: e.deadline}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) token(run, machine string) string {
	tok := h.tokens.Bootstrap(run, machine)
	h.remember(tok)
	return tok
}

func (h *harness) machine(run, machine string) store.Machine {
	h.t.Helper()
	r, err := h.store.GetRun(context.Background(), run)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, m := range r.Machines {
		if m.Machine == machine {
			return m
		}
	}
	h.t.Fatalf("no machine %s in run %s", machine, run)
	return store.Machine{}
}

func (h *harness) output(run, machine, stream string) string {
	h.t.Helper()
	out, err := h.store.ReadOutput(context.Background(), store.OutputQuery{RunID: run, Machine: machine, Stream: stream})
	b := out.Data
	if err != nil {
		h.t.Fatal(err)
	}
	return string(b)
}

func (h *harness) awaitFinal(run, machine string) final {
	h.t.Helper()
	select {
	case f := <-h.finals:
		if f.run != run || f.machine != machine {
			h.t.Fatalf("OnFinal(%s, %s, %s), want %s/%s", f.run, f.machine, f.status, run, machine)
		}
		return f
	case <-time.After(wait):
		h.t.Fatalf("no OnFinal for %s/%s", run, machine)
	}
	return final{}
}

// awaitEvent waits for an event matching pred.
func (h *harness) awaitEvent(pred func(events.Event) bool) events.Event {
	h.t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case e := <-h.sub.C:
			if pred(e) {
				return e
			}
		case <-timeout:
			h.t.Fatalf("event not seen")
			return events.Event{}
		}
	}
}

func ptrInt(p *int) string {
	if p == nil {
		return "nil"
	}
	b, _ := json.Marshal(*p)
	return string(b)
}

// client is a wrapper written from the spec, speaking over a real socket.
type client struct {
	t            testing.TB
	h            *harness
	ws           *websocket.Conn
	run, machine string
	kills        int // kill frames skipped by await
	signals      []string
}

func (h *harness) dial(run, machine string) *client {
	h.t.Helper()
	ws, _, err := h.dialer.Dial(h.url, nil)
	if err != nil {
		h.t.Fatalf("dial: %v", err)
	}
	h.t.Cleanup(func() { ws.Close() })
	return &client{t: h.t, h: h, ws: ws, run: run, machine: machine}
}

// frame fills the common fields.
func (c *client) frame(typ string) wire.Frame {
	return wire.Frame{Type: typ, JobName: "backup", JobInstance: c.run, Machine: c.machine,
		Timestamp: time.Now().UTC().Format(time.RFC3339)}
}

func (c *client) send(f wire.Frame) {
	c.t.Helper()
	b, err := wire.Encode(f)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("send %s: %v", f.Type, err)
	}
}

func (c *client) sendRaw(mt int, b []byte) {
	c.t.Helper()
	if err := c.ws.WriteMessage(mt, b); err != nil {
		c.t.Fatalf("send raw: %v", err)
	}
}

func (c *client) read() (wire.Frame, error) {
	_ = c.ws.SetReadDeadline(time.Now().Add(wait))
	mt, b, err := c.ws.ReadMessage()
	if err != nil {
		return wire.Frame{}, err
	}
	if mt != websocket.TextMessage {
		c.t.Fatalf("core sent message type %d", mt)
	}
	f, err := wire.Decode(b)
	if err != nil {
		c.t.Fatalf("core sent a bad frame %q: %v", b, err)
	}
	if f.Session != "" {
		c.h.remember(f.Session)
	}
	return f, nil
}

func (c *client) next() wire.Frame {
	c.t.Helper()
	f, err := c.read()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

// await reads until a frame matches, counting the kill and signal frames
// it skips; any other frame skipped fails the test.
func (c *client) await(what string, pred func(wire.Frame) bool) wire.Frame {
	c.t.Helper()
	for {
		f := c.next()
		if pred(f) {
			return f
		}
		switch f.Type {
		case wire.TypeKill:
			c.kills++
		case wire.TypeSignal:
			c.signals = append(c.signals, f.Signal)
		default:
			c.t.Fatalf("waiting for %s, got %+v", what, f)
		}
	}
}

func isAck(t string) func(wire.Frame) bool {
	return func(f wire.Frame) bool { return f.Type == wire.TypeAck && f.AckType == t }
}

func (c *client) ackOf(t string) wire.Frame {
	c.t.Helper()
	return c.await("ack "+t, isAck(t))
}

func (c *client) ackOutput(seq int64) {
	c.t.Helper()
	f := c.ackOf(wire.TypeOutput)
	if f.Seq == nil || *f.Seq != seq {
		c.t.Fatalf("output ack seq %v, want %d", f.Seq, seq)
	}
}

func (c *client) errorCode(code string) {
	c.t.Helper()
	f := c.await("error "+code, func(f wire.Frame) bool { return f.Type == wire.TypeError })
	if f.Code != code {
		c.t.Fatalf("error code %q (%s), want %q", f.Code, f.Error, code)
	}
}

// closed asserts the core closed the connection.
func (c *client) closed() {
	c.t.Helper()
	for {
		f, err := c.read()
		if err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("connection still open")
			}
			return
		}
		if f.Type != wire.TypeKill && f.Type != wire.TypeSignal {
			c.t.Fatalf("frame %+v where a close was due", f)
		}
	}
}

// connect is a v2 connect with the bootstrap token; it returns the ack.
func (c *client) connect() wire.Frame {
	c.t.Helper()
	f := c.frame(wire.TypeConnect)
	f.Protocol, f.Token, f.Version = 2, c.h.token(c.run, c.machine), "2.0.0-test"
	c.send(f)
	return c.ackOf(wire.TypeConnect)
}

func (c *client) resume(session string) wire.Frame {
	c.t.Helper()
	f := c.frame(wire.TypeConnect)
	f.Protocol, f.Session, f.Resume, f.Version = 2, session, true, "2.0.0-test"
	c.send(f)
	return c.ackOf(wire.TypeConnect)
}

func (c *client) out(seq int64, stream string, data []byte) {
	c.t.Helper()
	f := c.frame(wire.TypeOutput)
	f.Seq, f.Stream = wire.Int64(seq), stream
	f.SetBytes(data)
	c.send(f)
}

func (c *client) outBinary(seq int64, stream string, data []byte) {
	c.t.Helper()
	b, err := wire.EncodeBinaryOutput(stream, seq, data)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(websocket.BinaryMessage, b)
}

func (c *client) start(pid int) {
	c.t.Helper()
	f := c.frame(wire.TypeStart)
	f.PID, f.Version = pid, "2.0.0-test"
	c.send(f)
	c.ackOf(wire.TypeStart)
}

func (c *client) complete(code int, reason string) {
	c.t.Helper()
	f := c.frame(wire.TypeComplete)
	f.Retcode, f.Reason = wire.Int(code), reason
	c.send(f)
	c.ackOf(wire.TypeComplete)
}

func (c *client) sync() int64 {
	c.t.Helper()
	f := c.frame(wire.TypeSyncRequest)
	c.send(f)
	r := c.await("sync_response", func(f wire.Frame) bool { return f.Type == wire.TypeSyncResponse })
	if r.LastSeq == nil {
		c.t.Fatalf("sync_response without last_seq")
	}
	return *r.LastSeq
}

func hubStore(st *memory.Store, wrap func(*memory.Store) store.Store) store.Store {
	if wrap == nil {
		return st
	}
	return wrap(st)
}
