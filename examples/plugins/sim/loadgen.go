package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/target"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// The dispatch protocol's lines (core/loadgen's Request and Reply).
type request struct {
	ID       uint64            `json:"id"`
	Op       string            `json:"op"`
	Job      string            `json:"job,omitempty"`
	RunID    string            `json:"run_id,omitempty"`
	Machine  string            `json:"machine,omitempty"`
	Protocol int               `json:"protocol,omitempty"`
	Wrapper  string            `json:"wrapper,omitempty"`
	Args     json.RawMessage   `json:"args,omitempty"`
	Env      map[string]string `json:"env,omitempty"`
}

type reply struct {
	ID     uint64 `json:"id"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
}

const (
	opDispatch = "dispatch"
	opCancel   = "cancel"
	// maxLine bounds a reply line, as the load generator bounds requests.
	maxLine = 1 << 20
)

// loadgen is the plugin's side of the dispatch protocol: one connection,
// dialled when first needed and again after it drops, carrying every
// dispatch.
type loadgen struct {
	network, addr string
	log           hclog.Logger
	ids           atomic.Uint64

	mu     sync.Mutex
	conn   *lgConn
	closed bool
}

func newLoadgen(network, addr string, log hclog.Logger) *loadgen {
	return &loadgen{network: network, addr: addr, log: log}
}

// close drops the connection; a dispatch waiting on it fails.
func (l *loadgen) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.conn != nil {
		l.conn.fail(errors.New("plugin reconfigured"))
	}
}

// current returns the live connection, dialling one if there is none.
// Dispatches wait for one dial rather than each dialling its own.
func (l *loadgen) current(ctx context.Context) (*lgConn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("plugin reconfigured")
	}
	if l.conn != nil && !l.conn.isDead() {
		return l.conn, nil
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, l.network, l.addr)
	if err != nil {
		// The simulated machines are out of reach: the core records
		// them as errors, not as wrappers that failed to start.
		return nil, fmt.Errorf("reach the load generator at %s: %w: %w", l.addr, target.ErrUnreachable, err)
	}
	l.log.Info("connected to the load generator", "addr", l.addr)
	c := &lgConn{nc: nc, out: make(chan []byte, 1024), pending: map[uint64]chan reply{},
		dead: make(chan struct{}), log: l.log}
	go c.read()
	go c.write()
	l.conn = c
	return c, nil
}

// dispatch sends one dispatch and waits for its reply. A connection that
// turns out to be dead before the request went out is replaced once (the
// load generator restarted since the last dispatch); one that dies after
// leaves the outcome unknown, which is an error.
func (l *loadgen) dispatch(ctx context.Context, req target.DispatchRequest) (string, error) {
	id := l.ids.Add(1)
	line, err := json.Marshal(request{ID: id, Op: opDispatch, Job: req.Job, RunID: req.RunID, Machine: req.Machine,
		Protocol: req.Protocol, Wrapper: req.WrapperPath, Args: json.RawMessage(req.Args), Env: req.Env})
	if err != nil {
		return "", fmt.Errorf("encode dispatch: %w", err)
	}
	line = append(line, '\n')
	token := req.Env[wire.EnvToken]
	for attempt := 0; ; attempt++ {
		c, err := l.current(ctx)
		if err != nil {
			return "", err
		}
		ch, sent, err := c.send(ctx, id, line)
		if err != nil {
			if !sent && attempt == 0 && ctx.Err() == nil {
				continue
			}
			return "", err
		}
		select {
		case r := <-ch:
			if !r.OK {
				return "", fmt.Errorf("load generator refused: %s", scrub(r.Error, token))
			}
			return r.Detail, nil
		case <-c.dead:
			return "", fmt.Errorf("connection to the load generator lost before its reply: %w", c.cause())
		case <-ctx.Done():
			c.forget(id)
			c.trySend(cancelLine(id))
			return "", ctx.Err()
		}
	}
}

func cancelLine(id uint64) []byte {
	b, _ := json.Marshal(request{ID: id, Op: opCancel}) // a request always encodes
	return append(b, '\n')
}

// scrub keeps the token out of a text from elsewhere: the load generator
// promises never to echo it, and this does not depend on the promise.
func scrub(s, token string) string {
	if token == "" {
		return s
	}
	return strings.ReplaceAll(s, token, "[token]")
}

// lgConn is one connection to the load generator: one goroutine writes
// the queued lines (flushing whenever the queue is empty, so a burst of
// dispatches costs a few writes), one reads the replies and hands each to
// the dispatch waiting for its id.
type lgConn struct {
	nc  net.Conn
	out chan []byte
	log hclog.Logger

	mu      sync.Mutex
	pending map[uint64]chan reply
	err     error
	dead    chan struct{}
}

func (c *lgConn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

func (c *lgConn) cause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// fail ends the connection; every dispatch waiting on it sees dead.
func (c *lgConn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	close(c.dead)
	c.nc.Close()
}

// send registers id and queues its line; sent reports whether the line
// was queued (and so may have reached the load generator).
func (c *lgConn) send(ctx context.Context, id uint64, line []byte) (<-chan reply, bool, error) {
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, false, c.err
	}
	c.pending[id] = ch
	c.mu.Unlock()
	select {
	case c.out <- line:
		return ch, true, nil
	case <-c.dead:
		c.forget(id)
		return nil, false, c.cause()
	case <-ctx.Done():
		c.forget(id)
		return nil, false, ctx.Err()
	}
}

func (c *lgConn) trySend(line []byte) {
	select {
	case c.out <- line:
	default:
	}
}

func (c *lgConn) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func (c *lgConn) write() {
	w := bufio.NewWriterSize(c.nc, 64<<10)
	for {
		select {
		case <-c.dead:
			return
		case line := <-c.out:
			if _, err := w.Write(line); err != nil {
				c.fail(fmt.Errorf("write to the load generator: %w", err))
				return
			}
			if len(c.out) > 0 {
				continue
			}
			if err := w.Flush(); err != nil {
				c.fail(fmt.Errorf("write to the load generator: %w", err))
				return
			}
		}
	}
}

func (c *lgConn) read() {
	sc := bufio.NewScanner(c.nc)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	for sc.Scan() {
		var r reply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			c.fail(fmt.Errorf("read the load generator's reply: %w", err))
			return
		}
		c.mu.Lock()
		ch, ok := c.pending[r.ID]
		delete(c.pending, r.ID)
		c.mu.Unlock()
		if ok {
			ch <- r // buffered, and the only send
		} else if r.ID == 0 {
			c.log.Warn("the load generator could not read a request", "error", r.Error)
		}
	}
	err := sc.Err()
	if err == nil {
		err = errors.New("the load generator closed the connection")
	}
	c.fail(err)
	c.log.Warn("connection to the load generator ended", "addr", c.nc.RemoteAddr().String(), "error", err)
}
