package sshtarget

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/ssh"
)

const (
	// maxDials bounds the dials in flight, across hosts: a run that
	// fans out to a thousand machines does not open a thousand TCP and
	// key exchanges at once.
	maxDials = 16
	// maxSessions bounds the sessions in flight on one connection,
	// below OpenSSH's default MaxSessions (10), past which sshd refuses
	// a channel instead of queueing it.
	maxSessions = 8
	// keepaliveEvery is how often an idle pooled connection is probed:
	// it keeps NAT and firewall state alive, and finds a connection
	// that died silently before a dispatch waits on it.
	keepaliveEvery = 30 * time.Second
	// keepaliveTimeout is how long a probe's answer may take.
	keepaliveTimeout = 15 * time.Second
	// idleClose is how long a connection nobody used stays open.
	idleClose = 10 * time.Minute
)

// dialFunc opens a connection to a host: addr is host:port, machine the
// id it came from.
type dialFunc func(ctx context.Context, machine, addr string) (*ssh.Client, error)

// pool holds one connection per host:port.
type pool struct {
	log   hclog.Logger
	dial  dialFunc
	dials chan struct{} // a slot per dial in flight

	// keepaliveEvery, keepaliveTimeout and idleClose are the constants
	// of the same names; tests shorten them.
	keepaliveEvery, keepaliveTimeout, idleClose time.Duration

	mu     sync.Mutex
	hosts  map[string]*host
	conns  map[*conn]bool // every connection not yet ended
	closed bool
	// wg counts each connection's goroutines, which close waits for.
	wg sync.WaitGroup
}

func newPool(log hclog.Logger, dial dialFunc) *pool {
	return &pool{log: log, dial: dial, dials: make(chan struct{}, maxDials), hosts: map[string]*host{},
		conns: map[*conn]bool{}, keepaliveEvery: keepaliveEvery, keepaliveTimeout: keepaliveTimeout, idleClose: idleClose}
}

// host is what the pool keeps about one host:port.
type host struct {
	addr string
	// lock is held (a token in it) while the connection is looked at or
	// dialled, so that the dispatches to a host wait for one dial rather
	// than making their own; a channel, so that waiting honours ctx.
	lock     chan struct{}
	cur      *conn         // the current connection; nil: none yet, or closed
	sessions chan struct{} // a slot per session in flight

	// deployLock serialises deploys and guards arch and deployed: the
	// host's `uname -m`, and by remote path the wrapper checksum known to
	// be there (see deploy.go).
	deployLock chan struct{}
	arch       string
	deployed   map[string]string
}

// conn is one connection and its bookkeeping.
type conn struct {
	client *ssh.Client
	done   chan struct{} // closed once the connection ended
	mu     sync.Mutex
	used   time.Time // when a session last ended, or started
	busy   int       // sessions open
}

func (c *conn) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

func (p *pool) host(addr string) (*host, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("the ssh target is closed")
	}
	h := p.hosts[addr]
	if h == nil {
		h = &host{addr: addr, lock: make(chan struct{}, 1), sessions: make(chan struct{}, maxSessions),
			deployLock: make(chan struct{}, 1), deployed: map[string]string{}}
		p.hosts[addr] = h
	}
	return h, nil
}

// get returns h's connection, dialling one when there is none or it
// broke. fresh says it was dialled for this call.
func (p *pool) get(ctx context.Context, h *host, machine string) (c *conn, fresh bool, err error) {
	select {
	case h.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	defer func() { <-h.lock }()
	if h.cur != nil && h.cur.alive() {
		return h.cur, false, nil
	}
	select {
	case p.dials <- struct{}{}:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	start := time.Now()
	client, err := p.dial(ctx, machine, h.addr)
	<-p.dials
	if err != nil {
		return nil, false, err
	}
	c = &conn{client: client, done: make(chan struct{}), used: time.Now()}
	p.mu.Lock()
	if p.closed {
		// close ran while we dialled.
		p.mu.Unlock()
		_ = client.Close()
		return nil, false, errors.New("the ssh target is closed")
	}
	p.conns[c] = true
	p.wg.Add(2)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		err := client.Wait()
		close(c.done)
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		p.log.Debug("connection ended", "addr", h.addr, "error", err)
	}()
	go func() {
		defer p.wg.Done()
		p.janitor(h, c)
	}()
	h.cur = c
	p.log.Debug("connected", "addr", h.addr, "dial_ms", time.Since(start).Milliseconds())
	return c, true, nil
}

// janitor probes c every keepaliveEvery and closes it when it does not
// answer, or when nobody used it for idleClose. A dispatch that took c
// just before gets an error opening its session and dials again.
func (p *pool) janitor(h *host, c *conn) {
	tick := time.NewTicker(p.keepaliveEvery)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		c.mu.Lock()
		idle := c.busy == 0 && time.Since(c.used) >= p.idleClose
		c.mu.Unlock()
		if idle {
			p.log.Debug("closing idle connection", "addr", h.addr)
			_ = c.client.Close()
			return
		}
		answered := make(chan error, 1)
		go func() {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			answered <- err
		}()
		timeout := time.NewTimer(p.keepaliveTimeout)
		var err error
		select {
		case err = <-answered:
		case <-timeout.C:
			err = errors.New("no answer")
		case <-c.done:
		}
		timeout.Stop()
		if err != nil {
			p.log.Warn("connection does not answer keepalives; closing it", "addr", h.addr, "error", err)
			_ = c.client.Close()
			return
		}
	}
}

// session opens a session on c, waiting for a free slot on h; release
// closes it and frees the slot. ctx bounds the wait and the opening.
func (p *pool) session(ctx context.Context, h *host, c *conn) (s *ssh.Session, release func(), err error) {
	select {
	case h.sessions <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	c.mu.Lock()
	c.busy++
	c.used = time.Now()
	c.mu.Unlock()
	done := func() {
		c.mu.Lock()
		c.busy--
		c.used = time.Now()
		c.mu.Unlock()
		<-h.sessions
	}
	type opened struct {
		s   *ssh.Session
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		s, err := c.client.NewSession()
		ch <- opened{s, err}
	}()
	select {
	case o := <-ch:
		if o.err != nil {
			done()
			return nil, nil, o.err
		}
		return o.s, func() { _ = o.s.Close(); done() }, nil
	case <-ctx.Done():
		// A connection that does not answer is the janitor's to close;
		// closing it here would end the other dispatches on it.
		go func() {
			if o := <-ch; o.err == nil {
				_ = o.s.Close()
			}
			done()
		}()
		return nil, nil, ctx.Err()
	}
}

// close closes every connection and returns once their goroutines are
// done; the pool takes no more.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	conns := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	// A dial in flight sees closed and closes what it made.
	for _, c := range conns {
		_ = c.client.Close()
	}
	p.wg.Wait()
}
