package wrapper

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// Identity of the run every test wrapper reports.
const (
	testJob      = "backup"
	testInstance = "run-1"
	testMachine  = "m1"
	testToken    = "tok-secret"
)

// fakeCore is the core's side of the wire protocol, as small as the tests
// need: it checks the token and session, stores output strictly in seq
// order (acking duplicates, nacking gaps), records every frame, and can be
// told to withhold acks, drop the connection, refuse connections, lose a
// chunk, or send commands.
type fakeCore struct {
	t    *testing.T
	srv  *httptest.Server
	url  string
	spec wire.Spec

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every event
	errs    []string      // protocol violations seen

	tokenUsed bool
	session   string
	connects  []wire.Frame
	conns     int // authenticated connections
	cur       *coreConn

	frames     []wire.Frame // JSON frames after connect, every connection
	heartbeats []time.Time
	pings      int           // WebSocket pings, every connection
	chunks     []storedChunk // index == seq
	dups       int
	nacks      int
	complete   *wire.Frame

	// Behaviour knobs, set before or during a test under mu.
	holdConnect    bool // read connect, never answer
	refuse         bool // answer upgrades with 503
	noAck          bool // store output without acking it
	dropAfter      int  // > 0: close the connection once this many chunks are stored (once)
	forget         int  // at that drop, forget the last chunks stored (not durable)
	awayAtDrop     bool // at that drop, start refusing connections, and ack again once back
	dropOnComplete bool // close instead of acking the next complete (once)
	refusals       []time.Time
	lose           int64
	lost           bool // lose chunk seq `lose` once, as if it never arrived
	dropped        chan struct{}
}

type storedChunk struct {
	stream string
	data   []byte
}

type coreConn struct {
	mu sync.Mutex
	ws *websocket.Conn
}

func (c *coreConn) send(f wire.Frame) error {
	b, err := wire.Encode(f)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

func newFakeCore(t *testing.T, spec wire.Spec) *fakeCore {
	t.Helper()
	c := &fakeCore{t: t, spec: spec, changed: make(chan struct{}), lose: -1, dropped: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", c.serveWS)
	c.srv = httptest.NewServer(mux)
	c.url = "ws" + strings.TrimPrefix(c.srv.URL, "http") + "/ws"
	t.Cleanup(func() {
		c.srv.CloseClientConnections()
		c.srv.Close()
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, e := range c.errs {
			t.Errorf("fake core: %s", e)
		}
	})
	return c
}

// bump wakes await; callers hold mu.
func (c *fakeCore) bump() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *fakeCore) violation(format string, args ...any) {
	c.mu.Lock()
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
	c.bump()
	c.mu.Unlock()
}

// await waits until cond, called under mu, holds.
func (c *fakeCore) await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for {
		c.mu.Lock()
		ok, ch := cond(), c.changed
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// awaitComplete waits for the complete frame and returns it.
func (c *fakeCore) awaitComplete(t *testing.T) wire.Frame {
	t.Helper()
	c.await(t, "complete", func() bool { return c.complete != nil })
	c.mu.Lock()
	defer c.mu.Unlock()
	return *c.complete
}

// set changes behaviour knobs under mu.
func (c *fakeCore) set(f func()) {
	c.mu.Lock()
	f()
	c.bump()
	c.mu.Unlock()
}

// send sends a frame to the wrapper over the current connection.
func (c *fakeCore) send(t *testing.T, f wire.Frame) {
	t.Helper()
	c.mu.Lock()
	cc := c.cur
	c.mu.Unlock()
	if cc == nil {
		t.Fatal("fake core: no connection to send on")
	}
	if err := cc.send(f); err != nil {
		t.Fatalf("fake core: send %s: %v", f.Type, err)
	}
}

// drop closes the current connection, as a crashed core or a cut network
// would.
func (c *fakeCore) drop(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	cc := c.cur
	c.mu.Unlock()
	if cc == nil {
		t.Fatal("fake core: no connection to drop")
	}
	cc.ws.Close()
}

// output is the stored bytes of stream, concatenated in seq order.
func (c *fakeCore) output(stream string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b bytes.Buffer
	for _, ch := range c.chunks {
		if ch.stream == stream {
			b.Write(ch.data)
		}
	}
	return b.Bytes()
}

// framesOf returns the JSON frames of type typ received so far.
func (c *fakeCore) framesOf(typ string) []wire.Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.framesOfLocked(typ)
}

func (c *fakeCore) framesOfLocked(typ string) []wire.Frame {
	var out []wire.Frame
	for _, f := range c.frames {
		if f.Type == typ {
			out = append(out, f)
		}
	}
	return out
}

var upgrader = websocket.Upgrader{}

func (c *fakeCore) serveWS(w http.ResponseWriter, req *http.Request) {
	c.mu.Lock()
	refuse := c.refuse
	if refuse {
		c.refusals = append(c.refusals, time.Now())
		c.bump()
	}
	c.mu.Unlock()
	if refuse {
		http.Error(w, "core away", http.StatusServiceUnavailable)
		return
	}
	ws, err := upgrader.Upgrade(w, req, nil)
	if err != nil {
		c.violation("upgrade: %v", err)
		return
	}
	defer ws.Close()
	ws.SetReadLimit(wire.MaxFrameBytes)
	cc := &coreConn{ws: ws}
	ws.SetPingHandler(func(data string) error {
		c.mu.Lock()
		c.pings++
		c.bump()
		c.mu.Unlock()
		return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})

	mt, data, err := ws.ReadMessage()
	if err != nil {
		return
	}
	f, err := wire.Decode(data)
	if mt != websocket.TextMessage || err != nil || f.Type != wire.TypeConnect {
		c.violation("first frame is not a connect: %q", data)
		return
	}
	c.mu.Lock()
	c.connects = append(c.connects, f)
	c.bump()
	hold := c.holdConnect
	c.mu.Unlock()
	if hold {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}
	ack, ok := c.authorize(f)
	if !ok {
		cc.send(wire.ErrorFrame(wire.CodeUnauthorized, "bad credentials"))
		return
	}
	if err := cc.send(ack); err != nil {
		return
	}
	c.mu.Lock()
	c.cur = cc
	c.mu.Unlock()
	for {
		mt, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		if mt == websocket.BinaryMessage {
			if !c.receiveChunk(cc, data) {
				return
			}
			continue
		}
		f, err := wire.Decode(data)
		if err != nil {
			c.violation("undecodable frame %q: %v", data, err)
			continue
		}
		if !c.receiveFrame(cc, f) {
			return
		}
	}
}

// authorize checks a connect frame and builds its ack.
func (c *fakeCore) authorize(f wire.Frame) (wire.Frame, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkCommon(f)
	if f.Protocol != wire.ProtocolV2 {
		c.errs = append(c.errs, fmt.Sprintf("connect with protocol %d", f.Protocol))
	}
	switch {
	case !f.Resume && f.Token == testToken && !c.tokenUsed && f.Session == "":
		c.tokenUsed = true
		c.session = fmt.Sprintf("sess-%d", time.Now().UnixNano())
	case f.Resume && c.session != "" && f.Session == c.session && f.Token == "":
	default:
		return wire.Frame{}, false
	}
	c.conns++
	c.bump()
	spec := c.spec
	return wire.Frame{Type: wire.TypeAck, AckType: wire.TypeConnect, Protocol: wire.ProtocolV2,
		Session: c.session, NextSeq: wire.Int64(int64(len(c.chunks))), Spec: &spec}, true
}

// checkCommon records frames that lack the common fields; callers hold mu.
func (c *fakeCore) checkCommon(f wire.Frame) {
	if f.JobName != testJob || f.JobInstance != testInstance || f.Machine != testMachine || f.Timestamp == "" {
		c.errs = append(c.errs, fmt.Sprintf("%s frame with common fields %q %q %q %q",
			f.Type, f.JobName, f.JobInstance, f.Machine, f.Timestamp))
	}
}

// receiveChunk stores one binary output frame; false ends the connection.
func (c *fakeCore) receiveChunk(cc *coreConn, data []byte) bool {
	stream, seq, payload, err := wire.DecodeBinaryOutput(data)
	if err != nil {
		c.violation("bad binary frame: %v", err)
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.bump()
	next := int64(len(c.chunks))
	switch {
	case seq == c.lose && !c.lost:
		c.lost = true
		return true
	case seq < next:
		c.dups++
		cc.send(wire.AckOutput(seq))
		return true
	case seq > next:
		c.nacks++
		cc.send(wire.NackOutOfOrderFrame(next, seq))
		return true
	}
	c.chunks = append(c.chunks, storedChunk{stream: stream, data: bytes.Clone(payload)})
	if c.dropAfter > 0 && len(c.chunks) >= c.dropAfter {
		c.dropAfter = 0
		c.chunks = c.chunks[:len(c.chunks)-c.forget]
		if c.awayAtDrop {
			c.refuse, c.noAck = true, false
		}
		close(c.dropped)
		return false
	}
	if !c.noAck {
		cc.send(wire.AckOutput(seq))
	}
	return true
}

// receiveFrame records a JSON frame and answers it; false ends the
// connection.
func (c *fakeCore) receiveFrame(cc *coreConn, f wire.Frame) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.bump()
	c.checkCommon(f)
	if f.Token != "" || f.Session != "" {
		c.errs = append(c.errs, fmt.Sprintf("%s frame carries a credential", f.Type))
	}
	c.frames = append(c.frames, f)
	switch f.Type {
	case wire.TypeHeartbeat:
		c.heartbeats = append(c.heartbeats, time.Now())
	case wire.TypeStart:
		cc.send(wire.Ack(wire.TypeStart))
	case wire.TypeComplete:
		if f.Seq == nil || *f.Seq != int64(len(c.chunks))-1 {
			c.errs = append(c.errs, fmt.Sprintf("complete seq %v, stored up to %d", f.Seq, len(c.chunks)-1))
		}
		if c.dropOnComplete {
			c.dropOnComplete = false
			return false
		}
		c.complete = &f
		cc.send(wire.Ack(wire.TypeComplete))
	}
	return true
}
