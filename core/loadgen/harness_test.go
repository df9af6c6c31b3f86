package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// wait bounds every wait for an event in these tests.
const wait = 10 * time.Second

// fakeCore is the core's side of the wire protocol, reduced to what the
// load generator's tests look at: it checks the credential, hands out the
// spec, stores output by seq (acking, nacking, dropping duplicates) and
// acks start and complete, and it passes every frame to the test.
type fakeCore struct {
	t    *testing.T
	srv  *httptest.Server
	url  string
	spec wire.Spec

	mu     sync.Mutex
	tokens map[string]string // run → bootstrap token
	used   map[string]bool   // bootstrap tokens spent
	stored map[string]*storedOutput
	// dropAt: the first time this seq arrives, it is stored, not acked,
	// and the connection is closed (-1: never).
	dropAt  int64
	dropped bool
	// refuse: every connect is refused with this code.
	refuse string

	conns chan *coreConn
}

type storedOutput struct {
	next    int64
	streams map[string]*bytes.Buffer
}

// coreConn is one wrapper connection to the fake core.
type coreConn struct {
	t       *testing.T
	ws      *websocket.Conn
	remote  string
	connect wire.Frame
	ackedAt time.Time // just before the connect ack was sent
	frames  chan got
	pings   chan struct{} // one waiting at most: "pinged since read"
	wmu     sync.Mutex
}

// got is one frame from the wrapper.
type got struct {
	wire.Frame
	binary bool
	seq    int64
	stream string
	data   []byte
	at     time.Time
}

func newFakeCore(t *testing.T, spec wire.Spec) *fakeCore {
	t.Helper()
	fc := &fakeCore{t: t, spec: spec, tokens: map[string]string{}, used: map[string]bool{},
		stored: map[string]*storedOutput{}, dropAt: -1, conns: make(chan *coreConn, 1024)}
	fc.srv = httptest.NewServer(http.HandlerFunc(fc.serve))
	t.Cleanup(fc.srv.Close)
	fc.url = "ws" + strings.TrimPrefix(fc.srv.URL, "http") + "/ws"
	return fc
}

func (fc *fakeCore) output(run, machine, stream string) []byte {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	st := fc.stored[run+"/"+machine]
	if st == nil || st.streams[stream] == nil {
		return nil
	}
	return bytes.Clone(st.streams[stream].Bytes())
}

var upgrader = websocket.Upgrader{}

func (fc *fakeCore) serve(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	_, data, err := ws.ReadMessage()
	if err != nil {
		return
	}
	f, err := wire.Decode(data)
	if err != nil || f.Type != wire.TypeConnect {
		fc.t.Errorf("first frame %q is not connect", data)
		return
	}
	cc := &coreConn{t: fc.t, ws: ws, remote: r.RemoteAddr, connect: f, frames: make(chan got, 1<<16),
		pings: make(chan struct{}, 1)}
	ws.SetPingHandler(func(data string) error {
		select {
		case cc.pings <- struct{}{}:
		default:
		}
		return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	key := f.JobInstance + "/" + f.Machine
	fc.mu.Lock()
	ack, refusal := fc.ackFor(f, key)
	fc.mu.Unlock()
	if refusal != "" {
		cc.send(wire.ErrorFrame(refusal, "refused by the fake core"))
		fc.conns <- cc
		return
	}
	cc.ackedAt = time.Now()
	cc.send(ack)
	fc.conns <- cc
	for {
		mt, data, err := ws.ReadMessage()
		if err != nil {
			close(cc.frames)
			return
		}
		g := got{binary: mt == websocket.BinaryMessage, at: time.Now()}
		if g.binary {
			g.stream, g.seq, g.data, err = wire.DecodeBinaryOutput(data)
			if err != nil {
				fc.t.Errorf("bad binary frame: %v", err)
				return
			}
			g.data = bytes.Clone(g.data)
			if !fc.store(cc, key, g) {
				cc.push(g)
				close(cc.frames)
				return
			}
		} else {
			if g.Frame, err = wire.Decode(data); err != nil {
				fc.t.Errorf("bad text frame %q: %v", data, err)
				return
			}
			switch g.Type {
			case wire.TypeStart:
				cc.send(wire.Ack(wire.TypeStart))
			case wire.TypeComplete:
				cc.send(wire.Ack(wire.TypeComplete))
			}
		}
		cc.push(g)
	}
}

// ackFor checks a connect and builds its ack, or names a refusal.
func (fc *fakeCore) ackFor(f wire.Frame, key string) (wire.Frame, string) {
	if fc.refuse != "" {
		return wire.Frame{}, fc.refuse
	}
	if f.Protocol != wire.ProtocolV2 {
		return wire.Frame{}, wire.CodeUnauthorized
	}
	if f.Resume {
		if f.Session != "session-"+key {
			return wire.Frame{}, wire.CodeUnauthorized
		}
	} else {
		if want := fc.tokens[f.JobInstance]; f.Token == "" || f.Token != want || fc.used[f.Token] {
			return wire.Frame{}, wire.CodeUnauthorized
		}
		fc.used[f.Token] = true
	}
	st := fc.stored[key]
	if st == nil {
		st = &storedOutput{streams: map[string]*bytes.Buffer{}}
		fc.stored[key] = st
	}
	spec := fc.spec
	return wire.Frame{Type: wire.TypeAck, AckType: wire.TypeConnect, Protocol: wire.ProtocolV2,
		Session: "session-" + key, NextSeq: wire.Int64(st.next), Spec: &spec}, ""
}

// store keeps a chunk in seq order and answers it as the core does;
// false drops the connection (dropAt).
func (fc *fakeCore) store(cc *coreConn, key string, g got) bool {
	fc.mu.Lock()
	st := fc.stored[key]
	var reply wire.Frame
	switch {
	case g.seq < st.next:
		reply = wire.AckOutput(g.seq)
	case g.seq > st.next:
		reply = wire.NackOutOfOrderFrame(st.next, g.seq)
	default:
		b := st.streams[g.stream]
		if b == nil {
			b = &bytes.Buffer{}
			st.streams[g.stream] = b
		}
		b.Write(g.data)
		st.next++
		reply = wire.AckOutput(g.seq)
		if g.seq == fc.dropAt && !fc.dropped {
			fc.dropped = true
			fc.mu.Unlock()
			return false
		}
	}
	fc.mu.Unlock()
	cc.send(reply)
	return true
}

func (cc *coreConn) push(g got) {
	select {
	case cc.frames <- g:
	default:
		cc.t.Errorf("fake core: frame buffer full")
	}
}

func (cc *coreConn) send(f wire.Frame) {
	b, err := wire.Encode(f)
	if err != nil {
		cc.t.Errorf("encode %s: %v", f.Type, err)
		return
	}
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	_ = cc.ws.WriteMessage(websocket.TextMessage, b)
}

// next returns the next frame from the wrapper; ok is false once the
// connection ended.
func (cc *coreConn) next() (got, bool) {
	cc.t.Helper()
	select {
	case g, ok := <-cc.frames:
		return g, ok
	case <-time.After(wait):
		cc.t.Fatalf("no frame from the wrapper within %s", wait)
		return got{}, false
	}
}

// until returns the next frame of type typ (a JSON frame), after the
// frames before it, which it also returns.
func (cc *coreConn) until(typ string) (got, []got) {
	cc.t.Helper()
	var before []got
	for {
		g, ok := cc.next()
		if !ok {
			cc.t.Fatalf("connection ended before a %s frame; frames: %s", typ, describe(before))
		}
		if !g.binary && g.Type == typ {
			return g, before
		}
		before = append(before, g)
	}
}

// closed waits until the wrapper closed the connection.
func (cc *coreConn) closed() []got {
	cc.t.Helper()
	var rest []got
	for {
		g, ok := cc.next()
		if !ok {
			return rest
		}
		rest = append(rest, g)
	}
}

func describe(gs []got) string {
	var parts []string
	for _, g := range gs {
		if g.binary {
			parts = append(parts, "output#"+g.stream)
		} else {
			parts = append(parts, g.Type)
		}
	}
	return strings.Join(parts, " ")
}

// nextConn waits for the next connection to the fake core.
func (fc *fakeCore) nextConn() *coreConn {
	fc.t.Helper()
	select {
	case cc := <-fc.conns:
		return cc
	case <-time.After(wait):
		fc.t.Fatalf("no wrapper connected within %s", wait)
		return nil
	}
}

// harness is a Server on a unix socket and a client of it.
type harness struct {
	t    *testing.T
	core *fakeCore
	srv  *Server
	cl   *dispatchClient
	addr string
	n    int
	// stop cancels Serve and returns its error; later calls return nil.
	stop func() error
}

func newHarness(t *testing.T, spec wire.Spec, cfg Config) *harness {
	t.Helper()
	core := newFakeCore(t, spec)
	if cfg.Log == nil {
		cfg.Log = hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: hclog.Debug})
	}
	srv := New(cfg)
	l, err := Listen("unix:" + filepath.Join(t.TempDir(), "lg.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(wait):
			return fmt.Errorf("Serve did not return within %s of its context ending", wait)
		}
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	addr := l.Addr().String()
	return &harness{t: t, core: core, srv: srv, cl: dialDispatch(t, addr), addr: addr, stop: stop}
}

// testWriter sends the Server's log to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// request builds a valid dispatch of a fresh run to the fake core.
func (h *harness) request(machine string) Request {
	h.n++
	run := fmt.Sprintf("run-%d-%s", h.n, machine)
	token := "token-for-" + run
	h.core.mu.Lock()
	h.core.tokens[run] = token
	h.core.mu.Unlock()
	return Request{ID: uint64(h.n), Op: OpDispatch, Job: "job", RunID: run, Machine: machine, Protocol: 2,
		Env: map[string]string{
			wire.EnvWebSocketURL: h.core.url, wire.EnvWebSocketURLs: h.core.url,
			wire.EnvJobName: "job", wire.EnvJobInstance: run, wire.EnvMachineID: machine, wire.EnvToken: token,
		}}
}

// start dispatches one machine and returns its connection to the fake
// core.
func (h *harness) start(machine string) (Request, *coreConn) {
	h.t.Helper()
	req := h.request(machine)
	if r := h.cl.do(req); !r.OK {
		h.t.Fatalf("dispatch refused: %s", r.Error)
	}
	return req, h.core.nextConn()
}

// dispatchClient speaks the dispatch protocol as the sim plugin does,
// one request at a time.
type dispatchClient struct {
	t   *testing.T
	nc  net.Conn
	enc *json.Encoder
	sc  *bufio.Scanner
}

func dialDispatch(t *testing.T, path string) *dispatchClient {
	t.Helper()
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &dispatchClient{t: t, nc: nc, enc: json.NewEncoder(nc), sc: bufio.NewScanner(nc)}
}

func (c *dispatchClient) send(v any) {
	c.t.Helper()
	if err := c.enc.Encode(v); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *dispatchClient) sendLine(line string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(line + "\n")); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *dispatchClient) reply() Reply {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(wait))
	if !c.sc.Scan() {
		c.t.Fatalf("no reply: %v", c.sc.Err())
	}
	var r Reply
	if err := json.Unmarshal(c.sc.Bytes(), &r); err != nil {
		c.t.Fatalf("reply %q: %v", c.sc.Bytes(), err)
	}
	return r
}

func (c *dispatchClient) do(req Request) Reply {
	c.t.Helper()
	c.send(req)
	r := c.reply()
	if r.ID != req.ID {
		c.t.Fatalf("reply to %d, want %d", r.ID, req.ID)
	}
	return r
}

// record returns the Server's record of run and machine.
func (h *harness) record(run, machine string) Record {
	h.t.Helper()
	for _, r := range h.srv.Stats(true).Records {
		if r.RunID == run && r.Machine == machine {
			return r
		}
	}
	h.t.Fatalf("no record of %s/%s", run, machine)
	return Record{}
}

// awaitStats waits until cond holds of the Server's counters: they move
// after the frames a test awaits, in the wrapper's own goroutine.
func (h *harness) awaitStats(what string, cond func(Stats) bool) Stats {
	h.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		st := h.srv.Stats(true)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("stats: %s not reached within %s: %+v", what, wait, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
