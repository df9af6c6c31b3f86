package wrapper

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/wire"
	"github.com/saltpeter/saltpeter/wrapper/proc"
)

// supervisor owns the job's life from start to the complete frame: it
// enforces the timeouts, carries out kill and signal commands, deals with
// leftovers, and decides retcode and reason. It runs in one goroutine and
// never waits on the network; a termination runs in a goroutine of its own
// so commands are answered during the grace period.
type supervisor struct {
	r     *runner
	log   hclog.Logger
	job   job
	spec  jobSpec
	pipes *pipes
	stop  <-chan os.Signal // signals asking the wrapper itself to stop

	// Events of the running phase; nil once they no longer apply.
	mainExit   <-chan struct{}
	hard       <-chan time.Time
	quiet      <-chan time.Time
	quietTimer *time.Timer

	term *termination
	// signalled are the signals sent by signal commands: a job that dies
	// of one did not die of "a signal we did not send".
	signalled map[syscall.Signal]bool
	// answered remembers each signal command carried out, to tell a
	// re-send (the core repeats until it sees killed) from a new request.
	answered map[string]answer
}

type answer struct {
	at    time.Time
	count int
}

// termination is one application of the kill policy.
type termination struct {
	reason   string // wire.ReasonKilled, ReasonTimeout, ReasonNoOutputTimeout; "" for leftovers
	policy   killPolicy
	pids     int // processes alive when it began
	done     chan struct{}
	res      proc.TerminateResult // valid once done is closed
	finished bool                 // res noted
}

func newSupervisor(r *runner, j job, spec jobSpec, stop <-chan os.Signal) *supervisor {
	return &supervisor{
		r: r, log: r.log.Named("job"), job: j, spec: spec, stop: stop,
		signalled: map[syscall.Signal]bool{},
		answered:  map[string]answer{},
	}
}

// run supervises the job until its complete frame is handed to the
// outbox. When ctx ends first (the wrapper gives up reporting), the job is
// terminated: nobody would watch it any more.
func (s *supervisor) run(ctx context.Context) {
	defer func() {
		// The readers may still be blocked on pipes that leftovers (kept
		// or unkillable) hold open; closing the read ends frees them.
		s.job.Stdout().Close()
		s.job.Stderr().Close()
		if err := s.job.Close(); err != nil {
			s.log.Warn("releasing the job failed", "error", err)
		}
	}()
	s.pipes = readPipes(s.job, s.r.spool, s.log)

	s.mainExit = s.job.Exited()
	if s.spec.timeout > 0 {
		t := time.NewTimer(s.spec.timeout)
		defer t.Stop()
		s.hard = t.C
	}
	if s.spec.noOutput > 0 {
		s.quietTimer = time.NewTimer(s.spec.noOutput)
		defer s.quietTimer.Stop()
		s.quiet = s.quietTimer.C
	}
	for (s.mainExit != nil || s.terminating()) && ctx.Err() == nil {
		s.step(ctx, nil, nil)
	}
	if ctx.Err() == nil {
		s.wait(ctx, s.pipes.done, s.r.set.drain)
		if s.term == nil {
			s.leftovers(ctx)
		}
	}
	if ctx.Err() != nil {
		s.abort()
		return
	}
	s.finish()
}

// step handles one event: the main process's exit, a timeout, a command,
// a stop signal, a termination's end. It reports whether until was closed,
// deadline passed or ctx ended instead.
func (s *supervisor) step(ctx context.Context, until <-chan struct{}, deadline <-chan time.Time) bool {
	select {
	case <-ctx.Done():
		return true
	case <-until:
		return true
	case <-deadline:
		return true
	case <-s.mainExit:
		s.mainExit = nil
	case <-s.hard:
		s.timedOut(ctx, wire.ReasonTimeout, fmt.Sprintf("[Job exceeded timeout of %s]", s.spec.timeoutText))
	case <-s.quiet:
		if idle := time.Since(s.pipes.lastByte.Load()); idle < s.spec.noOutput {
			s.quietTimer.Reset(s.spec.noOutput - idle)
		} else {
			s.timedOut(ctx, wire.ReasonNoOutputTimeout,
				fmt.Sprintf("[Job exceeded no-output timeout of %s]", s.spec.noOutputText))
		}
	case f := <-s.r.cmds:
		s.command(ctx, f)
	case sig := <-s.stop:
		s.stopRequested(ctx, sig)
	case <-s.termDone():
		s.noteTermination()
	}
	return false
}

// wait handles events until until is closed, limit has passed (0: no
// limit) or ctx ends: the phases after the main process's exit (draining,
// leftovers) still owe the core answers to its commands.
func (s *supervisor) wait(ctx context.Context, until <-chan struct{}, limit time.Duration) {
	var deadline <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		deadline = t.C
	}
	for !s.step(ctx, until, deadline) {
	}
}

// timedOut applies the kill policy for a timeout, unless the job already
// ended or is already being terminated.
func (s *supervisor) timedOut(ctx context.Context, reason, note string) {
	if s.term == nil && s.mainExit != nil {
		s.begin(ctx, reason, s.spec.kill, note)
	}
}

// stopRequested handles a signal to the wrapper itself (SIGTERM at a
// machine's shutdown, say) as a kill: the job gets its kill policy and the
// core a complete frame, instead of an orphan and a lost run.
func (s *supervisor) stopRequested(ctx context.Context, sig os.Signal) {
	if s.term == nil && s.mainExit != nil {
		s.begin(ctx, wire.ReasonKilled, s.spec.kill,
			fmt.Sprintf("[Job terminated: the wrapper received %s]", sig))
	}
}

func (s *supervisor) exited() bool {
	select {
	case <-s.job.Exited():
		return true
	default:
		return false
	}
}

func (s *supervisor) terminating() bool { return s.term != nil && !s.term.finished }

// termDone is the running termination's done channel, nil when none is
// left to note.
func (s *supervisor) termDone() <-chan struct{} {
	if s.terminating() {
		return s.term.done
	}
	return nil
}

// command carries out a kill or signal command from the core.
func (s *supervisor) command(ctx context.Context, f wire.Frame) {
	switch f.Type {
	case wire.TypeKill:
		switch {
		case s.term != nil && s.term.reason != "":
			// A re-sent kill, or a kill during a timeout's termination:
			// already being done.
			s.killed(s.term.policy.name, s.term.count())
		case s.exited():
			// The main process ended on its own first; its result stands.
			s.killed(s.spec.kill.name, 0)
		default:
			p, err := s.spec.kill.override(f.Signal, f.Grace)
			if err != nil {
				s.log.Warn("kill command has a bad override; applying the job's kill policy", "error", err)
				p = s.spec.kill
			}
			s.begin(ctx, wire.ReasonKilled, p, "[Job terminated by user request]")
			s.killed(p.name, s.term.count())
		}
	case wire.TypeSignal:
		s.signal(f.Signal)
	}
}

// signal carries out a signal command once, however often the core
// re-sends it.
func (s *supervisor) signal(name string) {
	sig, canon, err := parseSignal(name)
	if err != nil {
		canon = name
	}
	if a, ok := s.answered[canon]; ok && time.Since(a.at) < s.r.set.signalDedup {
		s.killed(canon, a.count)
		return
	}
	count := 0
	switch {
	case err != nil:
		s.note(fmt.Sprintf("[Signal %q refused: unknown signal]", name))
	case sig == syscall.SIGKILL:
		s.note("[Signal SIGKILL refused: only a kill command ends the job]")
	default:
		count, err = s.job.Signal(sig)
		if err != nil {
			s.log.Warn("signalling the job failed", "signal", canon, "error", err)
		}
		s.signalled[sig] = true
		s.note(fmt.Sprintf("[Signal %s sent to %d processes by user request]", canon, count))
	}
	s.answered[canon] = answer{at: time.Now(), count: count}
	s.killed(canon, count)
}

func (s *supervisor) killed(signal string, count int) {
	s.r.out.Push(wire.Frame{Type: wire.TypeKilled, Signal: signal, PIDCount: wire.Int(count)})
}

// begin starts applying the kill policy p, after noting why.
func (s *supervisor) begin(ctx context.Context, reason string, p killPolicy, note string) {
	if note != "" {
		s.note(note)
	}
	t := &termination{reason: reason, policy: p, pids: len(s.job.Alive()), done: make(chan struct{})}
	s.term = t
	s.log.Info("terminating the job", "reason", reason, "signal", p.name,
		"grace_ms", p.grace.Milliseconds(), "processes", t.pids)
	go func() {
		t.res = s.job.Terminate(ctx, p.signal, p.grace)
		close(t.done)
	}()
}

// count is how many processes the termination's signal reached.
func (t *termination) count() int {
	if t.finished {
		return t.res.Signalled
	}
	return t.pids
}

// noteTermination says on the system stream what the termination had to
// do beyond the first signal.
func (s *supervisor) noteTermination() {
	t := s.term
	if t.finished {
		return
	}
	t.finished = true
	if len(t.res.Killed) > 0 {
		s.note(fmt.Sprintf("[Processes still alive after the grace period of %s were killed with SIGKILL: %s]",
			t.policy.grace, pidList(t.res.Killed)))
	}
	if len(t.res.Survivors) > 0 {
		var b strings.Builder
		for i, v := range t.res.Survivors {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%d (%s, state %s)", v.PID, v.Comm, v.State)
		}
		s.note("[Processes that survived SIGKILL: " + b.String() + "]")
	}
}

// leftovers terminates what the job left running after its main process
// exited, unless the job keeps its children.
func (s *supervisor) leftovers(ctx context.Context) {
	alive := s.job.Alive()
	if len(alive) == 0 {
		return
	}
	if s.spec.keepChildren {
		s.note(fmt.Sprintf("[Job left %d processes running: %s; keep_children is set, leaving them]",
			len(alive), pidList(alive)))
		return
	}
	s.note(fmt.Sprintf("[Job left %d processes running after it exited: %s; terminating them]",
		len(alive), pidList(alive)))
	s.begin(ctx, "", s.spec.kill, "")
	s.wait(ctx, s.term.done, 0)
	if ctx.Err() != nil {
		return
	}
	s.noteTermination()
	// The leftovers held the pipes open: read what they wrote last.
	s.wait(ctx, s.pipes.done, s.r.set.drain)
}

// finish seals the output and hands the complete frame to the outbox.
func (s *supervisor) finish() {
	st := s.job.Status()
	f := wire.Frame{Type: wire.TypeComplete, Retcode: wire.Int(st.Code), Reason: wire.ReasonExit}
	switch {
	case s.term != nil && s.term.reason == wire.ReasonKilled:
		f.Retcode, f.Reason = wire.Int(wire.ExitKilled), wire.ReasonKilled
	case s.term != nil && s.term.reason != "":
		f.Retcode, f.Reason = wire.Int(wire.ExitTimeout), s.term.reason
	case st.Signaled && !s.signalled[st.Signal]:
		f.Reason, f.SignalName = wire.ReasonSignal, wire.SignalName(int(st.Signal))
	}
	f.Seq = wire.Int64(s.r.spool.Seal())
	s.log.Info("job ended", "retcode", *f.Retcode, "reason", f.Reason, "last_seq", *f.Seq)
	s.r.out.Finish("", f)
}

// abort ends the job because nobody will report on it any more.
func (s *supervisor) abort() {
	if s.term != nil {
		<-s.term.done
		return
	}
	if s.exited() && s.spec.keepChildren {
		return
	}
	if len(s.job.Alive()) == 0 {
		return
	}
	s.log.Warn("terminating the job: its result can no longer be reported")
	// A fresh context: the job still gets its grace period.
	s.job.Terminate(context.Background(), s.spec.kill.signal, s.spec.kill.grace)
}

// note writes one of the wrapper's own lines to the system stream.
func (s *supervisor) note(text string) {
	s.log.Info("note", "text", text)
	s.r.spool.Append(wire.BinarySystem, []byte(text+"\n"))
}

func pidList(pids []int) string {
	parts := make([]string, len(pids))
	for i, p := range pids {
		parts[i] = strconv.Itoa(p)
	}
	return strings.Join(parts, " ")
}
