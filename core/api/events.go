package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/saltpeter/saltpeter/core/audit"
	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/core/control"
	"github.com/saltpeter/saltpeter/core/events"
	"github.com/saltpeter/saltpeter/sdk/store"
)

const (
	// wsWriteWait bounds one write; a socket that cannot take a message
	// in that time is dropped rather than allowed to hold its events.
	wsWriteWait = 10 * time.Second
	// wsPongWait is how long a silent peer is kept; pings go out well
	// within it.
	wsPongWait  = 60 * time.Second
	wsPingEvery = wsPongWait * 9 / 10
	// wsReadLimit: commands are tiny; anything larger is not one.
	wsReadLimit = 64 << 10
	// wsEventBuffer absorbs a burst of events; a socket that falls
	// further behind is dropped, and its client reconnects and re-reads.
	wsEventBuffer = 256
	// wsReplyBuffer: a client that sends commands faster than their
	// replies can be written is not reading, and is dropped.
	wsReplyBuffer = 16
	// wsRunCache bounds the run-to-job lookups a socket remembers.
	wsRunCache = 1024
)

// socket is one events connection: a read pump that handles commands and
// the write pump, the only goroutine that writes to conn.
type socket struct {
	api     *API
	conn    *websocket.Conn
	who     principal
	ctx     context.Context // ends when the socket does
	replies chan any
	done    chan struct{} // closed when the read pump ends

	mu   sync.Mutex
	jobs map[string]bool // subscribed jobs: they also get output events

	runJobs map[string]string // write pump only
}

// wsReply answers a command.
type wsReply struct {
	Kind    string   `json:"kind"` // "reply"
	Command string   `json:"command"`
	OK      bool     `json:"ok"`
	Job     string   `json:"job,omitempty"`
	RunID   string   `json:"run_id,omitempty"`
	Runs    []string `json:"runs,omitempty"`
	Error   string   `json:"error,omitempty"`
	Code    string   `json:"code,omitempty"`
}

// wsHello is the first message, so a client knows who the core took it
// for and whether its commands will be obeyed.
type wsHello struct {
	Kind string `json:"kind"` // "hello"
	Name string `json:"name"`
	Role string `json:"role"`
}

func (a *API) upgrader() *websocket.Upgrader {
	return &websocket.Upgrader{
		// guard already checked; checking here too keeps the socket safe
		// if it is ever mounted without guard.
		CheckOrigin: func(r *http.Request) bool { return a.checkOrigin(r) == nil },
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			a.writeError(w, errorf(status, CodeBadRequest, "WebSocket upgrade failed: %v.", reason))
		},
	}
}

// events upgrades to the live-updates socket.
func (a *API) events(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		a.writeError(w, errorf(http.StatusBadRequest, CodeBadRequest, "%s is a WebSocket; connect with a WebSocket client.", r.URL.Path))
		return
	}
	// Subscribe before the upgrade so that nothing published while the
	// client connects is missed.
	sub, unsubscribe := a.bus.Subscribe(wsEventBuffer)
	defer unsubscribe()
	conn, err := a.upgrader().Upgrade(w, r, nil)
	if err != nil {
		a.log.Debug("events upgrade failed", "remote_addr", r.RemoteAddr, "error", err)
		return
	}
	// The request's context may end with the hijack; the socket's own
	// ends when its write pump does, and cancels commands in flight.
	// Commands over the socket are audited as coming through it.
	ctx, cancel := context.WithCancel(audit.WithSource(context.WithoutCancel(r.Context()),
		audit.Source{Via: audit.ViaEvents, Remote: remoteOf(r)}))
	defer cancel()
	s := a.newSocket(ctx, conn, who(r))
	a.log.Debug("events socket opened", "remote_addr", r.RemoteAddr, "by", s.who.Name)
	go s.readPump()
	s.writePump(sub)
	a.log.Debug("events socket closed", "remote_addr", r.RemoteAddr, "by", s.who.Name)
}

// newSocket sets a socket up with its hello queued.
func (a *API) newSocket(ctx context.Context, conn *websocket.Conn, p principal) *socket {
	s := &socket{
		api:     a,
		conn:    conn,
		who:     p,
		ctx:     ctx,
		replies: make(chan any, wsReplyBuffer),
		done:    make(chan struct{}),
		jobs:    map[string]bool{},
		runJobs: map[string]string{},
	}
	s.replies <- wsHello{Kind: "hello", Name: p.Name, Role: p.Role}
	return s
}

func (s *socket) readPump() {
	defer close(s.done)
	s.conn.SetReadLimit(wsReadLimit)
	_ = s.conn.SetReadDeadline(time.Now().Add(wsPongWait))
	s.conn.SetPongHandler(func(string) error {
		return s.conn.SetReadDeadline(time.Now().Add(wsPongWait))
	})
	for {
		_, msg, err := s.conn.ReadMessage()
		if err != nil {
			return
		}
		_ = s.conn.SetReadDeadline(time.Now().Add(wsPongWait))
		reply := s.handle(msg)
		select {
		case s.replies <- reply:
		default:
			s.api.log.Info("events socket dropped: replies not read", "by", s.who.Name)
			return
		}
	}
}

// writePump owns every write to the connection and closes it when the
// read pump ends, a write fails, or the socket falls behind.
func (s *socket) writePump(sub *events.Subscription) {
	ping := time.NewTicker(wsPingEvery)
	defer func() {
		ping.Stop()
		s.conn.Close()
	}()
	for {
		select {
		case <-s.done:
			return
		case <-sub.Lost:
			s.api.log.Info("events socket dropped: too slow", "by", s.who.Name)
			_ = s.conn.SetWriteDeadline(time.Now().Add(wsWriteWait))
			_ = s.conn.WriteMessage(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseTryAgainLater, "too slow: events were dropped; reconnect and re-read"))
			return
		case e := <-sub.C:
			if !s.wants(e) {
				continue
			}
			if !s.write(e) {
				return
			}
		case m := <-s.replies:
			if !s.write(m) {
				return
			}
		case <-ping.C:
			_ = s.conn.SetWriteDeadline(time.Now().Add(wsWriteWait))
			if err := s.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

func (s *socket) write(v any) bool {
	_ = s.conn.SetWriteDeadline(time.Now().Add(wsWriteWait))
	return s.conn.WriteJSON(v) == nil
}

// wants filters the feed: every job and run change goes to every socket;
// output only to sockets subscribed to the run's job, as output is by far
// the busiest kind.
func (s *socket) wants(e events.Event) bool {
	if e.Kind != events.Output {
		return true
	}
	job := e.Job
	if job == "" {
		job = s.jobOf(e.RunID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return job != "" && s.jobs[job]
}

// jobOf finds the job of a run whose output event did not name it.
func (s *socket) jobOf(runID string) string {
	if job, ok := s.runJobs[runID]; ok {
		return job
	}
	s.mu.Lock()
	none := len(s.jobs) == 0
	s.mu.Unlock()
	if none {
		return ""
	}
	ctx, cancel := context.WithTimeout(s.ctx, time.Second)
	defer cancel()
	run, err := s.api.store.GetRun(ctx, runID)
	if err != nil {
		return ""
	}
	if len(s.runJobs) >= wsRunCache {
		clear(s.runJobs)
	}
	s.runJobs[runID] = run.Job
	return run.Job
}

// wsCommand is one of the commands Saltpeter's UI sends.
type wsCommand struct {
	KillCron    *string        `json:"killCron"`
	KillMachine *wsKillMachine `json:"killMachine"`
	Run         *string        `json:"run"`
	Subscribe   *string        `json:"subscribe"`
	Unsubscribe *string        `json:"unsubscribe"`
}

type wsKillMachine struct {
	Cron        string `json:"cron"`
	Machine     string `json:"machine"`
	JobInstance string `json:"job_instance"`
}

// handle runs one command and returns its reply.
func (s *socket) handle(msg []byte) wsReply {
	var c wsCommand
	if e := decodeJSON(msg, &c, false); e != nil {
		return wsReply{Kind: "reply", Command: "?", Error: e.Message, Code: e.Code}
	}
	name, n := "", 0
	for _, set := range []struct {
		name string
		on   bool
	}{
		{"killCron", c.KillCron != nil}, {"killMachine", c.KillMachine != nil}, {"run", c.Run != nil},
		{"subscribe", c.Subscribe != nil}, {"unsubscribe", c.Unsubscribe != nil},
	} {
		if set.on {
			name, n = set.name, n+1
		}
	}
	if n != 1 {
		return wsReply{Kind: "reply", Command: "?", Code: CodeBadRequest,
			Error: "A message must hold exactly one command: killCron, killMachine, run, subscribe or unsubscribe."}
	}
	r := wsReply{Kind: "reply", Command: name}
	if (name == "killCron" || name == "killMachine" || name == "run") && s.who.Role != config.RoleOperate {
		r.Code, r.Error = CodeForbidden, "Token \""+s.who.Name+"\" has the "+s.who.Role+" role; "+name+" needs operate."
		s.auditRefused(c, r.Error)
		return r
	}
	var err error
	switch {
	case c.KillCron != nil:
		r.Job = *c.KillCron
		r.Runs, err = s.api.control.Kill(s.ctx, control.KillRequest{Job: r.Job, By: s.who.Name})
		err = jobErr(r.Job, err)
	case c.KillMachine != nil:
		r.Job, r.RunID = c.KillMachine.Cron, c.KillMachine.JobInstance
		r.Runs, err = s.killMachine(*c.KillMachine)
	case c.Run != nil:
		r.Job = *c.Run
		r.RunID, err = s.api.control.RunNow(s.ctx, r.Job, s.who.Name)
		err = jobErr(r.Job, err)
	case c.Subscribe != nil:
		r.Job = *c.Subscribe
		if _, err = s.api.jobState(s.ctx, r.Job); err == nil {
			s.mu.Lock()
			s.jobs[r.Job] = true
			s.mu.Unlock()
		}
		err = jobErr(r.Job, err)
	case c.Unsubscribe != nil:
		r.Job = *c.Unsubscribe
		s.mu.Lock()
		delete(s.jobs, r.Job)
		s.mu.Unlock()
	}
	if err != nil {
		e := s.api.classify(err)
		if e.Code == CodeInternal {
			s.api.log.Error("events command failed", "command", name, "job", r.Job, "by", s.who.Name, "error", err)
		}
		r.Code, r.Error, r.Runs = e.Code, e.Message, nil
		return r
	}
	if name != "subscribe" && name != "unsubscribe" {
		s.api.log.Info("operator command on events socket", "command", name, "job", r.Job, "run_id", r.RunID, "by", s.who.Name)
	}
	r.OK = true
	return r
}

// auditRefused records a command refused for the token's role as the
// action it asked for.
func (s *socket) auditRefused(c wsCommand, why string) {
	e := store.AuditEntry{By: s.who.Name, Outcome: store.AuditRefused, Error: why}
	switch {
	case c.KillCron != nil:
		e.Action, e.Job = store.AuditKill, *c.KillCron
	case c.KillMachine != nil:
		e.Action, e.Job, e.RunID, e.Machine = store.AuditKill, c.KillMachine.Cron, c.KillMachine.JobInstance, c.KillMachine.Machine
	case c.Run != nil:
		e.Action, e.Job = store.AuditRun, *c.Run
	default:
		return
	}
	s.api.audit.Record(s.ctx, e)
}

// killMachine checks that the run belongs to the job the UI named before
// killing, so a stale page cannot kill a machine of another job's run.
func (s *socket) killMachine(k wsKillMachine) ([]string, error) {
	if k.JobInstance == "" || k.Machine == "" {
		return nil, errorf(http.StatusBadRequest, CodeBadRequest, "killMachine needs cron, machine and job_instance.")
	}
	run, err := s.api.store.GetRun(s.ctx, k.JobInstance)
	if err != nil {
		return nil, runErr(k.JobInstance, err)
	}
	if k.Cron != "" && run.Job != k.Cron {
		return nil, errorf(http.StatusBadRequest, CodeBadRequest, "Run %q belongs to job %q, not %q.", k.JobInstance, run.Job, k.Cron)
	}
	ids, err := s.api.control.Kill(s.ctx, control.KillRequest{RunID: k.JobInstance, Machine: k.Machine, By: s.who.Name})
	return ids, machineErr(k.JobInstance, k.Machine, err)
}
