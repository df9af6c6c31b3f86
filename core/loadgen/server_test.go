package loadgen

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

func spec(command string) wire.Spec {
	return wire.Spec{Command: command, Heartbeat: "5s", Kill: wire.KillPolicy{Signal: "SIGTERM", Grace: "5s"}}
}

// TestDispatchProtocol: each dispatch line gets one reply naming its id,
// accepted or refused with why (never with the token); cancel gets none.
func TestDispatchProtocol(t *testing.T) {
	h := newHarness(t, spec("sim duration=forever"), Config{})
	valid := h.request("m1")
	tests := []struct {
		name    string
		req     func() Request
		line    string // sent instead of req when set
		wantErr string // "" for accepted
	}{
		{name: "accepted", req: func() Request { return valid }},
		{name: "protocol 1", req: func() Request { r := h.request("m2"); r.Protocol = 1; return r }, wantErr: "protocol 2 wrappers only"},
		{name: "no token", req: func() Request { r := h.request("m3"); delete(r.Env, wire.EnvToken); return r }, wantErr: "no SP_TOKEN"},
		{name: "no url", req: func() Request {
			r := h.request("m4")
			delete(r.Env, wire.EnvWebSocketURL)
			delete(r.Env, wire.EnvWebSocketURLs)
			return r
		}, wantErr: "no SP_WEBSOCKET_URL"},
		{name: "no run", req: func() Request { r := h.request("m5"); delete(r.Env, wire.EnvJobInstance); return r }, wantErr: "no SP_JOB_INSTANCE"},
		{name: "unreadable CA", req: func() Request {
			r := h.request("m6")
			r.Env[wire.EnvCAFile] = "/nonexistent/ca.pem"
			return r
		}, wantErr: "SP_CA_FILE"},
		{name: "unknown op", req: func() Request { r := h.request("m7"); r.Op = "launch"; return r }, wantErr: `unknown op "launch"`},
		{name: "not JSON", line: `{"id": 9, "op": "dispatch", SP_TOKEN`, wantErr: "bad request line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want uint64
			var token string
			if tc.line != "" {
				h.cl.sendLine(tc.line)
			} else {
				req := tc.req()
				want, token = req.ID, req.Env[wire.EnvToken]
				h.cl.send(req)
			}
			r := h.cl.reply()
			if r.ID != want {
				t.Fatalf("reply names id %d, want %d", r.ID, want)
			}
			if tc.wantErr == "" {
				if !r.OK || !strings.HasPrefix(r.Detail, wire.DetachedLine) || r.Error != "" {
					t.Errorf("reply %+v, want accepted with the detach line", r)
				}
				return
			}
			if r.OK || !strings.Contains(r.Error, tc.wantErr) {
				t.Errorf("reply %+v, want refused with %q", r, tc.wantErr)
			}
			if token != "" && strings.Contains(r.Error, token) {
				t.Errorf("refusal holds the token: %q", r.Error)
			}
		})
	}

	// A cancel is not answered: the next reply is the next dispatch's.
	h.cl.send(Request{ID: valid.ID, Op: OpCancel})
	next := h.request("m8")
	if r := h.cl.do(next); !r.OK {
		t.Fatalf("dispatch after a cancel: %+v", r)
	}
	st := h.srv.Stats(false)
	if st.Dispatches != 2 || st.Refused != 7 {
		t.Errorf("stats count %d dispatches and %d refusals, want 2 and 7", st.Dispatches, st.Refused)
	}
}

// TestFakeJobs runs one machine per command against the fake core and
// checks what a wrapper owes: connect with the token, start with a pid,
// the output byte-exact in seq order, complete with the command's result
// and the last seq, only once all output is acked, then a clean close.
func TestFakeJobs(t *testing.T) {
	tests := []struct {
		command string
		timeout string
		code    int
		reason  string
		stream  string
		output  int64
		system  string // a note the system stream must hold
		minTime time.Duration
		errText string // error frame before complete (no start)
	}{
		{command: "sim", code: 0, reason: wire.ReasonExit},
		{command: "sim exit=0", code: 0, reason: wire.ReasonExit},
		{command: "sim exit=3 output=100000 chunk=4096", code: 3, reason: wire.ReasonExit, stream: wire.StreamStdout, output: 100000},
		{command: "sim output=10 stream=stderr", code: 0, reason: wire.ReasonExit, stream: wire.StreamStderr, output: 10},
		{command: "sim output=1m", code: 0, reason: wire.ReasonExit, stream: wire.StreamStdout, output: 1 << 20},
		{command: "sim exit=7 duration=150ms", code: 7, reason: wire.ReasonExit, minTime: 150 * time.Millisecond},
		{command: "sim duration=forever", timeout: "200ms", code: wire.ExitTimeout, reason: wire.ReasonTimeout,
			system: "[Job exceeded timeout of 200ms]", minTime: 200 * time.Millisecond},
		{command: "echo hello", code: wire.ExitError, errText: "not a sim command"},
	}
	for _, tc := range tests {
		t.Run(tc.command, func(t *testing.T) {
			sp := spec(tc.command)
			sp.Timeout = tc.timeout
			h := newHarness(t, sp, Config{Window: 4})
			req, cc := h.start("m1")
			if cc.connect.Token != req.Env[wire.EnvToken] || cc.connect.Protocol != 2 || cc.connect.Resume ||
				cc.connect.JobInstance != req.RunID || cc.connect.Machine != "m1" {
				t.Errorf("connect frame %+v", cc.connect)
			}
			var before []got
			if tc.errText == "" {
				start, b := cc.until(wire.TypeStart)
				before = b
				if start.PID <= 0 || start.Version != Version || len(before) != 0 {
					t.Errorf("start frame %+v after %s", start.Frame, describe(before))
				}
			}
			complete, rest := cc.until(wire.TypeComplete)
			// The job's clock starts after the ack was sent and stops
			// before complete arrived.
			took := complete.at.Sub(cc.ackedAt)
			before = append(before, rest...)
			var seqs []int64
			for _, g := range before {
				if g.binary {
					seqs = append(seqs, g.seq)
				}
				if !g.binary && g.Type == wire.TypeError && !strings.Contains(g.Error, tc.errText) {
					t.Errorf("error frame %q, want %q", g.Error, tc.errText)
				}
			}
			for i, s := range seqs {
				if s != int64(i) {
					t.Fatalf("output seqs %v, want 0, 1, ...", seqs)
				}
			}
			if complete.Retcode == nil || *complete.Retcode != tc.code || complete.Reason != tc.reason {
				t.Errorf("complete %+v, want %d %q", complete.Frame, tc.code, tc.reason)
			}
			if complete.Seq == nil || *complete.Seq != int64(len(seqs))-1 {
				t.Errorf("complete seq %v, want the last seq sent %d", complete.Seq, len(seqs)-1)
			}
			if took < tc.minTime {
				t.Errorf("complete after %s, before the job's %s", took, tc.minTime)
			}
			if tc.stream != "" {
				if got := h.core.output(req.RunID, "m1", tc.stream); !bytes.Equal(got, OutputPattern(tc.output)) {
					t.Errorf("stored %s: %d bytes, not the %d-byte pattern", tc.stream, len(got), tc.output)
				}
			}
			if sys := string(h.core.output(req.RunID, "m1", wire.StreamSystem)); !strings.Contains(sys, tc.system) {
				t.Errorf("system stream %q, want %q", sys, tc.system)
			}
			if after := cc.closed(); len(after) != 0 {
				t.Errorf("frames after complete: %s", describe(after))
			}
			st := h.awaitStats("the wrapper completed", func(s Stats) bool { return s.Completed == 1 })
			if st.Active != 0 || st.Connected != 0 || st.Failed != 0 {
				t.Errorf("stats after the run: %+v", st)
			}
			r := h.record(req.RunID, "m1")
			if r.Dispatches != 1 || r.Connects != 1 || r.ExitCode == nil || *r.ExitCode != tc.code || r.Reason != tc.reason {
				t.Errorf("record %+v", r)
			}
			ordered := []time.Time{r.DispatchedAt, r.ConnectedAt, r.CompleteSentAt, r.CompleteAckedAt}
			if tc.errText == "" {
				ordered = []time.Time{r.DispatchedAt, r.ConnectedAt, r.StartSentAt, r.CompleteSentAt, r.CompleteAckedAt}
			}
			for i := 1; i < len(ordered); i++ {
				if ordered[i].IsZero() || ordered[i].Before(ordered[i-1]) {
					t.Errorf("record times out of order: %+v", r)
					break
				}
			}
		})
	}
}

// TestKill: a kill frame is answered with killed, the user-request note
// and complete 143/killed: at once when the job honours the signal, after
// the grace (with a SIGKILL note) when it ignores it; the kill frame's
// signal and grace override the job's; a re-sent kill gets killed again.
func TestKill(t *testing.T) {
	// A job grace of an hour makes "the grace was waited for" and "it was
	// not" far apart, whatever the machine's load.
	tests := []struct {
		name         string
		command      string
		jobGrace     string
		kill         wire.Frame
		signal       string
		minGrace     time.Duration
		maxGrace     time.Duration
		sigkillNoted bool
	}{
		{name: "honour", command: "sim duration=forever term=honour output=100", jobGrace: "1h",
			kill: wire.Frame{Type: wire.TypeKill}, signal: "SIGTERM", maxGrace: wait / 2},
		{name: "ignore", command: "sim duration=forever term=ignore", jobGrace: "300ms",
			kill: wire.Frame{Type: wire.TypeKill}, signal: "SIGTERM", minGrace: 300 * time.Millisecond, sigkillNoted: true},
		{name: "override", command: "sim duration=forever term=ignore", jobGrace: "1h",
			kill: wire.Frame{Type: wire.TypeKill, Signal: "INT", Grace: "100ms"}, signal: "SIGINT",
			minGrace: 100 * time.Millisecond, maxGrace: wait / 2, sigkillNoted: true},
		{name: "ignored but ends within the grace", command: "sim duration=200ms term=ignore", jobGrace: "1h",
			kill: wire.Frame{Type: wire.TypeKill}, signal: "SIGTERM", maxGrace: wait / 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp := spec(tc.command)
			sp.Kill.Grace = tc.jobGrace
			h := newHarness(t, sp, Config{})
			req, cc := h.start("m1")
			cc.until(wire.TypeStart)
			sent := time.Now()
			cc.send(tc.kill)
			killed, _ := cc.until(wire.TypeKilled)
			if killed.Signal != tc.signal || killed.PIDCount == nil || *killed.PIDCount != 1 {
				t.Errorf("killed %+v, want %s on 1 process", killed.Frame, tc.signal)
			}
			if !tc.sigkillNoted {
				// The re-send the core makes until it sees killed.
				cc.send(tc.kill)
			}
			complete, _ := cc.until(wire.TypeComplete)
			took := time.Since(sent)
			if complete.Retcode == nil || *complete.Retcode != wire.ExitKilled || complete.Reason != wire.ReasonKilled {
				t.Errorf("complete %+v, want 143 killed", complete.Frame)
			}
			if took < tc.minGrace || (tc.maxGrace > 0 && took > tc.maxGrace) {
				t.Errorf("complete %s after the kill, want between %s and %s", took, tc.minGrace, tc.maxGrace)
			}
			sys := string(h.core.output(req.RunID, "m1", wire.StreamSystem))
			if !strings.Contains(sys, "[Job terminated by user request]") {
				t.Errorf("system stream %q lacks the termination note", sys)
			}
			if got := strings.Contains(sys, "killed with SIGKILL"); got != tc.sigkillNoted {
				t.Errorf("system stream %q: SIGKILL noted %v, want %v", sys, got, tc.sigkillNoted)
			}
			cc.closed()
			r := h.awaitStats("completed", func(s Stats) bool { return s.Completed == 1 })
			rec := h.record(req.RunID, "m1")
			if rec.KillAt.IsZero() || rec.CompleteSentAt.Before(rec.KillAt) || r.Failed != 0 {
				t.Errorf("record %+v", rec)
			}
		})
	}
}

// TestSignal: a signal command is carried out and answered with killed;
// a job that honours a terminating signal dies of it (128+n, reason exit:
// the wrapper sent it); others go on.
func TestSignal(t *testing.T) {
	tests := []struct {
		command, signal string
		count           int
		ends            int // exit code; 0: runs on
	}{
		{"sim duration=forever", "SIGHUP", 1, 129},
		{"sim duration=forever", "USR1", 1, 138},
		{"sim duration=forever", "SIGCONT", 1, 0},
		{"sim duration=forever term=ignore", "SIGHUP", 1, 0},
		{"sim duration=forever", "SIGKILL", 0, 0},
		{"sim duration=forever", "SIGNOPE", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.command+" "+tc.signal, func(t *testing.T) {
			h := newHarness(t, spec(tc.command), Config{})
			_, cc := h.start("m1")
			cc.until(wire.TypeStart)
			cc.send(wire.Frame{Type: wire.TypeSignal, Signal: tc.signal})
			killed, _ := cc.until(wire.TypeKilled)
			if killed.PIDCount == nil || *killed.PIDCount != tc.count {
				t.Errorf("killed %+v, want a count of %d", killed.Frame, tc.count)
			}
			if tc.ends != 0 {
				complete, _ := cc.until(wire.TypeComplete)
				if *complete.Retcode != tc.ends || complete.Reason != wire.ReasonExit {
					t.Errorf("complete %+v, want %d exit", complete.Frame, tc.ends)
				}
				return
			}
			// Still running: a kill ends it.
			cc.send(wire.Frame{Type: wire.TypeKill, Grace: "10ms"})
			complete, _ := cc.until(wire.TypeComplete)
			if *complete.Retcode != wire.ExitKilled {
				t.Errorf("complete %+v after the kill, want 143", complete.Frame)
			}
		})
	}
}

// TestHeartbeats: an idle fake job heartbeats (and pings) at the spec's
// interval, each heartbeat naming its run and machine.
func TestHeartbeats(t *testing.T) {
	sp := spec("sim duration=forever")
	sp.Heartbeat = "50ms"
	h := newHarness(t, sp, Config{})
	req, cc := h.start("m1")
	cc.until(wire.TypeStart)
	first, _ := cc.until(wire.TypeHeartbeat)
	var last got
	for range 3 {
		last, _ = cc.until(wire.TypeHeartbeat)
	}
	if first.JobInstance != req.RunID || first.Machine != "m1" || first.JobName != "job" {
		t.Errorf("heartbeat %+v does not name its run and machine", first.Frame)
	}
	if ts, err := time.Parse(time.RFC3339Nano, last.Timestamp); err != nil || ts.IsZero() {
		t.Errorf("heartbeat timestamp %q: %v", last.Timestamp, err)
	}
	if gap := last.at.Sub(first.at); gap < 3*40*time.Millisecond {
		t.Errorf("4 heartbeats within %s: faster than every 50ms", gap)
	}
	select {
	case <-cc.pings:
	case <-time.After(wait):
		t.Errorf("no ping with the heartbeats")
	}
}

// TestResume: a connection dropped in the middle of the output is resumed
// with the session; the wrapper sends again from the core's next_seq, and
// the stored output is byte-exact.
func TestResume(t *testing.T) {
	h := newHarness(t, spec("sim output=100000 chunk=1000 exit=4"), Config{Window: 8})
	h.core.dropAt = 37
	req, cc := h.start("m1")
	cc.closed()
	cc2 := h.core.nextConn()
	if !cc2.connect.Resume || cc2.connect.Session != "session-"+req.RunID+"/m1" || cc2.connect.Token != "" {
		t.Errorf("reconnect frame %+v, want resume with the session and no token", cc2.connect)
	}
	complete, before := cc2.until(wire.TypeComplete)
	if len(before) == 0 || !before[0].binary || before[0].seq != 38 {
		t.Errorf("after resuming at next_seq 38 the wrapper sent %s first", describe(before[:min(1, len(before))]))
	}
	if *complete.Retcode != 4 || *complete.Seq != 99 {
		t.Errorf("complete %+v", complete.Frame)
	}
	if got := h.core.output(req.RunID, "m1", wire.StreamStdout); !bytes.Equal(got, OutputPattern(100000)) {
		t.Errorf("stored %d bytes, not the pattern", len(got))
	}
	st := h.awaitStats("completed", func(s Stats) bool { return s.Completed == 1 })
	if r := h.record(req.RunID, "m1"); r.Connects != 2 {
		t.Errorf("record counts %d connects, want 2", r.Connects)
	}
	if st.ConnectAcks != 2 {
		t.Errorf("the counters count %d connect acks, want 2 (the connect and the resume)", st.ConnectAcks)
	}
}

// TestRefusedGivesUp: a core's UNAUTHORIZED ends the fake wrapper at once,
// without retrying, and its record says why.
func TestRefusedGivesUp(t *testing.T) {
	h := newHarness(t, spec("sim"), Config{})
	h.core.refuse = wire.CodeUnauthorized
	req, _ := h.start("m1")
	st := h.awaitStats("failed", func(s Stats) bool { return s.Failed == 1 })
	if st.Active != 0 || st.Completed != 0 {
		t.Errorf("stats %+v", st)
	}
	r := h.record(req.RunID, "m1")
	if !strings.Contains(r.Error, wire.CodeUnauthorized) || r.Connects != 0 {
		t.Errorf("record %+v, want the refusal and no connect", r)
	}
	select {
	case cc := <-h.core.conns:
		t.Errorf("the wrapper connected again after the refusal: %+v", cc.connect)
	default:
	}
}

// TestSources: fake wrappers dial from the configured addresses in turn.
func TestSources(t *testing.T) {
	sources, err := ParseSources("127.0.0.2-127.0.0.4")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, spec("sim duration=forever"), Config{Sources: sources})
	seen := map[netip.Addr]int{}
	for i := range 6 {
		_, cc := h.start("m" + string(rune('a'+i)))
		host, _, err := net.SplitHostPort(cc.remote)
		if err != nil {
			t.Fatal(err)
		}
		seen[netip.MustParseAddr(host)]++
	}
	for _, s := range sources {
		if seen[s] != 2 {
			t.Errorf("connections by source: %v, want 2 from each of %v", seen, sources)
			break
		}
	}
}

// TestServeStopsWrappers: cancelling Serve closes the fake wrappers'
// connections and the listener, and returns once they are gone.
func TestServeStopsWrappers(t *testing.T) {
	h := newHarness(t, spec("sim duration=forever"), Config{})
	var conns []*coreConn
	for _, m := range []string{"a", "b", "c"} {
		_, cc := h.start(m)
		conns = append(conns, cc)
	}
	h.awaitStats("3 connected", func(s Stats) bool { return s.Connected == 3 })
	if err := h.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	for _, cc := range conns {
		cc.closed()
	}
	if st := h.srv.Stats(false); st.Active != 0 || st.Connected != 0 || st.Failed != 0 {
		t.Errorf("stats after Serve returned: %+v", st)
	}
	if nc, err := net.Dial("unix", h.addr); err == nil {
		nc.Close()
		t.Errorf("the dispatch listener still accepts after Serve returned")
	}
}
