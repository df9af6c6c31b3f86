package hub_test

import (
	"context"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/saltpeter/saltpeter/core/events"
	"github.com/saltpeter/saltpeter/core/killq"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

func TestV2FullRun(t *testing.T) {
	h := newHarness(t, opts{})
	h.expect(exp{run: "r1", machine: "web1"})
	c := h.dial("r1", "web1")

	ack := c.connect()
	if ack.Protocol != 2 || ack.Session == "" || ack.NextSeq == nil || *ack.NextSeq != 0 {
		t.Fatalf("connect ack = %+v, want protocol 2, a session, next_seq 0", ack)
	}
	if ack.Spec == nil || !reflect.DeepEqual(*ack.Spec, testSpec) {
		t.Fatalf("spec = %+v, want %+v", ack.Spec, testSpec)
	}
	if m := h.machine("r1", "web1"); m.Status != store.StatusRunning || m.Protocol != 2 || m.ConnectedAt.IsZero() {
		t.Fatalf("after connect: %+v, want running protocol 2", m)
	}

	c.start(4242)
	m := h.machine("r1", "web1")
	if m.PID != 4242 || m.WrapperVersion != "2.0.0-test" || m.StartedAt.IsZero() {
		t.Fatalf("after start: %+v", m)
	}

	invalid := []byte{'a', 0xff, 0xfe, 'b', '\n'}
	binary := []byte{0, 0x80, 'x', 0xc3}
	c.out(0, wire.StreamStdout, []byte("hello\n"))
	c.ackOutput(0)
	c.out(1, wire.StreamStderr, invalid) // travels as data_b64
	c.ackOutput(1)
	c.outBinary(2, wire.StreamStdout, binary)
	c.ackOutput(2)
	c.outBinary(3, wire.StreamSystem, []byte("[note]\n"))
	c.ackOutput(3)
	if got := c.sync(); got != 3 {
		t.Fatalf("sync last_seq %d, want 3", got)
	}
	h.awaitEvent(func(e events.Event) bool {
		return e.Kind == events.Output && e.RunID == "r1" && e.Machine == "web1" && e.Job == "backup"
	})

	c.complete(0, wire.ReasonExit)
	if f := h.awaitFinal("r1", "web1"); f.status != store.StatusSucceeded {
		t.Fatalf("OnFinal status %s, want succeeded", f.status)
	}
	m = h.machine("r1", "web1")
	if m.Status != store.StatusSucceeded || ptrInt(m.ExitCode) != "0" || m.Reason != wire.ReasonExit || m.FinishedAt.IsZero() {
		t.Fatalf("after complete: %+v", m)
	}
	want := map[string]string{
		"":                "hello\n" + string(invalid) + string(binary) + "[note]\n",
		wire.StreamStdout: "hello\n" + string(binary),
		wire.StreamStderr: string(invalid),
		wire.StreamSystem: "[note]\n",
	}
	for stream, w := range want {
		if got := h.output("r1", "web1", stream); got != w {
			t.Errorf("stream %q: stored %q, want %q", stream, got, w)
		}
	}
	if h.hub.Busy("r1") {
		t.Errorf("Busy after the only machine completed")
	}
}

func TestOutputOrdering(t *testing.T) {
	h := newHarness(t, opts{})
	h.expect(exp{run: "r1", machine: "m"})
	c := h.dial("r1", "m")
	c.connect()
	steps := []struct {
		name   string
		seq    int64
		binary bool
		data   string
		nack   int64 // expected_seq of a nack; -1: an ack
	}{
		{"first", 0, false, "a", -1},
		{"duplicate json", 0, false, "X", -1},
		{"gap", 2, false, "c", 1},
		{"fill", 1, true, "b", -1},
		{"duplicate binary", 1, true, "Y", -1},
		{"after gap", 2, false, "c", -1},
		{"far ahead", 99, true, "Z", 3},
	}
	for _, st := range steps {
		if st.binary {
			c.outBinary(st.seq, wire.StreamStdout, []byte(st.data))
		} else {
			c.out(st.seq, wire.StreamStdout, []byte(st.data))
		}
		f := c.next()
		switch {
		case st.nack < 0:
			if f.Type != wire.TypeAck || f.AckType != wire.TypeOutput || f.Seq == nil || *f.Seq != st.seq {
				t.Fatalf("%s: got %+v, want ack of %d", st.name, f, st.seq)
			}
		default:
			if f.Type != wire.TypeNack || f.NackType != wire.NackOutOfOrder || f.ExpectedSeq == nil ||
				*f.ExpectedSeq != st.nack || f.ReceivedSeq == nil || *f.ReceivedSeq != st.seq {
				t.Fatalf("%s: got %+v, want nack expected %d received %d", st.name, f, st.nack, st.seq)
			}
		}
	}
	if got := h.output("r1", "m", ""); got != "abc" {
		t.Fatalf("stored %q, want abc", got)
	}
	if got := c.sync(); got != 2 {
		t.Fatalf("last_seq %d, want 2", got)
	}
}

func TestResume(t *testing.T) {
	h := newHarness(t, opts{})
	h.expect(exp{run: "r1", machine: "m"})
	c := h.dial("r1", "m")
	session := c.connect().Session
	for i := range int64(3) {
		c.out(i, wire.StreamStdout, []byte{'0' + byte(i)})
		c.ackOutput(i)
	}
	c.ws.Close() // the connection drops

	c2 := h.dial("r1", "m")
	ack := c2.resume(session)
	if ack.NextSeq == nil || *ack.NextSeq != 3 || ack.Session == "" || ack.Spec == nil {
		t.Fatalf("resume ack %+v, want next_seq 3, a session and the spec", ack)
	}
	// The wrapper re-sends what it had not seen acked, from next_seq on.
	c2.out(3, wire.StreamStdout, []byte("3"))
	c2.ackOutput(3)
	// The new session works as well.
	c2.ws.Close()
	c3 := h.dial("r1", "m")
	if ack := c3.resume(ack.Session); *ack.NextSeq != 4 {
		t.Fatalf("second resume next_seq %d, want 4", *ack.NextSeq)
	}

	// A restarted core (same store and secret, no expectation) rebuilds
	// the machine from the store.
	h2 := newHarness(t, opts{store: h.store})
	c4 := h2.dial("r1", "m")
	ack = c4.resume(session)
	if *ack.NextSeq != 4 || ack.Spec == nil || ack.Spec.Command != testSpec.Command || ack.Spec.Env["PGHOST"] != "db1" {
		t.Fatalf("resume at a restarted core: %+v", ack)
	}
	c4.complete(0, wire.ReasonExit)
	if f := h2.awaitFinal("r1", "m"); f.status != store.StatusSucceeded {
		t.Fatalf("status %s", f.status)
	}
	if got := h.output("r1", "m", ""); got != "0123" {
		t.Fatalf("stored %q, want 0123", got)
	}
	// The old connection at the first core is refused now: the machine is final.
	c5 := h.dial("r1", "m")
	f := c5.frame(wire.TypeConnect)
	f.Protocol, f.Session, f.Resume = 2, session, true
	c5.send(f)
	c5.errorCode(wire.CodeUnauthorized)
	c5.closed()
}

func TestNewerConnectionReplacesOld(t *testing.T) {
	h := newHarness(t, opts{})
	h.expect(exp{run: "r1", machine: "m"})
	old := h.dial("r1", "m")
	session := old.connect().Session
	nc := h.dial("r1", "m")
	nc.resume(session)
	old.closed()
	nc.out(0, wire.StreamStdout, []byte("x"))
	nc.ackOutput(0)
}

func TestConnectRefused(t *testing.T) {
	otherSecret, _ := newTokens(t, 7)
	cases := []struct {
		name   string
		legacy bool
		// frame builds what the client sends first; h.expect made r1/m
		// (protocol 2) and r2/m.
		frame func(h *harness, c *client) (int, []byte)
	}{
		{"forged token", false, func(h *harness, c *client) (int, []byte) {
			f := c.frame(wire.TypeConnect)
			f.Protocol, f.Token = 2, otherSecret.Bootstrap("r1", "m")
			return text(f)
		}},
		{"token of another run", false, func(h *harness, c *client) (int, []byte) {
			f := c.frame(wire.TypeConnect)
			f.Protocol, f.Token = 2, h.token("r2", "m")
			return text(f)
		}},
		{"token of another machine", false, func(h *harness, c *client) (int, []byte) {
			f := c.frame(wire.TypeConnect)
			f.Protocol, f.Token = 2, h.token("r1", "other")
			return text(f)
		}},
		{"garbage token", false, func(h *harness, c *client) (int, []byte) {
			f := c.frame(wire.TypeConnect)
			f.Protocol, f.Token = 2, "garbage"
			return text(f)
		}},
		{"session of another run", false, func(h *harness, c *client) (int, []byte) {
			f := c.frame(wire.TypeConnect)
			f.Protocol, f.Resume, f.Session = 2, true, h.tokens.NewSession("r2", "m")
			return text(f)
		}},
		{"bootstrap token as session", false, func(h *harness, c *client) (int, []byte) {
			f := c.frame(wire.TypeConnect)
			f.Protocol, f.Resume, f.Session = 2, true, h.token("r1", "m")
			return text(f)
		}},
		{"v2 frame before connect", false, func(h *harness, c *client) (int, []byte) {
			f := c.frame(wire.TypeOutput)
			f.Seq, f.Stream, f.Data = wire.Int64(0), "stdout", "x"
			return text(f)
		}},
		{"v2 heartbeat before connect, legacy on", true, func(h *harness, c *client) (int, []byte) {
			return text(c.frame(wire.TypeHeartbeat))
		}},
		{"binary before connect", true, func(h *harness, c *client) (int, []byte) {
			b, _ := wire.EncodeBinaryOutput("stdout", 0, []byte("x"))
			return websocket.BinaryMessage, b
		}},
		{"v1 connect, legacy off", false, func(h *harness, c *client) (int, []byte) {
			return text(c.frame(wire.TypeConnect))
		}},
		{"v1 connect for a protocol 2 job, legacy on", true, func(h *harness, c *client) (int, []byte) {
			return text(c.frame(wire.TypeConnect))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, opts{legacy: tc.legacy})
			h.expect(exp{run: "r1", machine: "m"})
			h.expect(exp{run: "r2", machine: "m"})
			c := h.dial("r1", "m")
			c.sendRaw(tc.frame(h, c))
			c.errorCode(wire.CodeUnauthorized)
			c.closed()
			if m := h.machine("r1", "m"); m.Status != store.StatusPending {
				t.Errorf("machine %s after a refused connect, want pending", m.Status)
			}
			// The rightful wrapper still connects.
			h.dial("r1", "m").connect()
		})
	}
}

// TestBootstrapSingleUse: a bootstrap token is spent once its wrapper
// started the job, which shows it holds the connect ack.
func TestBootstrapSingleUse(t *testing.T) {
	h := newHarness(t, opts{})
	h.expect(exp{run: "r1", machine: "m"})
	first := h.dial("r1", "m")
	first.connect()
	first.start(42)
	c := h.dial("r1", "m")
	f := c.frame(wire.TypeConnect)
	f.Protocol, f.Token = 2, h.token("r1", "m")
	c.send(f)
	c.errorCode(wire.CodeUnauthorized)
	c.closed()
	// The rightful connection is untouched.
	first.send(first.frame(wire.TypeHeartbeat))
	first.complete(0, "")
	if got := h.awaitFinal("r1", "m"); got.status != store.StatusSucceeded {
		t.Fatalf("machine %s after a refused replay, want succeeded", got.status)
	}
}

// TestBootstrapRetryAfterLostAck: a wrapper that gave up waiting for its
// connect ack (a core acking late under load) connects again with the
// same bootstrap token, and is let in: the machine is not lost for a
// frame that did not arrive. The newer connection replaces the older.
func TestBootstrapRetryAfterLostAck(t *testing.T) {
	h := newHarness(t, opts{})
	h.expect(exp{run: "r1", machine: "m"})
	first := h.dial("r1", "m")
	first.connect() // the ack the wrapper is taken not to have seen
	second := h.dial("r1", "m")
	ack := second.connect()
	if ack.Session == "" {
		t.Fatalf("retried connect acked without a session: %+v", ack)
	}
	first.closed()
	second.start(42)
	second.complete(0, "")
	if got := h.awaitFinal("r1", "m"); got.status != store.StatusSucceeded {
		t.Fatalf("machine %s, want succeeded", got.status)
	}
}

func text(f wire.Frame) (int, []byte) {
	b, _ := wire.Encode(f)
	return websocket.TextMessage, b
}

func TestV1Run(t *testing.T) {
	h := newHarness(t, opts{legacy: true})
	h.expect(exp{run: "job_1700000000", machine: "legacy1", protocol: 1})
	c := h.dial("job_1700000000", "legacy1")
	c.send(c.frame(wire.TypeConnect))
	ack := c.ackOf(wire.TypeConnect)
	if ack.Protocol != 0 || ack.Session != "" || ack.Spec != nil {
		t.Fatalf("v1 connect ack %+v carries v2 fields", ack)
	}
	c.start(99)
	c.out(0, wire.StreamStdout, []byte("one\n"))
	c.ackOutput(0)
	c.ws.Close()

	// A v1 wrapper does not repeat connect: its first frame binds.
	c2 := h.dial("job_1700000000", "legacy1")
	c2.out(1, wire.StreamStderr, []byte("two\n"))
	c2.ackOutput(1)
	c2.send(c2.frame(wire.TypeHeartbeat))
	if got := c2.sync(); got != 1 {
		t.Fatalf("last_seq %d, want 1", got)
	}
	c2.ws.Close()
	// A reconnect whose first frame is a sync_request binds as well and
	// must not read -1.
	c3 := h.dial("job_1700000000", "legacy1")
	if got := c3.sync(); got != 1 {
		t.Fatalf("last_seq on reconnect %d, want 1", got)
	}
	c3.complete(0, "")
	if f := h.awaitFinal("job_1700000000", "legacy1"); f.status != store.StatusSucceeded {
		t.Fatalf("status %s", f.status)
	}
	m := h.machine("job_1700000000", "legacy1")
	if m.Protocol != 1 || m.PID != 99 || ptrInt(m.ExitCode) != "0" {
		t.Fatalf("machine %+v", m)
	}
	if got := h.output("job_1700000000", "legacy1", ""); got != "one\ntwo\n" {
		t.Fatalf("output %q", got)
	}
	// A repeated complete after a reconnect is acked without change.
	c4 := h.dial("job_1700000000", "legacy1")
	c4.complete(1, "")
	if m := h.machine("job_1700000000", "legacy1"); m.Status != store.StatusSucceeded {
		t.Fatalf("repeated complete changed the result: %+v", m)
	}
	// A run nobody knows.
	c5 := h.dial("nope", "legacy1")
	f := c5.frame(wire.TypeComplete)
	f.Retcode = wire.Int(0)
	c5.send(f)
	c5.errorCode(wire.CodeJobNotFound)
}

func TestCompleteStatus(t *testing.T) {
	cases := []struct {
		name       string
		protocol   int
		code       int
		reason     string
		signalName string
		kill       bool          // a kill was sent first
		elapse     time.Duration // clock moves before complete (timeout 1m)
		want       string
	}{
		{"v2 exit 0", 2, 0, wire.ReasonExit, "", false, 0, store.StatusSucceeded},
		{"v2 exit 143 by itself", 2, 143, wire.ReasonExit, "", false, 0, store.StatusFailed},
		{"v2 exit 1", 2, 1, wire.ReasonExit, "", false, 0, store.StatusFailed},
		{"v2 signal", 2, 139, wire.ReasonSignal, "SIGSEGV", false, 0, store.StatusFailed},
		{"v2 killed", 2, 143, wire.ReasonKilled, "", true, 0, store.StatusKilled},
		{"v2 timeout", 2, 124, wire.ReasonTimeout, "", false, 0, store.StatusTimeout},
		{"v2 no output timeout", 2, 124, wire.ReasonNoOutputTimeout, "", false, 0, store.StatusTimeout},
		{"v1 exit 0", 1, 0, "", "", false, 0, store.StatusSucceeded},
		{"v1 exit 143 without kill", 1, 143, "", "", false, 0, store.StatusFailed},
		{"v1 after a kill", 1, 143, "", "", true, 0, store.StatusKilled},
		{"v1 past its timeout", 1, 124, "", "", false, 2 * time.Minute, store.StatusTimeout},
		{"v1 before its timeout", 1, 124, "", "", false, 30 * time.Second, store.StatusFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{t: t0}
			h := newHarness(t, opts{legacy: true, clock: clock, hb: time.Hour})
			h.expect(exp{run: "r1", machine: "m", protocol: tc.protocol, timeout: time.Minute})
			c := h.dial("r1", "m")
			if tc.protocol == 2 {
				c.connect()
			} else {
				c.send(c.frame(wire.TypeConnect))
				c.ackOf(wire.TypeConnect)
			}
			c.start(1)
			if tc.kill {
				h.kills.Push(killq.Request{Kind: killq.Kill, RunID: "r1", By: "test"})
				c.await("kill", func(f wire.Frame) bool { return f.Type == wire.TypeKill })
			}
			clock.Advance(tc.elapse)
			f := c.frame(wire.TypeComplete)
			f.Retcode, f.Reason, f.SignalName = wire.Int(tc.code), tc.reason, tc.signalName
			c.send(f)
			c.ackOf(wire.TypeComplete)
			h.awaitFinal("r1", "m")
			m := h.machine("r1", "m")
			if m.Status != tc.want || ptrInt(m.ExitCode) != ptrInt(&tc.code) || m.SignalName != tc.signalName {
				t.Fatalf("machine %s exit %s signal %q, want %s exit %d signal %q",
					m.Status, ptrInt(m.ExitCode), m.SignalName, tc.want, tc.code, tc.signalName)
			}
		})
	}
}

func TestKillResentUntilKilled(t *testing.T) {
	h := newHarness(t, opts{})
	h.expect(exp{run: "r1", machine: "m"})
	c := h.dial("r1", "m")
	c.connect()
	c.start(1)
	h.kills.Push(killq.Request{Kind: killq.Kill, RunID: "r1", Signal: "SIGINT", Grace: 2 * time.Second, By: "alice"})
	var kills []wire.Frame
	for len(kills) < 3 { // the wrapper does not answer at first
		f := c.next()
		if f.Type != wire.TypeKill {
			t.Fatalf("got %+v, want kill", f)
		}
		kills = append(kills, f)
	}
	for _, k := range kills {
		if k.Signal != "SIGINT" || k.Grace != "2s" || k.JobInstance != "r1" || k.Machine != "m" {
			t.Fatalf("kill frame %+v, want signal SIGINT grace 2s for r1/m", k)
		}
	}
	f := c.frame(wire.TypeKilled)
	f.Signal, f.PIDCount = "SIGINT", wire.Int(3)
	c.send(f)
	c.complete(143, wire.ReasonKilled)
	if fin := h.awaitFinal("r1", "m"); fin.status != store.StatusKilled {
		t.Fatalf("status %s, want killed", fin.status)
	}
	if h.hub.Busy("r1") {
		t.Fatalf("busy after the killed machine completed")
	}
}

func TestKillWaitsForReconnect(t *testing.T) {
	h := newHarness(t, opts{})
	h.expect(exp{run: "r1", machine: "m"})
	h.expect(exp{run: "r1", machine: "other"})
	c := h.dial("r1", "m")
	session := c.connect().Session
	c.start(1)
	c.ws.Close()
	h.kills.Push(killq.Request{Kind: killq.Kill, RunID: "r1", Machine: "m", By: "alice"})

	c2 := h.dial("r1", "m")
	c2.resume(session)
	k := c2.await("kill", func(f wire.Frame) bool { return f.Type == wire.TypeKill })
	if k.Signal != "" || k.Grace != "" {
		t.Fatalf("kill %+v carries overrides nobody asked for", k)
	}
	c2.send(c2.frame(wire.TypeKilled))
	c2.complete(143, wire.ReasonKilled)
	if f := h.awaitFinal("r1", "m"); f.status != store.StatusKilled {
		t.Fatalf("status %s", f.status)
	}
	if !h.hub.Busy("r1") {
		t.Fatalf("run not busy while 'other' is pending")
	}
}

func TestSignal(t *testing.T) {
	h := newHarness(t, opts{})
	h.expect(exp{run: "r1", machine: "m"})
	c := h.dial("r1", "m")
	c.connect()
	h.kills.Push(killq.Request{Kind: killq.Signal, RunID: "r1", Signal: "stop", By: "alice"})
	h.kills.Push(killq.Request{Kind: killq.Signal, RunID: "r1", Signal: "SIGKILL", By: "alice"}) // refused
	for n := 0; n < 2; {
		f := c.next()
		if f.Type != wire.TypeSignal || f.Signal != "SIGSTOP" {
			t.Fatalf("got %+v, want signal SIGSTOP", f)
		}
		n++
	}
	k := c.frame(wire.TypeKilled)
	k.Signal = "SIGSTOP"
	c.send(k)
	h.kills.Push(killq.Request{Kind: killq.Signal, RunID: "r1", Signal: "SIGCONT", By: "alice"})
	c.await("SIGCONT", func(f wire.Frame) bool { return f.Type == wire.TypeSignal && f.Signal == "SIGCONT" })
	for _, s := range c.signals {
		if s != "SIGSTOP" {
			t.Fatalf("unexpected signal %s (SIGKILL must never be sent)", s)
		}
	}
	c.complete(0, wire.ReasonExit)
}

func TestHeartbeatLostThenLateComplete(t *testing.T) {
	clock := &fakeClock{t: t0}
	h := newHarness(t, opts{clock: clock, hb: time.Minute})
	h.expect(exp{run: "r1", machine: "m"}) // no timeout: a lost machine stays busy
	c := h.dial("r1", "m")
	session := c.connect().Session
	c.start(1)
	c.send(c.frame(wire.TypeHeartbeat))
	if got := c.sync(); got != -1 {
		t.Fatalf("last_seq %d", got)
	}
	clock.Advance(2 * time.Minute)
	if f := h.awaitFinal("r1", "m"); f.status != store.StatusLost {
		t.Fatalf("status %s, want lost", f.status)
	}
	m := h.machine("r1", "m")
	if m.Status != store.StatusLost || ptrInt(m.ExitCode) != "253" {
		t.Fatalf("machine %+v, want lost/253", m)
	}
	c.closed() // the silent connection is dropped
	if !h.hub.Busy("r1") {
		t.Fatalf("a lost machine without timeout must count as running")
	}
	// The wrapper comes back and completes: recorded beside the 253.
	c2 := h.dial("r1", "m")
	c2.resume(session)
	c2.complete(0, wire.ReasonExit)
	h.awaitEvent(func(e events.Event) bool {
		return e.Kind == events.MachineUpdated && e.Status == store.StatusLost && e.Machine == "m"
	})
	m = h.machine("r1", "m")
	if m.Status != store.StatusLost || ptrInt(m.ExitCode) != "253" || ptrInt(m.LateExitCode) != "0" || m.LateReason != wire.ReasonExit {
		t.Fatalf("machine %+v, want lost/253 with late 0/exit", m)
	}
	if h.hub.Busy("r1") {
		t.Fatalf("busy after the late complete")
	}
	select {
	case f := <-h.finals:
		t.Fatalf("OnFinal called again for the late complete: %+v", f)
	default:
	}
}

func TestBusyLost(t *testing.T) {
	cases := []struct {
		name    string
		timeout time.Duration
		after   time.Duration // since start, clock at the check
		want    bool
	}{
		{"no timeout", 0, 48 * time.Hour, true},
		{"timeout not passed", time.Hour, 30 * time.Minute, true},
		{"timeout passed", time.Hour, 61 * time.Minute, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{t: t0}
			h := newHarness(t, opts{clock: clock, hb: time.Minute})
			h.expect(exp{run: "r1", machine: "m", timeout: tc.timeout})
			if !h.hub.Busy("r1") {
				t.Fatalf("a pending machine must count as running")
			}
			c := h.dial("r1", "m")
			c.connect()
			c.start(1)
			clock.Advance(2 * time.Minute)
			h.awaitFinal("r1", "m")
			clock.Advance(tc.after - 2*time.Minute)
			if got := h.hub.Busy("r1"); got != tc.want {
				t.Fatalf("Busy = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestConnectDeadline(t *testing.T) {
	clock := &fakeClock{t: t0}
	h := newHarness(t, opts{clock: clock})
	h.expect(exp{run: "r1", machine: "m", deadline: t0.Add(time.Minute)})
	clock.Advance(61 * time.Second)
	if f := h.awaitFinal("r1", "m"); f.status != store.StatusNotStarted {
		t.Fatalf("status %s", f.status)
	}
	m := h.machine("r1", "m")
	if ptrInt(m.ExitCode) != "254" || !strings.HasPrefix(m.Reason, "wrapper did not connect within") {
		t.Fatalf("machine %+v", m)
	}
	if h.hub.Busy("r1") {
		t.Fatalf("busy after not_started")
	}
	c := h.dial("r1", "m")
	f := c.frame(wire.TypeConnect)
	f.Protocol, f.Token = 2, h.token("r1", "m")
	c.send(f)
	c.errorCode(wire.CodeUnauthorized)
	c.closed()
}

func TestFail(t *testing.T) {
	h := newHarness(t, opts{})
	h.expect(exp{run: "r1", machine: "m"})
	ctx := context.Background()
	if err := h.hub.Fail(ctx, "r1", "m", store.StatusNotStarted, wire.ExitNotStarted, "ssh: no route"); err != nil {
		t.Fatal(err)
	}
	if f := h.awaitFinal("r1", "m"); f.status != store.StatusNotStarted {
		t.Fatalf("status %s", f.status)
	}
	if err := h.hub.Fail(ctx, "r1", "m", store.StatusError, 255, "again"); err != nil {
		t.Fatalf("second Fail: %v", err)
	}
	if m := h.machine("r1", "m"); m.Status != store.StatusNotStarted || m.Reason != "ssh: no route" {
		t.Fatalf("machine %+v", m)
	}
	if h.hub.Busy("r1") {
		t.Fatal("busy after Fail")
	}
}

func TestErrorFrame(t *testing.T) {
	h := newHarness(t, opts{})
	h.expect(exp{run: "r1", machine: "m"})
	c := h.dial("r1", "m")
	c.connect()
	f := c.frame(wire.TypeError)
	f.Error = "cannot setuid: operation not permitted"
	c.send(f)
	if fin := h.awaitFinal("r1", "m"); fin.status != store.StatusError {
		t.Fatalf("status %s", fin.status)
	}
	m := h.machine("r1", "m")
	if ptrInt(m.ExitCode) != "255" || m.Error != f.Error {
		t.Fatalf("machine %+v", m)
	}
}

func TestFrameErrors(t *testing.T) {
	cases := []struct {
		name  string
		bound bool
		send  func(c *client)
		code  string
		stays bool
	}{
		{"too large", true, func(c *client) {
			c.sendRaw(websocket.TextMessage, make([]byte, wire.MaxFrameBytes+1))
		}, wire.CodeTooLarge, false},
		{"too large binary before connect", false, func(c *client) {
			c.sendRaw(websocket.BinaryMessage, make([]byte, wire.MaxFrameBytes+1))
		}, wire.CodeTooLarge, false},
		{"unknown type", true, func(c *client) {
			c.send(c.frame("telemetry"))
		}, wire.CodeUnknownType, true},
		{"unknown type before connect", false, func(c *client) {
			c.send(c.frame("telemetry"))
		}, wire.CodeUnknownType, true},
		{"malformed", true, func(c *client) {
			c.sendRaw(websocket.TextMessage, []byte(`{"type":"output",`))
		}, wire.CodeBadFrame, true},
		{"malformed before connect", false, func(c *client) {
			c.sendRaw(websocket.TextMessage, []byte(`not json`))
		}, wire.CodeBadFrame, false},
		{"output without seq", true, func(c *client) {
			f := c.frame(wire.TypeOutput)
			f.Stream, f.Data = "stdout", "x"
			c.send(f)
		}, wire.CodeBadFrame, true},
		{"wrong run", true, func(c *client) {
			f := c.frame(wire.TypeOutput)
			f.JobInstance, f.Seq, f.Stream, f.Data = "r2", wire.Int64(0), "stdout", "x"
			c.send(f)
		}, wire.CodeWrongRun, true},
		{"wrong machine", true, func(c *client) {
			f := c.frame(wire.TypeComplete)
			f.Machine, f.Retcode, f.Reason = "other", wire.Int(0), "exit"
			c.send(f)
		}, wire.CodeWrongRun, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A frame of megabytes takes seconds to cross under the race
			// detector on a busy machine: no liveness timer may race it.
			h := newHarness(t, opts{hb: time.Minute, bindTimeout: time.Minute})
			h.expect(exp{run: "r1", machine: "m"})
			h.expect(exp{run: "r2", machine: "m"})
			c := h.dial("r1", "m")
			if tc.bound {
				c.connect()
			}
			tc.send(c)
			c.errorCode(tc.code)
			if !tc.stays {
				c.closed()
				return
			}
			if !tc.bound {
				c.connect()
			}
			// The connection still works and nothing was disturbed.
			c.out(0, wire.StreamStdout, []byte("ok"))
			c.ackOutput(0)
			for _, run := range []string{"r1", "r2"} {
				if m := h.machine(run, "m"); store.Final(m.Status) || m.NextSeq != map[string]int64{"r1": 1, "r2": 0}[run] {
					t.Fatalf("%s disturbed: %+v", run, m)
				}
			}
		})
	}
}

func TestSlowReaderDropped(t *testing.T) {
	// No heartbeat timeout to end the connection instead.
	h := newHarness(t, opts{hb: time.Hour, sendBuffer: 4, writeTimeout: 500 * time.Millisecond, slowReaders: true})
	h.expect(exp{run: "slow", machine: "m"})
	h.expect(exp{run: "fast", machine: "m"})

	slow := h.dial("slow", "m")
	ws := slow.ws
	slow.connect()

	// The slow client floods output and never reads an ack again, until
	// the core drops it.
	var sent atomic.Int64
	dropped := make(chan error, 1)
	go func() {
		payload := make([]byte, 1024)
		for seq := int64(0); ; seq++ {
			b, _ := wire.EncodeBinaryOutput("stdout", seq, payload)
			// Only a guard against hanging, longer than the wait below.
			_ = ws.SetWriteDeadline(time.Now().Add(4 * wait))
			if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
				dropped <- err
				return
			}
			sent.Add(1)
		}
	}()

	// Meanwhile another wrapper goes through a whole run.
	fast := h.dial("fast", "m")
	fast.connect()
	fast.start(1)
	for i := range int64(50) {
		fast.out(i, wire.StreamStdout, []byte("x"))
		fast.ackOutput(i)
	}
	fast.complete(0, wire.ReasonExit)
	h.awaitFinal("fast", "m")

	select {
	case <-dropped:
	case <-time.After(3 * wait):
		t.Fatalf("the slow client could still send after %v (%d frames sent)", 3*wait, sent.Load())
	}
	// Its acks wait for room in its send buffer, behind writes its
	// socket no longer takes: the write timeout drops it.
	if logs := h.logs.String(); !strings.Contains(logs, "the wrapper read nothing for the write timeout") &&
		!strings.Contains(logs, "write failed") {
		t.Fatalf("the slow client was not dropped for reading nothing (%d frames sent)", sent.Load())
	}
}

func TestExpectTwice(t *testing.T) {
	h := newHarness(t, opts{})
	h.expect(exp{run: "r1", machine: "m"})
	err := h.hub.Expect(context.Background(), hubExpectation("r1", "m"))
	if err == nil {
		t.Fatal("a second Expect for the same machine succeeded")
	}
}

// The metrics' counts follow the machines and connections as they change,
// not a periodic sweep (a second apart with this heartbeat timeout).
func TestCountsFollowMachinesAndConnections(t *testing.T) {
	h := newHarness(t, opts{hb: time.Hour})
	counts := func(wantRunning, wantConnected int64) {
		t.Helper()
		if r, c := h.hub.Counts(); r != wantRunning || c != wantConnected {
			t.Fatalf("Counts() = %d running, %d connected; want %d, %d", r, c, wantRunning, wantConnected)
		}
	}
	h.expect(exp{run: "r1", machine: "a"})
	h.expect(exp{run: "r1", machine: "b"})
	counts(0, 0)
	a := h.dial("r1", "a")
	a.connect()
	counts(1, 1)
	b := h.dial("r1", "b")
	b.connect()
	b.start(1)
	counts(2, 2)
	a.start(1)
	a.complete(0, wire.ReasonExit)
	h.awaitFinal("r1", "a")
	counts(1, 2)
	a.ws.Close()
	// The hub learns of a closed connection from its reader, when it
	// next reads: no event reaches the test, so it looks until then.
	deadline := time.Now().Add(10 * time.Second)
	for _, c := h.hub.Counts(); c != 1; _, c = h.hub.Counts() {
		if time.Now().After(deadline) {
			t.Fatalf("still %d connected 10s after one of two closed", c)
		}
		time.Sleep(5 * time.Millisecond)
	}
	counts(1, 1)
}
