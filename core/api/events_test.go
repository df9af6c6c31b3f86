package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/saltpeter/saltpeter/core/events"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// dial opens the events socket with the given headers.
func (e *env) dial(h http.Header) (*websocket.Conn, *http.Response, error) {
	e.t.Helper()
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/api/v1/events"
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial(url, h)
	if err == nil {
		e.t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

// socketFor dials and reads the hello.
func (e *env) socketFor(h http.Header) *websocket.Conn {
	e.t.Helper()
	c, resp, err := e.dial(h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		e.t.Fatalf("dial: %v (status %d)", err, status)
	}
	if m := readMsg(e.t, c); m["kind"] != "hello" {
		e.t.Fatalf("first message = %v, want hello", m)
	}
	return c
}

func readMsg(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var m map[string]any
	if err := c.ReadJSON(&m); err != nil {
		t.Fatalf("read from socket: %v", err)
	}
	return m
}

// command sends a command and returns its reply.
func command(t *testing.T, c *websocket.Conn, cmd string) map[string]any {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
		t.Fatal(err)
	}
	m := readMsg(t, c)
	if m["kind"] != "reply" {
		t.Fatalf("after %s got %v, want a reply", cmd, m)
	}
	return m
}

func TestEventsRefused(t *testing.T) {
	tests := []struct {
		name   string
		tokens bool
		header http.Header
		status int
	}{
		{"foreign origin", false, http.Header{"Origin": {"http://evil.example"}}, 403},
		{"foreign origin with token", true, http.Header{"Origin": {"http://evil.example"}, "Authorization": {"Bearer " + opSecret}}, 403},
		{"old UI, tokens on", true, nil, 401},
		{"bad token", true, http.Header{"Authorization": {"Bearer nope"}}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if tt.tokens {
				e = newEnv(t, withTokens)
			}
			_, resp, err := e.dial(tt.header)
			if err == nil {
				t.Fatal("socket opened, want refused")
			}
			if resp == nil || resp.StatusCode != tt.status {
				t.Fatalf("dial error %v, response %v; want status %d", err, resp, tt.status)
			}
		})
	}
	t.Run("plain GET", func(t *testing.T) {
		e := newEnv(t)
		wantError(t, e.do(req{Method: "GET", Path: "/api/v1/events"}), 400, CodeBadRequest)
	})
}

func TestEventsAccepted(t *testing.T) {
	e := newEnv(t, withTokens)
	cookie := e.sessionCookie(readSecret)
	tests := []struct {
		name   string
		header func() http.Header
		who    string
	}{
		{"own origin and bearer", func() http.Header {
			return http.Header{"Origin": {e.srv.URL}, "Authorization": {"Bearer " + opSecret}}
		}, "deployer"},
		{"session cookie", func() http.Header {
			return http.Header{"Origin": {e.srv.URL}, "Cookie": {cookie.Name + "=" + cookie.Value}}
		}, "viewer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := e.dial(tt.header())
			if err != nil {
				t.Fatal(err)
			}
			if m := readMsg(t, c); m["kind"] != "hello" || m["name"] != tt.who {
				t.Errorf("hello = %v, want name %s", m, tt.who)
			}
		})
	}
}

func TestEventsCommands(t *testing.T) {
	e := newEnv(t, withTokens)
	e.ctl.killed = []string{"r7"}
	e.addRun(store.Run{ID: "r7", Job: "backup", Status: store.StatusRunning,
		Machines: []store.Machine{{Machine: "db1", Status: store.StatusRunning}}})
	op := e.socketFor(http.Header{"Authorization": {"Bearer " + opSecret}})
	ro := e.socketFor(http.Header{"Authorization": {"Bearer " + readSecret}})

	tests := []struct {
		name  string
		conn  *websocket.Conn
		cmd   string
		ok    bool
		code  string
		check func(t *testing.T, reply map[string]any)
	}{
		{"killCron", op, `{"killCron":"backup"}`, true, "", func(t *testing.T, reply map[string]any) {
			if c := e.ctl.Calls("Kill"); len(c) != 1 || c[0] != (call{Method: "Kill", Job: "backup", By: "deployer"}) {
				t.Errorf("Kill calls = %+v, want one for backup by deployer", c)
			}
			if !reflect.DeepEqual(reply["runs"], []any{"r7"}) {
				t.Errorf("reply runs = %v", reply["runs"])
			}
		}},
		{"killMachine", op, `{"killMachine":{"cron":"backup","machine":"db1","job_instance":"r7"}}`, true, "", func(t *testing.T, _ map[string]any) {
			c := e.ctl.Calls("Kill")
			if want := (call{Method: "Kill", RunID: "r7", Machine: "db1", By: "deployer"}); c[len(c)-1] != want {
				t.Errorf("Kill call = %+v, want %+v", c[len(c)-1], want)
			}
		}},
		{"killMachine of another job's run", op, `{"killMachine":{"cron":"manual","machine":"db1","job_instance":"r7"}}`, false, CodeBadRequest, nil},
		{"killMachine of an unknown run", op, `{"killMachine":{"cron":"backup","machine":"db1","job_instance":"r9"}}`, false, CodeRunNotFound, nil},
		{"run", op, `{"run":"backup"}`, true, "", func(t *testing.T, reply map[string]any) {
			if c := e.ctl.Calls("RunNow"); len(c) != 1 || c[0].By != "deployer" {
				t.Errorf("RunNow calls = %+v", c)
			}
			if reply["run_id"] != "run-new" {
				t.Errorf("reply = %v, want run_id", reply)
			}
		}},
		{"run unknown job", op, `{"run":"nope"}`, false, CodeJobNotFound, nil},
		{"read token may not kill", ro, `{"killCron":"backup"}`, false, CodeForbidden, nil},
		{"read token may not run", ro, `{"run":"backup"}`, false, CodeForbidden, nil},
		{"read token may subscribe", ro, `{"subscribe":"backup"}`, true, "", nil},
		{"subscribe unknown job", ro, `{"subscribe":"nope"}`, false, CodeJobNotFound, nil},
		{"garbage", op, `kill everything`, false, CodeBadJSON, nil},
		{"unknown command", op, `{"killAll":true}`, false, CodeBadJSON, nil},
		{"two commands", op, `{"run":"backup","killCron":"backup"}`, false, CodeBadRequest, nil},
		{"no command", op, `{}`, false, CodeBadRequest, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := command(t, tt.conn, tt.cmd)
			if reply["ok"] != tt.ok || (tt.code != "" && reply["code"] != tt.code) {
				t.Fatalf("reply = %v, want ok %v code %q", reply, tt.ok, tt.code)
			}
			if !tt.ok && reply["error"] == "" {
				t.Errorf("refusal without a sentence: %v", reply)
			}
			if tt.check != nil {
				tt.check(t, reply)
			}
		})
	}
	if n := len(e.ctl.Calls("Kill")); n != 2 {
		t.Errorf("%d Kill calls, want 2 (refused commands must not reach Control)", n)
	}
}

func TestEventsPushAndSubscribe(t *testing.T) {
	e := newEnv(t)
	e.addRun(store.Run{ID: "rb", Job: "backup", Machines: []store.Machine{{Machine: "db1"}}})
	e.addRun(store.Run{ID: "rm", Job: "manual", Machines: []store.Machine{{Machine: "db1"}}})
	c := e.socketFor(nil)

	// Changes reach every socket; output only once subscribed.
	e.bus.Publish(events.Event{Kind: events.Output, Job: "backup", RunID: "rb", Machine: "db1"})
	e.bus.Publish(events.Event{Kind: events.RunUpdated, Job: "backup", RunID: "rb", Status: "running"})
	if m := readMsg(t, c); m["kind"] != events.RunUpdated || m["run_id"] != "rb" || m["status"] != "running" {
		t.Fatalf("got %v, want the run_updated (output before subscribing must not come)", m)
	}

	if r := command(t, c, `{"subscribe":"backup"}`); r["ok"] != true {
		t.Fatalf("subscribe: %v", r)
	}
	// Output of another job first: it must not come through. The backup
	// event names no job, so the socket has to look the run up.
	e.bus.Publish(events.Event{Kind: events.Output, Job: "manual", RunID: "rm", Machine: "db1"})
	e.bus.Publish(events.Event{Kind: events.Output, RunID: "rm", Machine: "db1"})
	e.bus.Publish(events.Event{Kind: events.Output, RunID: "rb", Machine: "db1"})
	if m := readMsg(t, c); m["kind"] != events.Output || m["run_id"] != "rb" || m["machine"] != "db1" {
		t.Fatalf("got %v, want backup's output event", m)
	}

	if r := command(t, c, `{"unsubscribe":"backup"}`); r["ok"] != true {
		t.Fatalf("unsubscribe: %v", r)
	}
	e.bus.Publish(events.Event{Kind: events.Output, Job: "backup", RunID: "rb", Machine: "db1"})
	e.bus.Publish(events.Event{Kind: events.JobUpdated, Job: "backup"})
	if m := readMsg(t, c); m["kind"] != events.JobUpdated {
		t.Fatalf("got %v after unsubscribing, want the job_updated", m)
	}
}

func TestEventsSlowSocketDropped(t *testing.T) {
	a := New(Config{Events: events.New()})
	// A feed that has already lost events: the state a socket is in when
	// its client stopped reading and the buffer ran over.
	sub, unsubscribe := a.bus.Subscribe(1)
	t.Cleanup(unsubscribe)
	a.bus.Publish(events.Event{Kind: events.JobUpdated, Job: "x"})
	a.bus.Publish(events.Event{Kind: events.JobUpdated, Job: "y"})

	pumped := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := a.upgrader().Upgrade(w, r, nil)
		if err != nil {
			return
		}
		s := a.newSocket(context.Background(), conn, principal{Name: "local", Role: "operate"})
		go s.readPump()
		s.writePump(sub)
		close(pumped)
	}))
	t.Cleanup(srv.Close)
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 3 { // hello, maybe the one event, then the close
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err = c.ReadMessage()
		if err != nil {
			break
		}
	}
	if !websocket.IsCloseError(err, websocket.CloseTryAgainLater) {
		t.Fatalf("read error %v, want a close with code %d", err, websocket.CloseTryAgainLater)
	}
	select {
	case <-pumped:
	case <-time.After(10 * time.Second):
		t.Fatal("write pump still running after dropping the socket")
	}
}

func TestEventsHandlerForOldUI(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(e.api.EventsHandler())
	t.Cleanup(srv.Close)
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if m := readMsg(t, c); m["kind"] != "hello" || m["name"] != LocalName {
		t.Fatalf("hello = %v", m)
	}
	if r := command(t, c, `{"killCron":"backup"}`); r["ok"] != true {
		t.Fatalf("killCron: %v", r)
	}
	if k := e.ctl.Calls("Kill"); len(k) != 1 || k[0].By != LocalName {
		t.Errorf("Kill calls = %+v", k)
	}
}
