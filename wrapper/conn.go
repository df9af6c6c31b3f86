package wrapper

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// refusedError is the core's definitive no (UNAUTHORIZED and the like):
// retrying cannot help.
type refusedError struct{ code, text string }

func (e *refusedError) Error() string {
	if e.text == "" {
		return "core refused: " + e.code
	}
	return fmt.Sprintf("core refused: %s: %s", e.code, e.text)
}

// fatalCode reports whether an error code from the core ends the run's
// reporting: the core no longer knows or accepts this run.
func fatalCode(code string) bool {
	switch code {
	case wire.CodeUnauthorized, wire.CodeJobNotFound, wire.CodeWrongRun:
		return true
	}
	return false
}

// dialer dials the advertised cores in order of preference.
type dialer struct {
	urls []string
	ws   websocket.Dialer
}

func newDialer(cfg Config) (*dialer, error) {
	d := &dialer{
		urls: cfg.URLs,
		ws: websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: 10 * time.Second,
			// Room for the largest output chunk: a message larger than
			// the write buffer goes out as one WebSocket frame per
			// buffer (4 KiB by default), each a write here and a few
			// reads in the core.
			WriteBufferSize: chunkMax + wire.BinaryHeaderBytes},
	}
	if cfg.CA != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.CA) {
			return nil, errors.New("CA file holds no PEM certificate")
		}
		d.ws.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return d, nil
}

// dialAny tries every URL once, in order, and returns the first that
// answers.
func (d *dialer) dialAny(ctx context.Context) (*websocket.Conn, string, error) {
	var errs []error
	for _, u := range d.urls {
		c, resp, err := d.ws.DialContext(ctx, u, nil)
		if err == nil {
			c.SetReadLimit(wire.MaxFrameBytes)
			return c, u, nil
		}
		if resp != nil {
			err = fmt.Errorf("%w (HTTP %s)", err, resp.Status)
		}
		errs = append(errs, fmt.Errorf("dial %s: %w", u, err))
	}
	return nil, "", errors.Join(errs...)
}

// backoff is randomised exponential: each round waits between half and
// all of min·2^attempt, capped at max, so wrappers cut off together do not
// come back together.
type backoff struct{ min, max time.Duration }

func (b backoff) delay(attempt int) time.Duration {
	d := b.max
	if attempt < 30 && b.min<<attempt < b.max {
		d = b.min << attempt
	}
	return d/2 + rand.N(d/2+1)
}

// exchangeConnect sends the connect frame and waits for its ack.
func exchangeConnect(ctx context.Context, c *websocket.Conn, connect []byte, timeout time.Duration) (wire.Frame, error) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	deadline := time.Now().Add(timeout)
	c.SetWriteDeadline(deadline)
	if err := c.WriteMessage(websocket.TextMessage, connect); err != nil {
		return wire.Frame{}, fmt.Errorf("send connect: %w", err)
	}
	c.SetReadDeadline(deadline)
	for {
		mt, data, err := c.ReadMessage()
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

// link is one live connection: one goroutine reads, one writes (gorilla
// allows one concurrent writer).
type link struct {
	r         *runner
	ws        *websocket.Conn
	log       hclog.Logger
	heartbeat time.Duration
	idle      time.Duration // silence after which the connection is dead (idleFor)
	beats     int           // heartbeats sent, by the writer goroutine
	// spilled is what the writer reads spilled chunks into, one at a
	// time: each is sent before the next is read. Made by the first.
	spilled []byte
}

// pingEvery is how many heartbeats go with one WebSocket ping. Its pong
// keeps the read deadline (idle: see idleFor) moving on a connection where
// the core has nothing else to say, and it keeps proxies that close a
// connection silent one way (nginx's proxy_read_timeout: 60s by default)
// from closing it. For a core holding a fleet of idle wrappers, a pong is
// a write, and the read of the ping, the most of what a wrapper costs it
// after its heartbeat: a ping every fourth heartbeat (20s at the spec's
// 5s) halves what every other one cost.
const pingEvery = 4

// idleFor is the silence after which the wrapper holds its connection
// dead: a ping's interval, and beyond it a heartbeat and the write
// timeout for the pong to be late by (the core writes it behind whatever
// it is writing), 55s at the defaults.
func idleFor(heartbeat, writeTimeout time.Duration) time.Duration {
	return (pingEvery+1)*heartbeat + writeTimeout
}

// pump runs a connection until it fails or the complete frame is acked
// (then it closes it cleanly and returns nil).
func (r *runner) pump(ctx context.Context, ws *websocket.Conn, heartbeat time.Duration) error {
	l := &link{r: r, ws: ws, log: r.log.Named("conn"), heartbeat: heartbeat,
		idle: idleFor(heartbeat, r.set.writeTimeout)}
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(l.idle)) })

	wctx, stopWriter := context.WithCancel(ctx)
	defer stopWriter()
	rdone, wdone := make(chan error, 1), make(chan error, 1)
	go func() { rdone <- l.read() }()
	go func() { wdone <- l.write(wctx) }()

	var err error
	select {
	case err = <-rdone:
		rdone = nil
	case err = <-wdone:
		wdone = nil
	case <-r.out.Done():
	case <-ctx.Done():
		err = ctx.Err()
	}
	stopWriter()
	select {
	case <-r.out.Done():
		err = nil
		if wdone != nil {
			<-wdone
			wdone = nil
		}
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "run complete")
		if cerr := ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); cerr != nil {
			l.log.Debug("close frame not sent", "error", cerr)
		}
	default:
	}
	ws.Close() // unblocks the reader, and a writer stuck on a dead peer
	if rdone != nil {
		<-rdone
	}
	if wdone != nil {
		<-wdone
	}
	return err
}

// read handles the core's frames until the connection fails.
func (l *link) read() error {
	for {
		l.ws.SetReadDeadline(time.Now().Add(l.idle))
		mt, data, err := l.ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("read frame: %w", err)
		}
		if mt != websocket.TextMessage {
			l.log.Warn("ignoring binary frame from core", "bytes", len(data))
			continue
		}
		f, err := wire.Decode(data)
		if err != nil {
			l.log.Warn("ignoring undecodable frame from core", "error", err)
			continue
		}
		if err := l.r.handle(f); err != nil {
			return err
		}
	}
}

// writeState is what one connection has sent of the frames that are
// state rather than one-shot.
type writeState struct{ start, final bool }

// write sends whatever there is to send, and a heartbeat every interval,
// until ctx ends or a write fails.
func (l *link) write(ctx context.Context) error {
	hb := time.NewTicker(l.heartbeat)
	defer hb.Stop()
	var st writeState
	for {
		if err := l.flush(&st, hb.C); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-hb.C:
			if err := l.sendHeartbeat(); err != nil {
				return err
			}
		case <-l.r.out.Wake():
		case <-l.r.spool.Wake():
		}
	}
}

// flush sends, in order: start (if unacked), queued control frames, every
// unsent output chunk (with heartbeats and control frames between chunks,
// so a large backlog does not delay them), and, once all output is acked,
// the error and complete frames.
func (l *link) flush(st *writeState, hb <-chan time.Time) error {
	if !st.start {
		if f, ok := l.r.out.pendingStart(); ok {
			if err := l.sendJSON(f); err != nil {
				return err
			}
		}
		st.start = true
	}
	for {
		for _, f := range l.r.out.takeQueue() {
			if err := l.sendJSON(f); err != nil {
				return err
			}
		}
		select {
		case <-hb:
			if err := l.sendHeartbeat(); err != nil {
				return err
			}
		default:
		}
		c, ok, err := l.r.spool.NextInto(&l.spilled)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := l.sendChunk(c); err != nil {
			return err
		}
	}
	if st.final || l.r.spool.Pending() {
		return nil
	}
	errText, complete, ok := l.r.out.final()
	if !ok {
		return nil
	}
	if errText != "" {
		if err := l.sendJSON(wire.Frame{Type: wire.TypeError, Error: errText}); err != nil {
			return err
		}
	}
	if err := l.sendJSON(complete); err != nil {
		return err
	}
	st.final = true
	return nil
}

func (l *link) sendJSON(f wire.Frame) error {
	b, err := wire.Encode(l.r.stamp(f))
	if err != nil {
		return err
	}
	l.ws.SetWriteDeadline(time.Now().Add(l.r.set.writeTimeout))
	if err := l.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		return fmt.Errorf("send %s: %w", f.Type, err)
	}
	return nil
}

// sendChunk writes the frame's header and the chunk's data into one
// message: the writer copies both into its buffer, masking them, so
// joining them into a frame first would only be another chunk's size
// allocated and copied per chunk.
func (l *link) sendChunk(c sendable) error {
	name, _ := wire.StreamName(c.stream)
	h, err := wire.BinaryOutputHeader(name, c.seq)
	if err != nil {
		return err
	}
	l.ws.SetWriteDeadline(time.Now().Add(l.r.set.writeTimeout))
	w, err := l.ws.NextWriter(websocket.BinaryMessage)
	if err == nil {
		if _, err = w.Write(h[:]); err == nil {
			_, err = w.Write(c.data)
		}
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("send output seq %d: %w", c.seq, err)
	}
	return nil
}

// sendHeartbeat sends the protocol's heartbeat and, with the first and
// then every pingEvery-th, a WebSocket ping, whose pong keeps the read
// deadline moving: the core answers nothing else to a wrapper that only
// sends heartbeats.
func (l *link) sendHeartbeat() error {
	if err := l.sendJSON(wire.Frame{Type: wire.TypeHeartbeat}); err != nil {
		return err
	}
	l.beats++
	if l.beats%pingEvery != 1 {
		return nil
	}
	if err := l.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(l.r.set.writeTimeout)); err != nil {
		return fmt.Errorf("send ping: %w", err)
	}
	return nil
}
