package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/saltpeter/saltpeter/core/auth"
	"github.com/saltpeter/saltpeter/core/events"
	"github.com/saltpeter/saltpeter/core/killq"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// Defaults for Config's zero values.
const (
	DefaultHeartbeatTimeout = 30 * time.Second
	DefaultResendInterval   = 500 * time.Millisecond
	DefaultSendBuffer       = 64
	DefaultWriteTimeout     = 10 * time.Second
	DefaultDrainTimeout     = 5 * time.Second
	DefaultBindTimeout      = 10 * time.Second
)

// Config is what a Hub needs.
type Config struct {
	Logger  hclog.Logger
	Store   store.Store
	Tokens  *auth.Tokens
	Kills   <-chan killq.Request // drained by the hub
	Publish func(events.Event)   // never blocks
	// OnFinal is called, from the hub goroutine, once when a machine's
	// result becomes final or lost: by a complete or error frame, by a
	// heartbeat or connect timeout, or by Fail. A late complete of a lost
	// machine does not call it again (Busy turns false and an
	// events.MachineUpdated is published). It must not block.
	OnFinal          func(runID, machine, status string)
	LegacyWrappers   bool
	HeartbeatTimeout time.Duration    // default 30s
	ResendInterval   time.Duration    // kill/signal re-send period, default 500ms
	Now              func() time.Time // optional, for tests

	// OnKilled, optional, is told how long a kill took, from the
	// operator's request to the machine's killed result (for metrics). It
	// is called from the hub goroutine and must not block.
	OnKilled func(time.Duration)

	// OnTakenOver, optional, is called once after Recover took over
	// machines in flight, when every one of them has had a connection
	// bound again or has ended; or, at the latest, HeartbeatTimeout after
	// the takeover, when those not back are lost. A restarted core's
	// wrappers all reconnect at once, and the memory the storm took is
	// given back then (the core's server settles its heap). It is called
	// from the hub goroutine and must not block.
	OnTakenOver func()

	// SendBuffer is how many frames may wait for a connection's write
	// pump; a connection whose buffer is full is dropped. Default 64.
	SendBuffer int
	// WriteTimeout bounds one write to a wrapper. Default 10s.
	WriteTimeout time.Duration
	// DrainTimeout bounds a graceful stop: how long the hub waits for its
	// connections to store and ack what they had read, and to close with
	// "going away". Default 5s.
	DrainTimeout time.Duration
	// BindTimeout bounds how long a connection may take, from its accept,
	// to be bound to its (run, machine) by a connect (v1: a frame naming
	// a live machine); the store calls of the bind share the deadline. A
	// connection not bound by then is closed, so that one whose wrapper
	// gave up, or a bind stuck behind a slow store, does not keep its
	// socket. Default 10s (a wrapper waits 30s for its connect ack, and a
	// bind takes milliseconds: past 10s the core is overloaded, and closing
	// sheds the load until the wrapper's back-off brings it back).
	BindTimeout time.Duration
}

// QueuedPrefix starts the reason of a machine the runner recorded for a
// later batch and has not dispatched yet. The runner clears the reason
// before it dispatches, so a machine still queued certainly never ran:
// after a restart the runner launches it, and the hub leaves it alone
// (Recover does not expect it, no wrapper may connect as it), since a
// connect deadline would turn a machine nobody started into not_started.
const QueuedPrefix = "queued: "

// Queued reports whether the runner has yet to dispatch a stored machine.
func Queued(m store.Machine) bool {
	return m.Status == store.StatusPending && strings.HasPrefix(m.Reason, QueuedPrefix)
}

// Expectation is a (run, machine) the runner is about to dispatch.
type Expectation struct {
	RunID, Job, Machine string
	Protocol            int           // 1 or 2 (0 means 2)
	Spec                wire.Spec     // delivered in the v2 connect ack; a run keeps the spec it started with
	Timeout             time.Duration // the job's hard timeout, 0 = none (used for "lost but maybe still running")
	ConnectDeadline     time.Time     // not connected by then → not_started/254; zero = no deadline
}

// Errors of the hub's API.
var (
	ErrExpected   = errors.New("already expected")
	ErrNotRunning = errors.New("hub not running")
)

type key struct{ run, machine string }

// command is a pending kill or signal for one machine.
type command struct {
	kind     string // killq.Kill or killq.Signal
	signal   string
	grace    time.Duration
	by       string
	asked    time.Time // when the operator asked
	lastSent time.Time // zero: never sent
}

// mstate is the hub's view of one (run, machine); only the hub goroutine
// touches it.
type mstate struct {
	// killAsked is when the kill the wrapper confirmed was asked for.
	killAsked time.Time

	key        key
	exp        Expectation
	status     string // pending, running, lost (final ones are forgotten)
	expectedAt time.Time

	conn   *conn // current connection, nil while disconnected
	connV2 bool
	ready  bool // the connect was acked: commands may go out

	usedBootstrap bool
	connectedAt   time.Time
	startedAt     time.Time
	lastSeen      time.Time // last frame of a connection that has ended
	finalizing    bool      // a lost/not_started write is in flight
	lateDone      bool

	// next is the first output seq not stored, as far as this core knows:
	// the store's when the hub learned of the machine (0 for one it
	// expects, the stored one for one recovered or rebuilt), moved on by
	// its connections after each store write and before the ack. Shared
	// with them (see progress); the connect ack's next_seq.
	next *atomic.Int64
	// heardAt is when a frame of the machine's wrapper last reached this
	// core, as of the last bind or the end of a connection; zero while none
	// did (Recover and rebuild restart the heartbeat clock, lastSeen, but
	// hear nothing).
	heardAt time.Time

	kill     *command
	signals  []*command
	killSent bool

	// dueAt is when the hub's heap of deadlines has it looked at next
	// (unix nanoseconds), 0 when it does not (see due.go).
	dueAt int64

	// takenOver: Recover took the machine over and no connection has
	// bound it since (see Hub.takeover).
	takenOver bool
}

// seen is the last time any frame came from the machine's wrapper.
func (st *mstate) seen() time.Time {
	t := st.lastSeen
	if st.conn != nil {
		if c := time.Unix(0, st.conn.lastSeen.Load()); c.After(t) {
			t = c
		}
	}
	return t
}

// heard is when a frame of the machine's wrapper last reached this core,
// zero if none did.
func (st *mstate) heard() time.Time {
	t := st.heardAt
	if st.conn != nil {
		if c := time.Unix(0, st.conn.lastSeen.Load()); c.After(t) {
			t = c
		}
	}
	return t
}

// progress returns a counter of stored output starting at next.
func progress(next int64) *atomic.Int64 {
	p := new(atomic.Int64)
	p.Store(next)
	return p
}

// advance moves a counter of stored output on to next; it reports
// whether it moved.
func advance(p *atomic.Int64, next int64) bool {
	for {
		cur := p.Load()
		if next <= cur {
			return false
		}
		if p.CompareAndSwap(cur, next) {
			return true
		}
	}
}

// start is when the job began, for its timeout.
func (st *mstate) start() time.Time {
	if !st.startedAt.IsZero() {
		return st.startedAt
	}
	return st.connectedAt
}

// timedOut reports whether the job's hard timeout has passed.
func (st *mstate) timedOut(now time.Time) bool {
	s := st.start()
	return st.exp.Timeout > 0 && !s.IsZero() && !now.Before(s.Add(st.exp.Timeout))
}

// Hub serves /ws and owns the (run, machine) states.
type Hub struct {
	cfg  Config
	log  hclog.Logger
	tick time.Duration
	// sweepTicks is how many ticks pass between two sweeps (see
	// onTick).
	sweepTicks, ticks int
	sweepEvery        time.Duration // tick * sweepTicks
	// hbEvery is how often a connection writes its heartbeat to the
	// store; see heartbeatWriteEvery.
	hbEvery time.Duration
	reads   runReads

	in       chan any
	done     chan struct{} // closed when Run returns
	draining atomic.Bool   // Run's context ended: no new connections
	ctx      context.Context
	cancel   context.CancelFunc
	running  atomic.Bool
	wg       sync.WaitGroup // the hub's own store writers

	// heartbeats are noted for the heartbeat writer, which stores them
	// in batches (see heartbeats.go); flushHeartbeatsNow asks it to store
	// what is noted at once.
	heartbeats         chan heartbeat
	flushHeartbeatsNow chan chan struct{}

	// The machines running and the wrappers connected, for metrics:
	// kept by the hub goroutine as they change (nRunning, nConnected) and
	// published for Counts.
	nRunning, nConnected               int64
	runningMachines, connectedWrappers atomic.Int64

	// takeover counts the machines Recover took over that are not back
	// yet (mstate.takenOver), of takeoverN taken over since takeoverAt,
	// until takeoverUntil, when OnTakenOver is called whatever the
	// count; takeoverUntil is zero when no takeover is in progress. Owned
	// by the Run goroutine.
	takeover, takeoverN       int
	takeoverAt, takeoverUntil time.Time

	// Owned by the Run goroutine.
	machines map[key]*mstate
	// commanded holds the machines given a kill or signal since the
	// tick last found them with none: the ones a tick resends to. It may
	// hold a machine forgotten since, or one whose commands are done;
	// the tick drops those.
	commanded map[*mstate]struct{}
	// due holds the machines by when the hub must look at them for
	// their deadlines (see due.go).
	due   dueHeap
	byRun map[string]map[string]*mstate
	conns map[*conn]*key // nil key: not bound yet
}

// New returns a hub; call Run to start it.
func New(cfg Config) *Hub {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.HeartbeatTimeout <= 0 {
		cfg.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if cfg.ResendInterval <= 0 {
		cfg.ResendInterval = DefaultResendInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Publish == nil {
		cfg.Publish = func(events.Event) {}
	}
	if cfg.OnFinal == nil {
		cfg.OnFinal = func(string, string, string) {}
	}
	if cfg.SendBuffer <= 0 {
		cfg.SendBuffer = DefaultSendBuffer
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.BindTimeout <= 0 {
		cfg.BindTimeout = DefaultBindTimeout
	}
	tick := min(cfg.ResendInterval/2, cfg.HeartbeatTimeout/10)
	tick = max(min(tick, time.Second), 5*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	every := sweepTicks(tick, cfg.HeartbeatTimeout)
	return &Hub{
		cfg: cfg, log: cfg.Logger, tick: tick, sweepTicks: every, sweepEvery: time.Duration(every) * tick,
		hbEvery: heartbeatWriteEvery(cfg.HeartbeatTimeout), commanded: map[*mstate]struct{}{},
		in: make(chan any), done: make(chan struct{}),
		heartbeats: make(chan heartbeat, heartbeatQueue), flushHeartbeatsNow: make(chan chan struct{}),
		ctx: ctx, cancel: cancel,
		reads:    runReads{base: ctx, store: cfg.Store, timeout: cfg.BindTimeout, runs: map[string]*runReadQueue{}},
		machines: map[key]*mstate{}, byRun: map[string]map[string]*mstate{},
		conns: map[*conn]*key{},
	}
}

func (h *Hub) now() time.Time { return h.cfg.Now() }

// drainStarted, set only by tests, is told when a graceful stop begins.
var drainStarted func()

// drain is a graceful stop: every connection stops reading, stores and
// acks the frames it had read, and closes with "going away", so that its
// wrapper resends nothing it was told is stored and reconnects (with its
// randomised back-off) to whichever core is up next. The hub keeps
// handling its messages meanwhile, since that handling needs it; a
// connection that takes longer than DrainTimeout is dropped, which loses
// nothing either (the wrapper resends what was not acked).
func (h *Hub) drain() {
	h.draining.Store(true)
	if drainStarted != nil {
		drainStarted()
	}
	if len(h.conns) == 0 {
		return
	}
	h.log.Info("closing wrapper connections", "connections", len(h.conns))
	for c := range h.conns {
		c.goAway()
	}
	deadline := time.NewTimer(h.cfg.DrainTimeout)
	defer deadline.Stop()
	for len(h.conns) > 0 {
		select {
		case m := <-h.in:
			h.handle(m)
		case <-deadline.C:
			h.log.Warn("wrapper connections still open after the drain timeout; dropping them",
				"connections", len(h.conns), "drain_timeout", h.cfg.DrainTimeout)
			return
		}
	}
}

// Run is the hub goroutine; it returns nil when ctx ends, after draining
// every connection (see drain) and waiting for the hub's own store writes.
func (h *Hub) Run(ctx context.Context) error {
	if !h.running.CompareAndSwap(false, true) {
		return fmt.Errorf("hub: Run called twice")
	}
	ticker := time.NewTicker(h.tick)
	h.wg.Add(1)
	go h.heartbeatWriter()
	defer func() {
		ticker.Stop()
		close(h.done)
		h.cancel()
		for c := range h.conns {
			c.abort()
		}
		h.wg.Wait()
	}()
	kills := h.cfg.Kills
	for {
		select {
		case <-ctx.Done():
			h.drain()
			return nil
		case m := <-h.in:
			h.handle(m)
		case r, ok := <-kills:
			if !ok {
				kills = nil
				continue
			}
			h.command(r)
		case <-ticker.C:
			h.onTick()
		}
	}
}

// post hands a message to the hub goroutine; false once the hub is gone.
// Never call it from the hub goroutine.
func (h *Hub) post(m any) bool {
	select {
	case h.in <- m:
		return true
	case <-h.done:
		return false
	}
}

// Messages to the hub goroutine.
type (
	expectMsg struct {
		e     Expectation
		reply chan error
	}
	recoverMsg struct {
		run             store.Run
		connectDeadline time.Duration
		reply           chan int
	}
	registerMsg struct{ c *conn }
	unregMsg    struct{ c *conn }
	bindReq     struct {
		c         *conn
		key       key
		v2        bool
		bootstrap bool // v2 with a bootstrap token, not a session
		// stored is what the store holds of the machine; nil asks the
		// hub to decide from its own state.
		stored *storedMachine
		reply  chan bindResp
	}
	// bindFailedMsg undoes a bind whose store write failed.
	bindFailedMsg struct {
		c         *conn
		key       key
		bootstrap bool
		marked    bool // the bind had turned the machine running
	}
	readyMsg   struct{ c *conn }
	startedMsg struct {
		key key
		at  time.Time
	}
	killedMsg struct {
		key    key
		signal string
	}
	// finalMsg says a final result was stored by someone else than the
	// hub (a read pump, Fail); late marks a complete stored beside lost.
	finalMsg struct {
		key    key
		status string
		late   bool
	}
	finalResult struct {
		key    key
		status string
		err    error
	}
	queryMsg struct {
		key   key
		reply chan queryResp
	}
	busyMsg struct {
		run   string
		reply chan bool
	}
)

type bindResp struct {
	ok   bool
	code string // error code when !ok
	why  string // for the log
	// unknown: the hub holds no state for the machine; ask again with
	// what the store holds.
	unknown bool
	// final: the machine is already final (v1 only: a repeated complete
	// is acked without change).
	final       bool
	exp         Expectation
	markRunning bool // the machine was pending: store it as running
	// verify: the hub holds the machine running, but the store may hold
	// it final since (another core, or Fail, finished it): a conditional
	// write must confirm before the connect is acked.
	verify bool
	next   *atomic.Int64 // the machine's stored output, see mstate.next
}

type queryResp struct{ killSent, timedOut bool }

func (h *Hub) handle(m any) {
	switch m := m.(type) {
	case expectMsg:
		m.reply <- h.expect(m.e)
	case recoverMsg:
		m.reply <- h.recoverRun(m.run, m.connectDeadline)
	case registerMsg:
		h.setConn(m.c, nil)
		if h.draining.Load() {
			m.c.goAway()
		}
	case unregMsg:
		h.unregister(m.c)
	case bindReq:
		m.reply <- h.bind(m)
	case bindFailedMsg:
		if _, ok := h.conns[m.c]; ok {
			h.setConn(m.c, nil)
		}
		if st := h.machines[m.key]; st != nil && st.conn == m.c {
			st.conn, st.ready = nil, false
			if m.marked && st.status == store.StatusRunning && st.startedAt.IsZero() {
				h.setStatus(st, store.StatusPending)
			}
			if m.bootstrap {
				st.usedBootstrap = false
			}
		}
	case readyMsg:
		if k := h.conns[m.c]; k != nil {
			if st := h.machines[*k]; st != nil && st.conn == m.c {
				st.ready = true
				h.flush(st, true)
			}
		}
	case startedMsg:
		if st := h.machines[m.key]; st != nil {
			st.startedAt = m.at
			// A lost machine recovered without a start had no job
			// timeout to wait for until now.
			h.schedule(st)
		}
	case killedMsg:
		h.killed(m.key, m.signal)
	case finalMsg:
		h.final(m.key, m.status, m.late)
	case finalResult:
		h.finalResult(m)
	case queryMsg:
		var r queryResp
		if st := h.machines[m.key]; st != nil {
			r = queryResp{killSent: st.killSent, timedOut: st.timedOut(h.now())}
		}
		m.reply <- r
	case busyMsg:
		m.reply <- h.busy(m.run)
	default:
		h.log.Error("unknown hub message", "type", fmt.Sprintf("%T", m))
	}
}

func (h *Hub) add(st *mstate) {
	h.machines[st.key] = st
	if st.status == store.StatusRunning {
		h.countRunning(1)
	}
	if h.byRun[st.key.run] == nil {
		h.byRun[st.key.run] = map[string]*mstate{}
	}
	h.byRun[st.key.run][st.key.machine] = st
	h.schedule(st)
}

// forget drops a machine's state; pending commands go with it.
func (h *Hub) forget(st *mstate) {
	if st.kill != nil || len(st.signals) > 0 {
		h.log.Debug("dropping commands of a finished machine", "run_id", st.key.run,
			"machine", st.key.machine, "kill", st.kill != nil, "signals", len(st.signals))
	}
	if h.machines[st.key] == st && st.status == store.StatusRunning {
		h.countRunning(-1)
	}
	h.back(st)
	delete(h.machines, st.key)
	if ms := h.byRun[st.key.run]; ms != nil {
		delete(ms, st.key.machine)
		if len(ms) == 0 {
			delete(h.byRun, st.key.run)
		}
	}
}

// setStatus changes a machine's status, and the count of those running.
func (h *Hub) setStatus(st *mstate, status string) {
	if h.machines[st.key] == st {
		if st.status == store.StatusRunning {
			h.countRunning(-1)
		}
		if status == store.StatusRunning {
			h.countRunning(1)
		}
	}
	st.status = status
	h.schedule(st)
}

func (h *Hub) countRunning(d int64) {
	h.nRunning += d
	h.runningMachines.Store(h.nRunning)
}

// setConn records what a connection is bound to (nil: nothing yet), and
// the count of those bound.
func (h *Hub) setConn(c *conn, k *key) {
	if old, ok := h.conns[c]; ok && old != nil {
		h.nConnected--
	}
	if k != nil {
		h.nConnected++
	}
	h.conns[c] = k
	h.connectedWrappers.Store(h.nConnected)
}

func (h *Hub) expect(e Expectation) error {
	k := key{e.RunID, e.Machine}
	if _, ok := h.machines[k]; ok {
		return fmt.Errorf("expect %s on %s: %w", e.RunID, e.Machine, ErrExpected)
	}
	h.add(&mstate{key: k, exp: e, status: store.StatusPending, expectedAt: h.now(), next: progress(0)})
	return nil
}

func (h *Hub) unregister(c *conn) {
	kp := h.conns[c]
	h.setConn(c, nil)
	delete(h.conns, c)
	if kp == nil {
		return
	}
	k := *kp
	st := h.machines[k]
	if st == nil || st.conn != c {
		return
	}
	st.lastSeen, st.heardAt = st.seen(), st.heard()
	st.conn, st.ready = nil, false
	h.log.Debug("wrapper disconnected", "run_id", k.run, "machine", k.machine)
}

// rebuild makes a state from the store for a machine the hub does not
// know (the core restarted, or another core dispatched it). It returns
// nil when the store's machine cannot take this connection.
func (h *Hub) rebuild(req bindReq) *mstate {
	run, m := req.stored.run, req.stored.machine
	switch {
	case Queued(m):
		return nil
	case req.v2 && req.bootstrap:
		if m.Status != store.StatusPending {
			return nil
		}
	case req.v2:
		if m.Status != store.StatusPending && m.Status != store.StatusRunning && m.Status != store.StatusLost {
			return nil
		}
	default:
		if m.Protocol != wire.ProtocolV1 || (m.Status != store.StatusPending &&
			m.Status != store.StatusRunning && m.Status != store.StatusLost) {
			return nil
		}
	}
	e := Expectation{RunID: run.ID, Job: run.Job, Machine: m.Machine, Protocol: m.Protocol}
	if e.Protocol == 0 {
		e.Protocol = wire.ProtocolV2
	}
	if len(run.Spec) > 0 {
		if err := json.Unmarshal(run.Spec, &e.Spec); err != nil {
			h.log.Warn("stored spec does not decode", "run_id", e.RunID, "error", err)
		}
	}
	if e.Spec.Timeout != "" {
		if d, err := wire.ParseDuration(e.Spec.Timeout); err == nil {
			e.Timeout = d
		}
	}
	st := &mstate{key: req.key, exp: e, status: m.Status, expectedAt: h.now(),
		startedAt: m.StartedAt, connectedAt: m.StartedAt, lastSeen: h.now(), next: progress(m.NextSeq)}
	h.add(st)
	h.log.Info("rebuilt machine state from the store", "run_id", e.RunID, "machine", e.Machine,
		"status", m.Status, "protocol", e.Protocol)
	return st
}

// bind decides whether a connection may serve a (run, machine). Without
// what the store holds (req.stored nil) it decides from the hub's own
// state, which Expect, Recover or an earlier rebuild made: reading the
// store per connection would cost each connect the whole run (GetRun is
// the only read the store offers), so that a fleet connecting costs the
// square of its size. The store still has its say: the read pump makes
// one conditional write per bind (markRunning or verify), and asks again
// with what the store holds when that write finds the machine final, or
// when the hub does not know the machine.
func (h *Hub) bind(req bindReq) bindResp {
	now := h.now()
	log := h.log.With("run_id", req.key.run, "machine", req.key.machine)
	st := h.machines[req.key]
	if req.stored == nil && st == nil {
		return bindResp{unknown: true}
	}
	if req.stored != nil {
		m := req.stored.machine
		// The store is the truth another core (or Fail) may have changed.
		if ms := m.Status; store.Final(ms) && ms != store.StatusLost {
			if st != nil {
				log.Debug("forgetting a machine the store holds final", "status", ms)
				h.forget(st)
			}
			if !req.v2 && m.Protocol == wire.ProtocolV1 {
				return bindResp{final: true}
			}
			return bindResp{code: wire.CodeUnauthorized, why: "machine already final (" + ms + ")"}
		}
		if st != nil && st.status == store.StatusRunning && m.Status == store.StatusLost {
			h.setStatus(st, store.StatusLost)
		}
		if st == nil {
			st = h.rebuild(req)
		}
		if st == nil {
			return bindResp{code: wire.CodeUnauthorized, why: "no live machine for this connection (status " + m.Status + ")"}
		}
		advance(st.next, m.NextSeq)
	}
	if !req.v2 && (!h.cfg.LegacyWrappers || st.exp.Protocol != wire.ProtocolV1) {
		return bindResp{code: wire.CodeUnauthorized, why: "unauthenticated v1 connection refused"}
	}
	if st.status == store.StatusPending && st.finalizing {
		return bindResp{code: wire.CodeUnauthorized, why: "connect deadline passed"}
	}
	if req.v2 && req.bootstrap {
		// A bootstrap token is spent once its wrapper has shown it holds
		// the connect ack: by its start. Until then a connect again with
		// it is the same wrapper whose ack was lost (it gave up waiting,
		// an overloaded core acking late), and it replaces the first
		// connection, rather than leave a live wrapper locked out and
		// its machine to end not started.
		retry := st.usedBootstrap && st.status == store.StatusRunning && st.startedAt.IsZero()
		switch {
		case !retry && (st.usedBootstrap || st.status != store.StatusPending):
			return bindResp{code: wire.CodeUnauthorized, why: "bootstrap token already used"}
		case !st.exp.ConnectDeadline.IsZero() && now.After(st.exp.ConnectDeadline):
			return bindResp{code: wire.CodeUnauthorized, why: "bootstrap token past the connect deadline"}
		}
		if retry {
			log.Info("bootstrap connect again before the wrapper started: its first ack may have been lost")
		}
		st.usedBootstrap = true
	}
	if st.conn != nil && st.conn != req.c {
		log.Info("newer connection replaces the old one")
		st.conn.abort()
	}
	st.conn, st.connV2, st.ready = req.c, req.v2, false
	h.back(st)
	// A key of its own: a pointer into req would keep the whole request
	// alive as long as the connection.
	k := req.key
	h.setConn(req.c, &k)
	if st.connectedAt.IsZero() {
		st.connectedAt = now
	}
	st.lastSeen, st.heardAt = now, now
	mark := st.status == store.StatusPending
	if mark {
		h.setStatus(st, store.StatusRunning)
	}
	// A lost machine needs no check: lost is final in the store, and
	// results are written only if not final, so only a late result can
	// follow it there, which the late complete path reads for itself.
	verify := req.stored == nil && !mark && st.status == store.StatusRunning
	log.Debug("wrapper connected", "v2", req.v2, "status", st.status)
	return bindResp{ok: true, exp: st.exp, markRunning: mark, verify: verify, next: st.next}
}

// final records a final result someone else stored.
func (h *Hub) final(k key, status string, late bool) {
	st := h.machines[k]
	job := ""
	if st != nil {
		job = st.exp.Job
	}
	h.cfg.Publish(events.Event{Kind: events.MachineUpdated, Job: job, RunID: k.run,
		Machine: k.machine, Status: status, At: h.now()})
	if late {
		if st != nil {
			st.lateDone = true
			h.forget(st)
		}
		return
	}
	h.cfg.OnFinal(k.run, k.machine, status)
	if st == nil {
		return
	}
	if asked := st.killAsked; status == store.StatusKilled && h.cfg.OnKilled != nil {
		if st.kill != nil {
			asked = st.kill.asked // the wrapper completed before it confirmed
		}
		if !asked.IsZero() {
			h.cfg.OnKilled(h.now().Sub(asked))
		}
	}
	if status == store.StatusLost {
		h.setStatus(st, store.StatusLost)
		return
	}
	h.forget(st)
}

// finalize stores a result the hub decided (lost, not_started) off the hub
// goroutine.
func (h *Hub) finalize(st *mstate, status string, code int, reason string) {
	st.finalizing = true
	k, now := st.key, h.now()
	u := store.MachineUpdate{Status: &status, ExitCode: &code, Reason: &reason, FinishedAt: &now, OnlyIfNotFinal: true}
	if heard := st.heard(); status == store.StatusLost && !heard.IsZero() {
		// The stored heartbeat lags by up to hbEvery; a lost machine's is
		// the one an operator looks at, so it gets the exact time.
		u.LastHeartbeat = &heard
	}

	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		err := h.cfg.Store.UpdateMachine(h.ctx, k.run, k.machine, u)
		h.post(finalResult{key: k, status: status, err: err})
	}()
}

func (h *Hub) finalResult(r finalResult) {
	st := h.machines[r.key]
	if st != nil {
		st.finalizing = false
	}
	log := h.log.With("run_id", r.key.run, "machine", r.key.machine)
	switch {
	case r.err == nil:
		log.Warn("machine result", "status", r.status)
		if st != nil && st.conn != nil && r.status == store.StatusLost {
			st.conn.abort()
		}
		h.final(r.key, r.status, false)
	case errors.Is(r.err, store.ErrFinal):
		// Another writer stored a result first and reports it itself.
	case errors.Is(r.err, store.ErrNotFound):
		log.Warn("machine vanished from the store", "error", r.err)
		if st != nil {
			h.forget(st)
		}
	default:
		log.Error("store machine result, will retry", "status", r.status, "error", r.err)
	}
}

// sweepTicks is how many ticks apart the hub sweeps the machines whose
// deadlines (connect deadline, heartbeat timeout, job timeout) have come
// (see due.go): a twentieth of the heartbeat timeout, within a second,
// which is how late a deadline may be acted on. The tick itself must be
// short, for it resends commands (every ResendInterval); a machine
// judged lost a twentieth of its timeout late is judged as well.
func sweepTicks(tick, heartbeatTimeout time.Duration) int {
	every := min(heartbeatTimeout/20, time.Second)
	return max(1, int(every/tick))
}

// onTick resends the commands that are due, and every sweepTicks ticks
// sweeps the machines whose deadlines have come (see sweep).
func (h *Hub) onTick() {
	for st := range h.commanded {
		if h.machines[st.key] != st || (st.kill == nil && len(st.signals) == 0) {
			delete(h.commanded, st)
			continue
		}
		h.flush(st, false)
	}
	if h.ticks++; h.ticks >= h.sweepTicks {
		h.ticks = 0
		h.sweep()
	}
	if !h.takeoverUntil.IsZero() && !h.now().Before(h.takeoverUntil) {
		h.takenOver()
	}
}

// back notes that a machine is no longer waited for as part of a
// takeover: a connection bound it, or it ended.
func (h *Hub) back(st *mstate) {
	if !st.takenOver {
		return
	}
	st.takenOver = false
	if h.takeoverUntil.IsZero() {
		return // the takeover was declared over already
	}
	if h.takeover--; h.takeover == 0 {
		h.takenOver()
	}
}

// takenOver ends the takeover in progress and says so.
func (h *Hub) takenOver() {
	// not_back: neither reconnected nor ended when the heartbeat timeout
	// passed; they are lost, or about to be.
	h.log.Info("takeover of machines in flight ended", "machines", h.takeoverN, "not_back", h.takeover,
		"after", h.now().Sub(h.takeoverAt).Round(time.Millisecond))
	h.takeover, h.takeoverUntil = 0, time.Time{}
	if h.cfg.OnTakenOver != nil {
		h.cfg.OnTakenOver()
	}
}

// check ends the machine if it is past its deadline (see sweep).
func (h *Hub) check(st *mstate, now time.Time) {
	switch st.status {
	case store.StatusPending:
		dl := st.exp.ConnectDeadline
		if !dl.IsZero() && now.After(dl) && !st.finalizing && st.conn == nil {
			h.finalize(st, store.StatusNotStarted, wire.ExitNotStarted,
				"wrapper did not connect within "+dl.Sub(st.expectedAt).Round(time.Millisecond).String())
		}
	case store.StatusRunning:
		if quiet := now.Sub(st.seen()); quiet > h.cfg.HeartbeatTimeout && !st.finalizing {
			h.finalize(st, store.StatusLost, wire.ExitLost,
				"no frame from the wrapper for "+quiet.Round(time.Millisecond).String())
		}
	case store.StatusLost:
		if st.conn == nil && st.exp.Timeout > 0 && st.timedOut(now) {
			// Its job cannot be alive any more: nothing left to wait for.
			h.forget(st)
		}
	}
}

func (h *Hub) busy(run string) bool {
	now := h.now()
	for _, st := range h.byRun[run] {
		switch st.status {
		case store.StatusPending, store.StatusRunning:
			return true
		case store.StatusLost:
			if !st.lateDone && (st.exp.Timeout == 0 || !st.timedOut(now)) {
				return true
			}
		}
	}
	return false
}

// Recover takes over, after a restart of the core, the machines the store
// holds as not final: their heartbeat clocks start again now, so a
// wrapper that resumes within the heartbeat timeout carries on, and one
// that does not is lost (253) as if the core had never stopped; a
// machine still pending gets connectDeadline to connect, unless it is
// queued (see QueuedPrefix): the runner launches those. It returns how
// many machines it took over. Call it after Run started, before anything
// dispatches.
func (h *Hub) Recover(ctx context.Context, connectDeadline time.Duration) (int, error) {
	runs, err := h.cfg.Store.ListRuns(ctx, store.RunFilter{Active: true, Limit: 1 << 20})
	if err != nil {
		return 0, fmt.Errorf("recover runs in flight: %w", err)
	}
	total := 0
	for _, run := range runs {
		reply := make(chan int, 1)
		select {
		case h.in <- recoverMsg{run: run, connectDeadline: connectDeadline, reply: reply}:
		case <-h.done:
			return total, fmt.Errorf("recover runs in flight: %w", ErrNotRunning)
		case <-ctx.Done():
			return total, ctx.Err()
		}
		total += <-reply
	}
	return total, nil
}

// recoverRun adds the run's machines the hub does not know yet, as
// rebuild does for one that connects.
func (h *Hub) recoverRun(run store.Run, connectDeadline time.Duration) int {
	now := h.now()
	n := 0
	for _, m := range run.Machines {
		k := key{run.ID, m.Machine}
		if _, known := h.machines[k]; known {
			continue
		}
		switch m.Status {
		case store.StatusPending, store.StatusRunning, store.StatusLost:
		default:
			continue
		}
		if Queued(m) {
			continue
		}
		e := Expectation{RunID: run.ID, Job: run.Job, Machine: m.Machine, Protocol: m.Protocol}
		if e.Protocol == 0 {
			e.Protocol = wire.ProtocolV2
		}
		if len(run.Spec) > 0 {
			if err := json.Unmarshal(run.Spec, &e.Spec); err != nil {
				h.log.Warn("stored spec does not decode", "run_id", run.ID, "error", err)
			}
		}
		if d, err := wire.ParseDuration(e.Spec.Timeout); err == nil {
			e.Timeout = d
		}
		if m.Status == store.StatusPending && connectDeadline > 0 {
			e.ConnectDeadline = now.Add(connectDeadline)
		}
		h.add(&mstate{key: k, exp: e, status: m.Status, expectedAt: now,
			startedAt: m.StartedAt, connectedAt: m.ConnectedAt, lastSeen: now, next: progress(m.NextSeq),
			takenOver: true})
		n++
	}
	if n > 0 {
		if h.takeoverUntil.IsZero() {
			h.takeoverN, h.takeoverAt, h.takeoverUntil = 0, now, now.Add(h.cfg.HeartbeatTimeout)
		}
		h.takeover += n
		h.takeoverN += n
		h.log.Info("took over machines in flight", "run_id", run.ID, "job", run.Job, "machines", n)
	}
	return n
}

// Counts returns the machines running and the wrappers connected (for
// metrics).
func (h *Hub) Counts() (running, connected int64) {
	return h.runningMachines.Load(), h.connectedWrappers.Load()
}

// Expect registers a (run, machine) before the runner dispatches its
// wrapper; its machine row already exists in the store as pending.
func (h *Hub) Expect(ctx context.Context, e Expectation) error {
	if e.RunID == "" || e.Machine == "" {
		return fmt.Errorf("expect: run id and machine are required")
	}
	if e.Protocol == 0 {
		e.Protocol = wire.ProtocolV2
	}
	if e.Protocol != wire.ProtocolV1 && e.Protocol != wire.ProtocolV2 {
		return fmt.Errorf("expect %s on %s: unknown protocol %d", e.RunID, e.Machine, e.Protocol)
	}
	reply := make(chan error, 1)
	select {
	case h.in <- expectMsg{e: e, reply: reply}:
	case <-h.done:
		return fmt.Errorf("expect %s on %s: %w", e.RunID, e.Machine, ErrNotRunning)
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-reply
}

// Fail stores a final result for a machine (dispatch failed →
// not_started/254, say); a no-op if it is already final. The hub forgets
// the machine and calls OnFinal.
func (h *Hub) Fail(ctx context.Context, runID, machine, status string, exitCode int, reason string) error {
	if !store.Final(status) {
		return fmt.Errorf("fail %s on %s: %q is not a final status", runID, machine, status)
	}
	now := h.now()
	u := store.MachineUpdate{Status: &status, ExitCode: &exitCode, Reason: &reason,
		FinishedAt: &now, OnlyIfNotFinal: true}
	if status == store.StatusError {
		u.Error = &reason
	}
	err := h.cfg.Store.UpdateMachine(ctx, runID, machine, u)
	if errors.Is(err, store.ErrFinal) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fail %s on %s: %w", runID, machine, err)
	}
	select {
	case h.in <- finalMsg{key: key{runID, machine}, status: status}:
	case <-h.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// Busy reports whether some machine of the run still counts as running
// for the overlap policy: not final, or lost while its job could still be
// alive (no timeout, or started+timeout not yet passed) and no late
// complete came. It asks the hub goroutine, so Run must be running; once
// Run has returned it reports false.
func (h *Hub) Busy(runID string) bool {
	reply := make(chan bool, 1)
	select {
	case h.in <- busyMsg{run: runID, reply: reply}:
		return <-reply
	case <-h.done:
		return false
	}
}

// postCtx is post bounded by ctx as well.
func (h *Hub) postCtx(ctx context.Context, m any) bool {
	select {
	case h.in <- m:
		return true
	case <-h.done:
		return false
	case <-ctx.Done():
		return false
	}
}

// ask sends a request and waits for the reply, or for the hub or ctx to
// end. Once the request is sent, the hub carries it out whether or not
// the reply is awaited.
func ask[R any](ctx context.Context, h *Hub, send func(reply chan R) any) (R, bool) {
	reply := make(chan R, 1)
	var zero R
	if !h.postCtx(ctx, send(reply)) {
		return zero, false
	}
	select {
	case r := <-reply:
		return r, true
	case <-h.done:
		return zero, false
	case <-ctx.Done():
		return zero, false
	}
}

// heartbeatWriteEvery is how often a connection stores its machine's
// heartbeat time (LastHeartbeat). That time is for the operator (the run
// page's "last heartbeat"): nothing judges liveness by it, since the hub
// keeps the exact time in memory (lastSeen) and Recover restarts every
// heartbeat clock at the restart. A write at most every 5s, the interval
// at which v1 wrappers and the spec's default send heartbeats, made idle
// fleets the store's main load: 1,000 to 2,000 writes a second at 10,000
// machines (every heartbeat, or every other, as they fell around the 5s).
// Half the heartbeat timeout keeps the stored time within half the
// timeout of the truth, so a live machine never shows a heartbeat older
// than the timeout after which it would be lost; at the 30s default that
// is a write every 15 to 20s per machine, 500 to 667 a second at 10,000.
// A connect or a resume stores the time as well, and a machine declared
// lost gets its exact last time with the lost result.
func heartbeatWriteEvery(timeout time.Duration) time.Duration {
	return max(timeout/2, time.Second)
}
