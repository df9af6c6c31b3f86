package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/target"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

const wait = 10 * time.Second

// scripted is a load generator whose answers the test gives: it hands
// over each connection and each request line it reads.
type scripted struct {
	t     *testing.T
	sock  string
	l     net.Listener
	conns chan *scriptedConn
}

type scriptedConn struct {
	t    *testing.T
	nc   net.Conn
	reqs chan request
	raw  chan []byte
	wmu  sync.Mutex
}

func newScripted(t *testing.T) *scripted {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "lg.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := &scripted{t: t, sock: sock, l: l, conns: make(chan *scriptedConn, 16)}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			c := &scriptedConn{t: t, nc: nc, reqs: make(chan request, 1024), raw: make(chan []byte, 1024)}
			t.Cleanup(func() { nc.Close() })
			s.conns <- c
			wg.Go(func() {
				defer close(c.reqs)
				sc := bufio.NewScanner(nc)
				for sc.Scan() {
					var r request
					if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
						t.Errorf("plugin sent a line that is not JSON: %q", sc.Bytes())
						return
					}
					c.raw <- bytes.Clone(sc.Bytes())
					c.reqs <- r
				}
			})
		}
	})
	return s
}

func (s *scripted) conn() *scriptedConn {
	s.t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(wait):
		s.t.Fatalf("the plugin did not connect within %s", wait)
		return nil
	}
}

func (c *scriptedConn) next() request {
	c.t.Helper()
	select {
	case r, ok := <-c.reqs:
		if !ok {
			c.t.Fatalf("the plugin closed the connection")
		}
		<-c.raw
		return r
	case <-time.After(wait):
		c.t.Fatalf("no request within %s", wait)
		return request{}
	}
}

func (c *scriptedConn) answer(r reply) {
	c.t.Helper()
	b, _ := json.Marshal(r)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.nc.Write(append(b, '\n')); err != nil {
		c.t.Fatalf("answer: %v", err)
	}
}

// configured returns a sim target on the scripted load generator, logging
// into log.
func configured(t *testing.T, sock string, log *lockedWriter) *sim {
	t.Helper()
	s := &sim{log: hclog.New(&hclog.LoggerOptions{Output: log, Level: hclog.Trace, JSONFormat: true})}
	if err := s.Configure(context.Background(), []byte(`{"loadgen":"unix:`+sock+`"}`)); err != nil {
		t.Fatal(err)
	}
	return s
}

// lockedWriter is a log sink the test reads while the plugin writes.
type lockedWriter struct {
	mu sync.Mutex
	w  bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func dispatchReq(machine string) target.DispatchRequest {
	run := "run-" + machine
	return target.DispatchRequest{Job: "j", RunID: run, Machine: machine, Protocol: 2, Args: []byte(`{"machines":3}`),
		WrapperPath: "/opt/wrapper",
		Env: map[string]string{wire.EnvWebSocketURL: "ws://127.0.0.1:1/ws", wire.EnvJobInstance: run,
			wire.EnvMachineID: machine, wire.EnvToken: "secret-token-" + machine}}
}

type result struct {
	res target.DispatchResult
	err error
}

func goDispatch(ctx context.Context, s *sim, req target.DispatchRequest) <-chan result {
	ch := make(chan result, 1)
	go func() {
		res, err := s.Dispatch(ctx, req)
		ch <- result{res, err}
	}()
	return ch
}

func await(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(wait):
		t.Fatalf("Dispatch did not return within %s", wait)
		return result{}
	}
}

// TestRequestLine: a dispatch is one line holding the whole request, the
// environment included, under the protocol's field names.
func TestRequestLine(t *testing.T) {
	lg := newScripted(t)
	s := configured(t, lg.sock, &lockedWriter{})
	req := dispatchReq("m1")
	done := goDispatch(context.Background(), s, req)
	c := lg.conn()
	var line []byte
	select {
	case line = <-c.raw:
	case <-time.After(wait):
		t.Fatal("no request line")
	}
	var got map[string]any
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatal(err)
	}
	id := <-c.reqs
	c.answer(reply{ID: id.ID, OK: true, Detail: "detached pid=7"})
	if r := await(t, done); r.err != nil || r.res.Detail != "detached pid=7" {
		t.Fatalf("Dispatch = %+v, %v", r.res, r.err)
	}
	env := map[string]any{}
	for k, v := range req.Env {
		env[k] = v
	}
	want := map[string]any{"id": float64(id.ID), "op": "dispatch", "job": "j", "run_id": "run-m1", "machine": "m1",
		"protocol": float64(2), "wrapper": "/opt/wrapper", "args": map[string]any{"machines": float64(3)}, "env": env}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("request line %s,\nwant %v", line, want)
	}
}

// TestRepliesFindTheirDispatch: many dispatches share the connection and
// each gets its own reply, whatever order the replies come in.
func TestRepliesFindTheirDispatch(t *testing.T) {
	lg := newScripted(t)
	s := configured(t, lg.sock, &lockedWriter{})
	const n = 50
	results := make([]<-chan result, n)
	for i := range n {
		results[i] = goDispatch(context.Background(), s, dispatchReq("m"+string(rune('A'+i))))
	}
	c := lg.conn()
	var reqs []request
	for range n {
		reqs = append(reqs, c.next())
	}
	for i := n - 1; i >= 0; i-- {
		c.answer(reply{ID: reqs[i].ID, OK: true, Detail: "for " + reqs[i].Machine})
	}
	for i := range n {
		r := await(t, results[i])
		if want := "for m" + string(rune('A'+i)); r.err != nil || r.res.Detail != want {
			t.Errorf("dispatch %d: %+v %v, want %q", i, r.res, r.err, want)
		}
	}
	select {
	case <-lg.conns:
		t.Errorf("the plugin opened a second connection for concurrent dispatches")
	default:
	}
}

// TestRefusalIsAnError: a refusal is Dispatch's error, with the load
// generator's reason and never the token, in the error or the log.
func TestRefusalIsAnError(t *testing.T) {
	lg := newScripted(t)
	var log lockedWriter
	s := configured(t, lg.sock, &log)
	req := dispatchReq("m1")
	token := req.Env[wire.EnvToken]
	done := goDispatch(context.Background(), s, req)
	c := lg.conn()
	r := c.next()
	c.answer(reply{ID: r.ID, Error: "no room for " + token + " today"})
	res := await(t, done)
	if res.err == nil || !strings.Contains(res.err.Error(), "no room for") || !strings.Contains(res.err.Error(), "run-m1") {
		t.Fatalf("Dispatch error %v, want the refusal's reason and the run", res.err)
	}
	if errors.Is(res.err, target.ErrUnreachable) {
		t.Errorf("a refusal is marked unreachable: the load generator was reached")
	}
	if strings.Contains(res.err.Error(), token) || strings.Contains(log.String(), token) {
		t.Errorf("the token leaked: error %q, log %q", res.err, log.String())
	}
}

// TestReconnects: a connection that drops fails the dispatch waiting on
// it (its outcome is unknown); the next dispatch dials again.
func TestReconnects(t *testing.T) {
	lg := newScripted(t)
	s := configured(t, lg.sock, &lockedWriter{})
	done := goDispatch(context.Background(), s, dispatchReq("m1"))
	c := lg.conn()
	c.next()
	c.nc.Close()
	if r := await(t, done); r.err == nil || !strings.Contains(r.err.Error(), "lost before its reply") {
		t.Fatalf("Dispatch over a dropped connection: %v", r.err)
	}
	done = goDispatch(context.Background(), s, dispatchReq("m2"))
	c2 := lg.conn()
	r := c2.next()
	c2.answer(reply{ID: r.ID, OK: true, Detail: "again"})
	if res := await(t, done); res.err != nil || res.res.Detail != "again" {
		t.Fatalf("Dispatch after reconnecting: %+v %v", res.res, res.err)
	}
}

// TestUnreachable: no load generator listening is ErrUnreachable, which
// the core records as an error on the machine.
func TestUnreachable(t *testing.T) {
	s := configured(t, filepath.Join(t.TempDir(), "nobody.sock"), &lockedWriter{})
	_, err := s.Dispatch(context.Background(), dispatchReq("m1"))
	if !errors.Is(err, target.ErrUnreachable) {
		t.Fatalf("Dispatch with no load generator: %v, want ErrUnreachable", err)
	}
}

// TestCancel: a cancelled dispatch returns context.Canceled at once and
// tells the load generator, by id.
func TestCancel(t *testing.T) {
	lg := newScripted(t)
	s := configured(t, lg.sock, &lockedWriter{})
	ctx, cancel := context.WithCancel(context.Background())
	done := goDispatch(ctx, s, dispatchReq("m1"))
	c := lg.conn()
	r := c.next()
	cancel()
	if res := await(t, done); !errors.Is(res.err, context.Canceled) {
		t.Fatalf("cancelled Dispatch: %v", res.err)
	}
	if got := c.next(); got.Op != opCancel || got.ID != r.ID {
		t.Fatalf("after the cancel the plugin sent %+v, want cancel of %d", got, r.ID)
	}
	// A late reply to the cancelled dispatch harms nobody.
	c.answer(reply{ID: r.ID, OK: true})
	done = goDispatch(context.Background(), s, dispatchReq("m2"))
	r2 := c.next()
	c.answer(reply{ID: r2.ID, OK: true, Detail: "fine"})
	if res := await(t, done); res.err != nil || res.res.Detail != "fine" {
		t.Fatalf("next Dispatch: %+v %v", res.res, res.err)
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		args    string
		want    []string
		wantErr string
	}{
		{args: `{"machines": 3}`, want: []string{"sim-00001", "sim-00002", "sim-00003"}},
		{args: `{"names": ["a", "b"]}`, want: []string{"a", "b"}},
		{args: `{"machines": 1, "names": ["web1"]}`, want: []string{"sim-00001", "web1"}},
		{args: `{}`, wantErr: "names no machine"},
		{args: `{"machines": 0}`, wantErr: "names no machine"},
		{args: `{"machines": -1}`, wantErr: "want 0 to"},
		{args: `{"machines": 2000000}`, wantErr: "want 0 to"},
		{args: `{"machines": "3"}`, wantErr: "machines = N"},
		{args: `{"names": ["a", "a"]}`, wantErr: "named twice"},
		{args: `{"machines": 1, "names": ["sim-00001"]}`, wantErr: "named twice"},
		{args: `{"names": [""]}`, wantErr: "empty name"},
		{args: `{"hosts": 3}`, wantErr: "unknown field"},
	}
	s := &sim{log: hclog.NewNullLogger()}
	for _, tc := range tests {
		got, err := s.Resolve(context.Background(), target.ResolveRequest{Job: "j", Args: []byte(tc.args)})
		switch {
		case tc.wantErr == "" && (err != nil || !reflect.DeepEqual(got, tc.want)):
			t.Errorf("Resolve(%s) = %q, %v; want %q", tc.args, got, err, tc.want)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("Resolve(%s) = %q, %v; want an error with %q", tc.args, got, err, tc.wantErr)
		}
	}
}

func TestConfigure(t *testing.T) {
	tests := []struct {
		config string
		ok     bool
	}{
		{`{"loadgen": "unix:/run/lg.sock"}`, true},
		{`{"loadgen": "127.0.0.1:7000"}`, true},
		{`{"loadgen": "tcp:127.0.0.1:7000"}`, true},
		{`{}`, false},
		{`{"loadgen": ""}`, false},
		{`{"loadgen": "unix:"}`, false},
		{`{"loadgen": "localhost"}`, false},
		{`{"loadgen": "unix:/x", "wrapper": "/y"}`, false},
	}
	for _, tc := range tests {
		err := (&sim{log: hclog.NewNullLogger()}).Configure(context.Background(), []byte(tc.config))
		if (err == nil) != tc.ok {
			t.Errorf("Configure(%s) = %v, want ok %v", tc.config, err, tc.ok)
		}
	}
}
