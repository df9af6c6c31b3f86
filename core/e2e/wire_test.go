package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// captureWrapper writes a stand-in wrapper program that records its
// dispatch environment to a file and says it detached, so a test can play
// the wrapper itself over the real socket. It returns the script's path
// and a function that waits for the recorded environment.
func captureWrapper(t *testing.T) (string, func() map[string]string) {
	t.Helper()
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	script := filepath.Join(dir, "wrapper.sh")
	body := fmt.Sprintf("#!/bin/sh\nenv > %s.tmp && mv %s.tmp %s\necho '%s pid='$$\n", envFile, envFile, envFile, wire.DetachedLine)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatalf("write wrapper script: %v", err)
	}
	return script, func() map[string]string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			f, err := os.Open(envFile)
			if err == nil {
				defer f.Close()
				env := map[string]string{}
				sc := bufio.NewScanner(f)
				for sc.Scan() {
					if k, v, ok := strings.Cut(sc.Text(), "="); ok {
						env[k] = v
					}
				}
				return env
			}
			if time.Now().After(deadline) {
				t.Fatalf("the stand-in wrapper was never started")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// wsConn is a test double of a wrapper's connection.
type wsConn struct {
	t *testing.T
	c *websocket.Conn
}

func dial(t *testing.T, url string) *wsConn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return &wsConn{t: t, c: c}
}

func (w *wsConn) send(f wire.Frame) {
	w.t.Helper()
	b, err := wire.Encode(f)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.c.WriteMessage(websocket.TextMessage, b); err != nil {
		w.t.Fatalf("send %s: %v", f.Type, err)
	}
}

// recv reads the next JSON frame, skipping heartbeat-free noise such as
// kill re-sends only when skip says so.
func (w *wsConn) recv() wire.Frame {
	w.t.Helper()
	_ = w.c.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, b, err := w.c.ReadMessage()
	if err != nil {
		w.t.Fatalf("read frame: %v", err)
	}
	f, err := wire.Decode(b)
	if err != nil {
		w.t.Fatalf("decode %q: %v", b, err)
	}
	return f
}

// refused expects an UNAUTHORIZED error frame and then a closed socket.
func (w *wsConn) refused(what string) {
	w.t.Helper()
	f := w.recv()
	if f.Type != wire.TypeError || f.Code != wire.CodeUnauthorized {
		w.t.Fatalf("%s: got %+v, want error UNAUTHORIZED", what, f)
	}
	_ = w.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := w.c.ReadMessage(); err == nil {
		w.t.Fatalf("%s: socket still open after UNAUTHORIZED", what)
	}
}

func TestWrapperCredentials(t *testing.T) {
	t.Parallel()
	script, env := captureWrapper(t)
	c := startCore(t, coreBlock("")+job("creds", "echo never run", fmt.Sprintf(`wrapper {
    path = %q
  }`, script)))
	id := c.runNow("creds")
	e := env()
	token, url, machine := e[wire.EnvToken], e[wire.EnvWebSocketURL], e[wire.EnvMachineID]
	if token == "" || e[wire.EnvJobInstance] != id || e[wire.EnvJobName] != "creds" {
		t.Fatalf("dispatch env lacks token or run: %v", e)
	}
	if _, leaked := e[wire.EnvCommand]; leaked {
		t.Fatalf("a v2 wrapper got the command in its environment: %v", e)
	}
	connect := func(tok string) wire.Frame {
		return wire.Frame{Type: wire.TypeConnect, Protocol: 2, Token: tok, Version: "test",
			JobName: "creds", JobInstance: id, Machine: machine}
	}

	forged := dial(t, url)
	forged.send(connect(token[:len(token)-2] + "xx"))
	forged.refused("forged token")

	other := dial(t, url)
	f := connect(token)
	f.Machine = "another-machine"
	other.send(f)
	other.refused("token for another machine")

	early := dial(t, url)
	early.send(wire.Frame{Type: wire.TypeOutput, JobInstance: id, Machine: machine, Seq: wire.Int64(0), Stream: "stdout", Data: "x", Protocol: 2})
	early.refused("v2 output before connect")

	good := dial(t, url)
	good.send(connect(token))
	ack := good.recv()
	if ack.Type != wire.TypeAck || ack.AckType != wire.TypeConnect || ack.Session == "" || ack.Spec == nil || ack.Spec.Command != "echo never run" {
		t.Fatalf("connect ack %+v", ack)
	}

	// The token is spent once its wrapper started (before, a connect
	// again with it is taken as a retry after a lost ack).
	good.send(wire.Frame{Type: wire.TypeStart, JobInstance: id, Machine: machine, PID: 4242, Version: "test"})
	if a := good.recv(); a.AckType != wire.TypeStart {
		t.Fatalf("start ack %+v", a)
	}
	reused := dial(t, url)
	reused.send(connect(token))
	reused.refused("reused bootstrap token")

	// The honest connection is undisturbed: finish the run on it.
	out := wire.Frame{Type: wire.TypeOutput, JobInstance: id, Machine: machine, Seq: wire.Int64(0), Stream: "stdout"}
	out.SetBytes([]byte("from a stand-in\n"))
	good.send(out)
	if a := good.recv(); a.AckType != wire.TypeOutput || a.Seq == nil || *a.Seq != 0 {
		t.Fatalf("output ack %+v", a)
	}
	good.send(wire.Frame{Type: wire.TypeComplete, JobInstance: id, Machine: machine, Retcode: wire.Int(0), Seq: wire.Int64(0), Reason: wire.ReasonExit})
	if a := good.recv(); a.AckType != wire.TypeComplete {
		t.Fatalf("complete ack %+v", a)
	}
	r := c.waitFinal(id, 10*time.Second)
	if r.Status != "succeeded" || c.output(id, machine, "") != "from a stand-in\n" {
		t.Fatalf("run %+v output %q", r, c.output(id, machine, ""))
	}
}

func TestV1RefusedWithoutLegacy(t *testing.T) {
	t.Parallel()
	script, env := captureWrapper(t)
	c := startCore(t, coreBlock("")+job("old", "true", fmt.Sprintf(`wrapper {
    path     = %q
    protocol = 1
  }`, script)))
	id := c.runNow("old")
	e := env()
	w := dial(t, e[wire.EnvWebSocketURL])
	w.send(wire.Frame{Type: wire.TypeConnect, JobName: "old", JobInstance: id, Machine: e[wire.EnvMachineID]})
	w.refused("v1 connect with legacy_wrappers off")
}

// TestV1WrapperWholeRun plays a v1 wrapper written from the spec: it sends
// connect once and, after a reconnect, goes on with output without
// repeating it.
func TestV1WrapperWholeRun(t *testing.T) {
	t.Parallel()
	script, env := captureWrapper(t)
	c := startCore(t, coreBlock("  legacy_wrappers = true")+job("old", "echo from v1", fmt.Sprintf(`wrapper {
    path     = %q
    protocol = 1
  }
  env     = { GREETING = "hi" }
  timeout = "90s"`, script)))
	id := c.runNow("old")
	e := env()
	if e[wire.EnvCommand] != "echo from v1" || e["GREETING"] != "hi" || e[wire.EnvTimeout] != "90" {
		t.Fatalf("v1 dispatch env lacks what v1 reads: %v", e)
	}
	if _, ok := e[wire.EnvToken]; ok {
		t.Fatalf("v1 wrapper got a token it cannot use: %v", e)
	}
	machine, url := e[wire.EnvMachineID], e[wire.EnvWebSocketURL]
	base := wire.Frame{JobName: "old", JobInstance: id, Machine: machine, Timestamp: time.Now().Format(time.RFC3339)}
	frame := func(typ string) wire.Frame { f := base; f.Type = typ; return f }

	w := dial(t, url)
	w.send(frame(wire.TypeConnect))
	if a := w.recv(); a.Type != wire.TypeAck || a.AckType != wire.TypeConnect {
		t.Fatalf("v1 connect ack %+v", a)
	}
	st := frame(wire.TypeStart)
	st.PID = 999
	w.send(st)
	if a := w.recv(); a.AckType != wire.TypeStart {
		t.Fatalf("start ack %+v", a)
	}
	o := frame(wire.TypeOutput)
	o.Seq, o.Stream, o.Data = wire.Int64(0), "stdout", "from v1\n"
	w.send(o)
	if a := w.recv(); a.AckType != wire.TypeOutput || *a.Seq != 0 {
		t.Fatalf("output ack %+v", a)
	}
	w.c.Close()

	// Reconnected: no connect, straight to output.
	w2 := dial(t, url)
	o2 := frame(wire.TypeOutput)
	o2.Seq, o2.Stream, o2.Data = wire.Int64(1), "stderr", "second\n"
	w2.send(o2)
	if a := w2.recv(); a.AckType != wire.TypeOutput || *a.Seq != 1 {
		t.Fatalf("output ack after reconnect %+v", a)
	}
	sr := frame(wire.TypeSyncRequest)
	sr.LastAckedSeq, sr.NextSeq = wire.Int64(1), wire.Int64(2)
	w2.send(sr)
	if a := w2.recv(); a.Type != wire.TypeSyncResponse || a.LastSeq == nil || *a.LastSeq != 1 {
		t.Fatalf("sync response %+v", a)
	}
	done := frame(wire.TypeComplete)
	done.Retcode, done.Seq = wire.Int(0), wire.Int64(1)
	w2.send(done)
	if a := w2.recv(); a.AckType != wire.TypeComplete {
		t.Fatalf("complete ack %+v", a)
	}
	r := c.waitFinal(id, 10*time.Second)
	if r.Status != "succeeded" || deref(r.Machines[0].ExitCode) != 0 {
		t.Fatalf("v1 run %+v", r)
	}
	if got := c.output(id, machine, ""); got != "from v1\nsecond\n" {
		t.Fatalf("v1 output %q", got)
	}
}
