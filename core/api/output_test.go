package api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/events"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// outputRun stores run r1 with a running db1 and a pending db2, and output
// on db1 interleaving the three streams, invalid UTF-8 included.
func outputRun(e *env) {
	e.t.Helper()
	e.addRun(store.Run{ID: "r1", Job: "backup", Status: store.StatusRunning, StartedAt: t0,
		Machines: []store.Machine{{Machine: "db1", Status: store.StatusRunning}, {Machine: "db2"}}})
	e.appendOutput("r1", "db1", "stdout", []byte("out1\n"))
	e.appendOutput("r1", "db1", "stderr", []byte("err\xff\xfe1\n"))
	e.appendOutput("r1", "db1", "system", []byte("[wrapper] started\n"))
	e.appendOutput("r1", "db1", "stdout", []byte("out2 \xc3\x28\n"))
}

func TestOutput(t *testing.T) {
	e := newEnv(t)
	outputRun(e)
	all := "out1\nerr\xff\xfe1\n[wrapper] started\nout2 \xc3\x28\n"
	tests := []struct {
		name  string
		query string
		want  string
		total string
	}{
		{"every stream in seq order", "", all, "38"},
		{"offset", "?offset=5", all[5:], "38"},
		{"offset inside a bad rune", "?offset=9", all[9:], "38"},
		{"stdout", "?stream=stdout", "out1\nout2 \xc3\x28\n", "13"},
		{"stdout from offset", "?stream=stdout&offset=7", "t2 \xc3\x28\n", "13"},
		{"stderr", "?stream=stderr", "err\xff\xfe1\n", "7"},
		{"system", "?stream=system", "[wrapper] started\n", "18"},
		{"offset past the end", "?offset=1000", "", "38"},
		{"follow=0", "?follow=0", all, "38"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(req{Method: "GET", Path: "/api/v1/runs/r1/machines/db1/output" + tt.query})
			wantStatus(t, r, 200)
			if ct := r.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			if !bytes.Equal(r.Body, []byte(tt.want)) {
				t.Errorf("body = %q, want %q", r.Body, tt.want)
			}
			if got := r.Header.Get("X-Output-Total"); got != tt.total {
				t.Errorf("X-Output-Total = %q, want %q", got, tt.total)
			}
		})
	}
	t.Run("no output yet", func(t *testing.T) {
		r := e.do(req{Method: "GET", Path: "/api/v1/runs/r1/machines/db2/output"})
		wantStatus(t, r, 200)
		if len(r.Body) != 0 {
			t.Errorf("body = %q, want empty", r.Body)
		}
	})

	errs := []struct {
		name   string
		path   string
		status int
		code   string
	}{
		{"unknown run", "/api/v1/runs/nope/machines/db1/output", 404, CodeRunNotFound},
		{"unknown machine", "/api/v1/runs/r1/machines/db9/output", 404, CodeMachineNotFound},
		{"unknown machine, following", "/api/v1/runs/r1/machines/db9/output?follow=1", 404, CodeMachineNotFound},
		{"bad stream", "/api/v1/runs/r1/machines/db1/output?stream=stdin", 400, CodeBadRequest},
		{"negative offset", "/api/v1/runs/r1/machines/db1/output?offset=-1", 400, CodeBadRequest},
		{"bad offset", "/api/v1/runs/r1/machines/db1/output?offset=x", 400, CodeBadRequest},
		{"bad follow", "/api/v1/runs/r1/machines/db1/output?follow=yes", 400, CodeBadRequest},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, e.do(req{Method: "GET", Path: tt.path}), tt.status, tt.code)
		})
	}
}

// TestOutputDropped: a machine past its output cap shows the dropped
// middle as one marker; the trailer says where the dropped bytes end, so
// a client continues there and not at its offset plus the body's length.
func TestOutputDropped(t *testing.T) {
	e := newEnv(t)
	e.addRun(store.Run{ID: "r1", Job: "backup", Status: store.StatusRunning, StartedAt: t0,
		Machines: []store.Machine{{Machine: "db1", Status: store.StatusRunning, OutputCap: 100}}})
	var chunks []string
	for i := range 8 {
		chunks = append(chunks, string(bytes.Repeat([]byte{byte('a' + i)}, 20)))
		e.appendOutput("r1", "db1", "stdout", []byte(chunks[i]))
	}
	// A cap of 100 keeps the chunks starting before byte 50 and a tail:
	// 3 chunks, then 60 bytes dropped, then 2.
	want := chunks[0] + chunks[1] + chunks[2] + string(store.DroppedMarker(60)) + chunks[6] + chunks[7]
	for _, tt := range []struct{ name, query, want, next string }{
		{"whole", "", want, "160"},
		{"from inside the hole", "?offset=70", string(store.DroppedMarker(50)) + chunks[6] + chunks[7], "160"},
		{"following a final machine", "?follow=1", want, "160"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.query == "?follow=1" {
				if err := e.store.UpdateMachine(context.Background(), "r1", "db1", store.MachineUpdate{Status: ptr(store.StatusSucceeded)}); err != nil {
					t.Fatal(err)
				}
			}
			resp := e.openStream("/api/v1/runs/r1/machines/db1/output" + tt.query)
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != tt.want {
				t.Errorf("body = %q\nwant   %q", body, tt.want)
			}
			if got := resp.Header.Get("X-Output-Total"); got != "160" {
				t.Errorf("X-Output-Total = %q, want 160", got)
			}
			if got := resp.Trailer.Get("X-Output-Next"); got != tt.next {
				t.Errorf("trailer X-Output-Next = %q, want %q", got, tt.next)
			}
		})
	}
	r := e.do(req{Method: "GET", Path: "/api/v1/runs/r1"})
	wantStatus(t, r, 200)
	for _, field := range []string{`"output_bytes":160`, `"output_dropped_bytes":60`} {
		if !bytes.Contains(r.Body, []byte(field)) {
			t.Errorf("run JSON lacks %s: %s", field, r.Body)
		}
	}
}

// openStream starts a request and returns its response with the body still
// open; the request ends with the test.
func (e *env) openStream(path string) *http.Response {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	e.t.Cleanup(cancel)
	hr, err := http.NewRequestWithContext(ctx, "GET", e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := e.srv.Client().Do(hr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// readN reads exactly len(want) bytes and compares them.
func readN(t *testing.T, r io.Reader, want string) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatalf("reading %q: got %q, %v", want, got, err)
	}
	if string(got) != want {
		t.Fatalf("read %q, want %q", got, want)
	}
}

func TestOutputFollow(t *testing.T) {
	e := newEnv(t)
	outputRun(e)
	resp := e.openStream("/api/v1/runs/r1/machines/db1/output?follow=1&stream=stdout&offset=5")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// What was stored before the request.
	readN(t, resp.Body, "out2 \xc3\x28\n")

	// Output stored after: another stream first, which must not show.
	e.appendOutput("r1", "db1", "stderr", []byte("not me"))
	e.appendOutput("r1", "db1", "stdout", []byte("live \xff\n"))
	e.bus.Publish(events.Event{Kind: events.Output, Job: "backup", RunID: "r1", Machine: "db1"})
	readN(t, resp.Body, "live \xff\n")

	// Events of other runs and machines wake nobody, but do no harm.
	e.bus.Publish(events.Event{Kind: events.Output, RunID: "r2", Machine: "db1"})
	e.bus.Publish(events.Event{Kind: events.Output, RunID: "r1", Machine: "db2"})

	// The last output and the final status land together; the stream
	// sends the output and ends.
	e.appendOutput("r1", "db1", "stdout", []byte("done\n"))
	if err := e.store.UpdateMachine(context.Background(), "r1", "db1", store.MachineUpdate{Status: ptr(store.StatusSucceeded), ExitCode: ptr(0)}); err != nil {
		t.Fatal(err)
	}
	e.bus.Publish(events.Event{Kind: events.MachineUpdated, Job: "backup", RunID: "r1", Machine: "db1", Status: store.StatusSucceeded})
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("stream did not end cleanly: %v", err)
	}
	if string(rest) != "done\n" {
		t.Fatalf("rest = %q, want %q", rest, "done\n")
	}
}

func TestOutputFollowFinalMachineEnds(t *testing.T) {
	e := newEnv(t)
	e.addRun(store.Run{ID: "r1", Job: "backup", Status: store.StatusFailed,
		Machines: []store.Machine{{Machine: "db1", Status: store.StatusFailed}}})
	e.appendOutput("r1", "db1", "stdout", []byte("all of it"))
	resp := e.openStream("/api/v1/runs/r1/machines/db1/output?follow=1")
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != "all of it" {
		t.Fatalf("got %q, %v; want the whole output and the end", got, err)
	}
}

func TestOutputFollowClientGoes(t *testing.T) {
	e := newEnv(t)
	outputRun(e)
	ctx, cancel := context.WithCancel(context.Background())
	hr, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/v1/runs/r1/machines/db2/output?follow=1", nil)
	resp, err := e.srv.Client().Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	// The server's Close waits for every handler; it returns only if the
	// follower noticed the client leave.
	closed := make(chan struct{})
	go func() { e.srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("follower still running after the client left")
	}
}

func TestAwaitOutputResubscribesWhenLost(t *testing.T) {
	a := New(Config{Events: events.New()})
	sub, cancel := a.bus.Subscribe(1)
	defer func() { cancel() }()
	// Nobody reads: the second event is lost.
	a.bus.Publish(events.Event{Kind: events.JobUpdated, Job: "x"})
	a.bus.Publish(events.Event{Kind: events.JobUpdated, Job: "y"})
	old := sub
	if !a.awaitOutput(context.Background(), &sub, &cancel, "r1", "db1") {
		t.Fatal("awaitOutput gave up")
	}
	if sub == old {
		t.Fatal("subscription not replaced after loss")
	}
	select {
	case <-sub.Lost:
		t.Fatal("new subscription is already lost")
	default:
	}
}
