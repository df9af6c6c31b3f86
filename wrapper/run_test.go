package wrapper

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/wire"
	"github.com/saltpeter/saltpeter/wrapper/proc"
)

func testSpec() wire.Spec {
	return wire.Spec{Command: "backup.sh", Env: map[string]string{"PGHOST": "db1"}, Heartbeat: "1s"}
}

// randomBytes is n reproducible bytes, most of them not valid UTF-8.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestRunOutputByteExact(t *testing.T) {
	core := newFakeCore(t, testSpec())
	j := newFakeJob()
	rn := startRun(t, core, j, nil)

	core.await(t, "start", func() bool { return len(core.framesOfLocked(wire.TypeStart)) == 1 })
	var stdout, stderr bytes.Buffer
	invalid := []byte("caf\xc3\xa9 \xff\xfe\x00 half \xc3")
	big := randomBytes(5<<20+123, 1)
	for _, p := range [][]byte{invalid, big, []byte("tail\n")} {
		write(t, j.outW, p)
		stdout.Write(p)
	}
	write(t, j.errW, []byte("warning \x80\n"))
	stderr.WriteString("warning \x80\n")
	j.exit(proc.ExitStatus{Code: 3})

	f := core.awaitComplete(t)
	rn.mustSucceed(t)
	checkComplete(t, f, 3, wire.ReasonExit)
	if got := core.output(wire.StreamStdout); !bytes.Equal(got, stdout.Bytes()) {
		t.Errorf("stdout: stored %d bytes, job wrote %d; equal prefix %d", len(got), stdout.Len(), commonPrefix(got, stdout.Bytes()))
	}
	if got := core.output(wire.StreamStderr); !bytes.Equal(got, stderr.Bytes()) {
		t.Errorf("stderr = %q, want %q", got, stderr.Bytes())
	}
	if got := core.output(wire.StreamSystem); len(got) != 0 {
		t.Errorf("system stream = %q, want nothing", got)
	}
	starts := core.framesOf(wire.TypeStart)
	if starts[0].PID != 4242 || starts[0].Version != Version {
		t.Errorf("start = pid %d version %q", starts[0].PID, starts[0].Version)
	}
	rn.mu.Lock()
	env := rn.opts.Env
	rn.mu.Unlock()
	if !slices.Contains(env, "PGHOST=db1") || slices.ContainsFunc(env, func(kv string) bool {
		return strings.HasPrefix(kv, wire.EnvToken+"=")
	}) {
		t.Errorf("job env = %q: want PGHOST and no token", env)
	}
	if core.dups != 0 || core.nacks != 0 {
		t.Errorf("dups %d nacks %d on a clean connection", core.dups, core.nacks)
	}
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// TestRunResume drops the connection mid-stream while the core withholds
// acks, keeps the core away while the job writes several MiB more (past the
// spool's memory), then lets the wrapper resume.
func TestRunResume(t *testing.T) {
	for _, tc := range []struct {
		name   string
		noAck  bool
		forget int // chunks the core stored but lost at the drop
	}{
		{"acks withheld", true, 0},
		{"acks withheld, core lost the last chunks", true, 3},
		{"acks flowing", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core := newFakeCore(t, testSpec())
			core.set(func() {
				core.noAck, core.dropAfter, core.forget, core.awayAtDrop = tc.noAck, 20, tc.forget, true
			})
			j := newFakeJob()
			rn := startRun(t, core, j, func(s *settings) { s.spoolMemory = 256 << 10 })

			var want bytes.Buffer
			// More than dropAfter chunks, however large the spool merges them.
			part1 := randomBytes(20*chunkMax+1<<20, 2)
			write(t, j.outW, part1)
			want.Write(part1)
			<-core.dropped
			// Written while no core answers: it must all be kept, most
			// of it on disk.
			part2 := randomBytes(3<<20, 3)
			write(t, j.outW, part2)
			want.Write(part2)
			if st := rn.r.spool.stats(); st.fileLive == 0 {
				t.Errorf("spool did not spill past its memory limit: %+v", st)
			}
			core.set(func() { core.refuse = false })
			write(t, j.outW, []byte("after\n"))
			want.WriteString("after\n")
			j.exit(proc.ExitStatus{Code: 0})

			f := core.awaitComplete(t)
			rn.mustSucceed(t)
			checkComplete(t, f, 0, wire.ReasonExit)
			got := core.output(wire.StreamStdout)
			if !bytes.Equal(got, want.Bytes()) {
				t.Errorf("stored %d bytes, job wrote %d; equal prefix %d", len(got), want.Len(), commonPrefix(got, want.Bytes()))
			}
			core.mu.Lock()
			defer core.mu.Unlock()
			if core.dups != 0 || core.nacks != 0 {
				t.Errorf("dups %d nacks %d: resume must send from next_seq exactly", core.dups, core.nacks)
			}
			if core.conns < 2 {
				t.Errorf("%d connections, want a resumed one", core.conns)
			}
			for i, c := range core.connects[1:] {
				if !c.Resume || c.Token != "" || c.Session != core.session {
					t.Errorf("connect %d: resume %v token set %v session ok %v", i+1, c.Resume, c.Token != "", c.Session == core.session)
				}
			}
		})
	}
}

// TestRunNackResends loses one chunk in transit: the core nacks the next
// one and the wrapper sends again from the seq the core expects.
func TestRunNackResends(t *testing.T) {
	core := newFakeCore(t, testSpec())
	core.set(func() { core.lose = 2 })
	j := newFakeJob()
	rn := startRun(t, core, j, nil)
	var want bytes.Buffer
	// Four chunks' worth, however the spool merges writes: the lost
	// chunk is never the last, whose loss nothing after it would reveal.
	for i := range 8 {
		p := randomBytes(chunkMax/2, uint64(10+i))
		write(t, j.outW, p)
		want.Write(p)
	}
	j.exit(proc.ExitStatus{})
	core.awaitComplete(t)
	rn.mustSucceed(t)
	if got := core.output(wire.StreamStdout); !bytes.Equal(got, want.Bytes()) {
		t.Errorf("stored %d bytes, want %d", len(got), want.Len())
	}
	if core.nacks == 0 {
		t.Error("the lost chunk caused no nack: the test did not test resending")
	}
}

func TestRunKill(t *testing.T) {
	for _, tc := range []struct {
		name      string
		kill      wire.Frame
		wantSig   syscall.Signal
		wantGrace time.Duration
	}{
		{"job's policy", wire.Frame{Type: wire.TypeKill}, syscall.SIGINT, 2 * time.Second},
		{"override", wire.Frame{Type: wire.TypeKill, Signal: "SIGQUIT", Grace: "1s"}, syscall.SIGQUIT, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec()
			spec.Kill = wire.KillPolicy{Signal: "SIGINT", Grace: "2s"}
			core := newFakeCore(t, spec)
			j := newFakeJob()
			j.alive = []int{4242, 4243}
			j.termRes = proc.TerminateResult{Signalled: 2, Killed: []int{4243}}
			j.termGate = make(chan struct{}) // the grace period lasts until the re-send is answered
			rn := startRun(t, core, j, nil)
			core.await(t, "start", func() bool { return len(core.framesOfLocked(wire.TypeStart)) == 1 })
			write(t, j.outW, []byte("working\n"))

			core.send(t, tc.kill)
			core.await(t, "killed", func() bool { return len(core.framesOfLocked(wire.TypeKilled)) == 1 })
			core.send(t, tc.kill) // the core's re-send
			core.await(t, "second killed", func() bool { return len(core.framesOfLocked(wire.TypeKilled)) == 2 })
			close(j.termGate)
			f := core.awaitComplete(t)
			rn.mustSucceed(t)

			checkComplete(t, f, wire.ExitKilled, wire.ReasonKilled)
			_, terms := j.recorded()
			if len(terms) != 1 || terms[0].sig != tc.wantSig || terms[0].grace != tc.wantGrace {
				t.Errorf("Terminate calls = %+v, want one with %v %v", terms, tc.wantSig, tc.wantGrace)
			}
			killed := core.framesOf(wire.TypeKilled)
			if len(killed) != 2 {
				t.Errorf("%d killed frames, want one per kill received", len(killed))
			}
			for _, k := range killed {
				if k.Signal != wire.SignalName(int(tc.wantSig)) || k.PIDCount == nil || *k.PIDCount != 2 {
					t.Errorf("killed = signal %q pid_count %v", k.Signal, k.PIDCount)
				}
			}
			sys := string(core.output(wire.StreamSystem))
			for _, want := range []string{"[Job terminated by user request]\n", "killed with SIGKILL: 4243]"} {
				if !strings.Contains(sys, want) {
					t.Errorf("system stream %q lacks %q", sys, want)
				}
			}
			if got := string(core.output(wire.StreamStdout)); got != "working\n" {
				t.Errorf("stdout = %q", got)
			}
		})
	}
}

func TestRunSignal(t *testing.T) {
	for _, tc := range []struct {
		name     string
		signal   string
		wantSent []syscall.Signal
		wantKill string
		count    int
		note     string
	}{
		{"hup", "SIGHUP", []syscall.Signal{syscall.SIGHUP}, "SIGHUP", 1, "[Signal SIGHUP sent to 1 processes by user request]"},
		{"short name", "usr1", []syscall.Signal{syscall.SIGUSR1}, "SIGUSR1", 1, "[Signal SIGUSR1 sent"},
		{"sigkill refused", "SIGKILL", nil, "SIGKILL", 0, "[Signal SIGKILL refused"},
		{"unknown refused", "SIGBOGUS", nil, "SIGBOGUS", 0, `[Signal "SIGBOGUS" refused: unknown signal]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core := newFakeCore(t, testSpec())
			j := newFakeJob()
			rn := startRun(t, core, j, nil)
			core.await(t, "start", func() bool { return len(core.framesOfLocked(wire.TypeStart)) == 1 })

			cmd := wire.Frame{Type: wire.TypeSignal, Signal: tc.signal}
			core.send(t, cmd)
			core.await(t, "killed", func() bool { return len(core.framesOfLocked(wire.TypeKilled)) == 1 })
			core.send(t, cmd) // a re-send: must not signal again
			core.await(t, "second killed", func() bool { return len(core.framesOfLocked(wire.TypeKilled)) == 2 })
			j.exit(proc.ExitStatus{Code: 0})
			f := core.awaitComplete(t)
			rn.mustSucceed(t)

			checkComplete(t, f, 0, wire.ReasonExit)
			sent, terms := j.recorded()
			if !slices.Equal(sent, tc.wantSent) || len(terms) != 0 {
				t.Errorf("signals sent %v, terminations %v; want %v and none", sent, terms, tc.wantSent)
			}
			for _, k := range core.framesOf(wire.TypeKilled) {
				if k.Signal != tc.wantKill || k.PIDCount == nil || *k.PIDCount != tc.count {
					t.Errorf("killed = %q %v, want %q %d", k.Signal, k.PIDCount, tc.wantKill, tc.count)
				}
			}
			if sys := string(core.output(wire.StreamSystem)); strings.Count(sys, tc.note) != 1 {
				t.Errorf("system stream %q: want %q once", sys, tc.note)
			}
		})
	}
}

// TestRunExitReasons: a job that dies of a signal nobody sent reports
// reason signal; one that exits 143 by itself reports exit.
func TestRunExitReasons(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     proc.ExitStatus
		wantCode   int
		wantReason string
		wantSig    string
	}{
		{"exit 0", proc.ExitStatus{Code: 0}, 0, wire.ReasonExit, ""},
		{"exit 143 by itself", proc.ExitStatus{Code: 143}, 143, wire.ReasonExit, ""},
		{"segfault", proc.ExitStatus{Code: 139, Signaled: true, Signal: syscall.SIGSEGV}, 139, wire.ReasonSignal, "SIGSEGV"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core := newFakeCore(t, testSpec())
			j := newFakeJob()
			rn := startRun(t, core, j, nil)
			j.exit(tc.status)
			f := core.awaitComplete(t)
			rn.mustSucceed(t)
			checkComplete(t, f, tc.wantCode, tc.wantReason)
			if f.SignalName != tc.wantSig {
				t.Errorf("signal_name = %q, want %q", f.SignalName, tc.wantSig)
			}
			if f.Seq == nil || *f.Seq != -1 {
				t.Errorf("complete seq = %v, want -1 (no output)", f.Seq)
			}
		})
	}
}

func TestRunLeftovers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		keep      bool
		wantTerms int
		note      string
	}{
		{"terminated", false, 1, "[Job left 2 processes running after it exited: 51 52; terminating them]"},
		{"keep_children", true, 0, "keep_children is set, leaving them]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec()
			spec.KeepChildren = tc.keep
			core := newFakeCore(t, spec)
			j := newFakeJob()
			rn := startRun(t, core, j, nil)
			j.exit(proc.ExitStatus{Code: 0}, 51, 52)
			f := core.awaitComplete(t)
			rn.mustSucceed(t)
			checkComplete(t, f, 0, wire.ReasonExit)
			if _, terms := j.recorded(); len(terms) != tc.wantTerms {
				t.Errorf("%d terminations, want %d", len(terms), tc.wantTerms)
			}
			if sys := string(core.output(wire.StreamSystem)); !strings.Contains(sys, tc.note) {
				t.Errorf("system stream %q lacks %q", sys, tc.note)
			}
		})
	}
}

func TestRunTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		spec   func(*wire.Spec)
		reason string
		note   string
	}{
		{"hard", func(s *wire.Spec) { s.Timeout = "300ms" }, wire.ReasonTimeout, "[Job exceeded timeout of 300ms]\n"},
		{"no output", func(s *wire.Spec) { s.NoOutputTimeout = "300ms" }, wire.ReasonNoOutputTimeout, "[Job exceeded no-output timeout of 300ms]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec()
			tc.spec(&spec)
			core := newFakeCore(t, spec)
			j := newFakeJob()
			began := time.Now()
			rn := startRun(t, core, j, nil)
			// Output keeps a no-output timeout away, not a hard one. The
			// writes fail once the timeout has killed the job.
			for range 4 {
				j.outW.Write([]byte("tick\n"))
				time.Sleep(150 * time.Millisecond) // the job's pace, not synchronisation
			}
			f := core.awaitComplete(t)
			rn.mustSucceed(t)
			checkComplete(t, f, wire.ExitTimeout, tc.reason)
			if _, terms := j.recorded(); len(terms) != 1 || terms[0].sig != syscall.SIGTERM || terms[0].grace != defaultGrace {
				t.Errorf("terminations %+v, want one with the default policy", terms)
			}
			if sys := string(core.output(wire.StreamSystem)); sys != tc.note {
				t.Errorf("system stream %q, want %q", sys, tc.note)
			}
			if tc.reason == wire.ReasonNoOutputTimeout && time.Since(began) < 700*time.Millisecond {
				t.Errorf("no-output timeout fired after %v, while the job was still writing", time.Since(began))
			}
		})
	}
}

// TestRunHeartbeat checks the spec's interval while the job runs and while
// a kill's grace period goes on.
func TestRunHeartbeat(t *testing.T) {
	const every = 100 * time.Millisecond
	spec := testSpec()
	spec.Heartbeat = "100ms"
	core := newFakeCore(t, spec)
	j := newFakeJob()
	j.termGate = make(chan struct{})
	rn := startRun(t, core, j, nil)

	core.await(t, "5 heartbeats", func() bool { return len(core.heartbeats) >= 5 })
	core.send(t, wire.Frame{Type: wire.TypeKill})
	<-j.termStart
	core.mu.Lock()
	atKill := len(core.heartbeats)
	core.mu.Unlock()
	core.await(t, "heartbeats during the grace period", func() bool { return len(core.heartbeats) >= atKill+3 })
	close(j.termGate)
	core.awaitComplete(t)
	rn.mustSucceed(t)

	core.mu.Lock()
	defer core.mu.Unlock()
	// The median gap, not every gap: on a loaded machine one late tick is
	// the scheduler's doing, and the next comes early to make up.
	var gaps []time.Duration
	for i := 1; i < len(core.heartbeats); i++ {
		gaps = append(gaps, core.heartbeats[i].Sub(core.heartbeats[i-1]))
	}
	slices.Sort(gaps)
	if med := gaps[len(gaps)/2]; med < every/2 || med > 2*every {
		t.Errorf("median heartbeat gap %v (gaps %v), want about %v", med, gaps, every)
	}
	// A ping goes with the first heartbeat and every pingEvery-th after.
	if n := len(core.heartbeats); core.pings != (n+pingEvery-1)/pingEvery || n <= pingEvery {
		t.Errorf("%d pings with %d heartbeats, want %d and more than %d heartbeats", core.pings, n, (n+pingEvery-1)/pingEvery, pingEvery)
	}
}

func TestRunStartFailure(t *testing.T) {
	for _, tc := range []struct {
		name    string
		spec    func(*wire.Spec)
		start   error
		wantErr string
	}{
		{"cwd missing", nil, errors.New("chdir /nonexistent: no such file or directory"), "start job: chdir /nonexistent"},
		{"needs root", nil, proc.ErrNeedRoot, "start job: switching user needs the wrapper to run as root"},
		{"bad spec", func(s *wire.Spec) { s.Timeout = "soon" }, nil, "invalid spec: spec timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec()
			if tc.spec != nil {
				tc.spec(&spec)
			}
			core := newFakeCore(t, spec)
			rn := startRun(t, core, nil, func(s *settings) {
				s.start = func(proc.Options) (job, error) {
					if tc.start == nil {
						t.Error("job started despite a bad spec")
					}
					return nil, tc.start
				}
			})
			f := core.awaitComplete(t)
			rn.mustSucceed(t)
			checkComplete(t, f, wire.ExitError, "")
			core.mu.Lock()
			defer core.mu.Unlock()
			var types []string
			for _, f := range core.frames {
				if f.Type != wire.TypeHeartbeat {
					types = append(types, f.Type)
				}
			}
			if !slices.Equal(types, []string{wire.TypeError, wire.TypeComplete}) {
				t.Fatalf("frames %v, want error then complete", types)
			}
			if e := core.frames[0].Error; !strings.HasPrefix(e, tc.wantErr) {
				t.Errorf("error text %q, want prefix %q", e, tc.wantErr)
			}
		})
	}
}

func TestRunUnauthorized(t *testing.T) {
	core := newFakeCore(t, testSpec())
	started := false
	set := testSettings(t)
	set.start = func(proc.Options) (job, error) { started = true; return newFakeJob(), nil }
	cfg := testConfig(core)
	cfg.Token = "forged"
	r, err := newRunner(cfg, testLogger(t), set)
	if err != nil {
		t.Fatal(err)
	}
	err = r.run(t.Context())
	var refused *refusedError
	if !errors.As(err, &refused) || refused.code != wire.CodeUnauthorized {
		t.Fatalf("run = %v, want an UNAUTHORIZED refusal", err)
	}
	if started {
		t.Error("job started without authentication")
	}
}

// TestRunFailsOver: the first advertised core does not speak WebSocket;
// the wrapper goes on to the next.
func TestRunFailsOver(t *testing.T) {
	core := newFakeCore(t, testSpec())
	dead := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(dead.Close)
	cfg := testConfig(core)
	cfg.URLs = []string{"ws" + strings.TrimPrefix(dead.URL, "http") + "/ws", core.url}
	j := newFakeJob()
	rn := startRunWith(t, cfg, j, nil)
	j.exit(proc.ExitStatus{Code: 0})
	checkComplete(t, core.awaitComplete(t), 0, wire.ReasonExit)
	rn.mustSucceed(t)
}

// TestRunCompleteResent: the connection drops before complete is acked;
// the wrapper reconnects and sends it again.
func TestRunCompleteResent(t *testing.T) {
	core := newFakeCore(t, testSpec())
	core.set(func() { core.dropOnComplete = true })
	j := newFakeJob()
	rn := startRun(t, core, j, nil)
	write(t, j.outW, []byte("out\n"))
	j.exit(proc.ExitStatus{Code: 7})
	checkComplete(t, core.awaitComplete(t), 7, wire.ReasonExit)
	rn.mustSucceed(t)
	if n := len(core.framesOf(wire.TypeComplete)); n != 2 {
		t.Errorf("%d complete frames, want 2 (one unacked, one resent)", n)
	}
	if got := string(core.output(wire.StreamStdout)); got != "out\n" {
		t.Errorf("stdout = %q", got)
	}
}

// TestRunGivesUp: while the job runs the wrapper never stops trying to
// reach a core; once the job has ended it gives up after the bound.
func TestRunGivesUp(t *testing.T) {
	const bound = 200 * time.Millisecond
	core := newFakeCore(t, testSpec())
	j := newFakeJob()
	rn := startRun(t, core, j, func(s *settings) { s.giveUp = bound })
	core.await(t, "start", func() bool { return len(core.framesOfLocked(wire.TypeStart)) == 1 })
	core.set(func() { core.refuse = true })
	core.drop(t)
	core.await(t, "refused reconnects spanning twice the bound", func() bool {
		n := len(core.refusals)
		return n > 1 && core.refusals[n-1].Sub(core.refusals[0]) > 2*bound
	})
	select {
	case err := <-rn.done:
		t.Fatalf("gave up while the job was running: %v", err)
	default:
	}
	j.exit(proc.ExitStatus{})
	if err := rn.wait(t); err == nil || !strings.Contains(err.Error(), "giving up") {
		t.Errorf("run = %v, want giving up", err)
	}
}

// TestRunTimeoutWhileDisconnected: the wrapper enforces the hard timeout
// with no core to hear of it, and reports it once one is back.
func TestRunTimeoutWhileDisconnected(t *testing.T) {
	spec := testSpec()
	spec.Timeout = "300ms"
	core := newFakeCore(t, spec)
	j := newFakeJob()
	rn := startRun(t, core, j, nil)
	core.await(t, "start", func() bool { return len(core.framesOfLocked(wire.TypeStart)) == 1 })
	core.set(func() { core.refuse = true })
	core.drop(t)
	<-j.termStart // the timeout, applied while no core answers
	core.set(func() { core.refuse = false })
	checkComplete(t, core.awaitComplete(t), wire.ExitTimeout, wire.ReasonTimeout)
	rn.mustSucceed(t)
	if sys := string(core.output(wire.StreamSystem)); sys != "[Job exceeded timeout of 300ms]\n" {
		t.Errorf("system stream %q", sys)
	}
}

// TestRunPreparesTheJobWhileConnecting: what proc.Prepare makes while the
// core is dialled reaches the job's start.
func TestRunPreparesTheJobWhileConnecting(t *testing.T) {
	var (
		mu       sync.Mutex
		prepared []*proc.Prepared
	)
	core := newFakeCore(t, testSpec())
	j := newFakeJob()
	rn := startRun(t, core, j, func(s *settings) {
		s.prepare = func() *proc.Prepared {
			p := proc.Prepare(false)
			mu.Lock()
			prepared = append(prepared, p)
			mu.Unlock()
			return p
		}
	})
	j.exit(proc.ExitStatus{})
	checkComplete(t, core.awaitComplete(t), 0, wire.ReasonExit)
	rn.mustSucceed(t)
	mu.Lock()
	defer mu.Unlock()
	rn.mu.Lock()
	defer rn.mu.Unlock()
	if len(prepared) != 1 || rn.opts == nil || rn.opts.Prepared != prepared[0] {
		t.Fatalf("the job's start got %v, want the one preparation made (%d made)", rn.opts, len(prepared))
	}
}
