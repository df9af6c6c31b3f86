package local

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/launch"
	"github.com/saltpeter/saltpeter/sdk/target"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// A spare is a default wrapper started ahead of the next dispatch:
// started detached (launch.Command.Detached) with -env-stdin, it has done
// its program's start, which is most of what a short job's dispatch
// costs, and waits for its dispatch environment on standard input. The
// plugin keeps one once it has dispatched the default wrapper: a dispatch
// writes the spare its environment and closes the pipe, and the spare
// goes on as a wrapper started then would; the next spare is started
// once dispatching has paused (spareQuiet). The variables that are the
// same for every dispatch of this core (its URLs, its CA file) are in the
// spare's process environment already, so that it shows which core it is
// for, as any wrapper's does; the whole dispatch environment, the token
// with it, travels through the pipe, in no process environment.
//
// A spare whose program file changed since it started (an upgrade, which
// must rename the new file into place: writing over a running program
// fails with "text file busy"), or started for other core URLs, is not
// used: it is dropped, and the dispatch starts the wrapper afresh, as
// does a dispatch that finds no spare or one that has exited. A spare
// dropped, or left behind by a plugin that exits, reads end of file,
// finds no dispatch environment and exits.
type spare struct {
	w      *launch.Wrapper
	path   string            // the program it runs
	stdin  *os.File          // the write end of its standard input
	ident  os.FileInfo       // the program file it was started from
	shared map[string]string // its share of the dispatch environment (sharedEnv)
}

// sharedEnv is the part of a dispatch environment that every dispatch of
// the same core has: what a spare is started with.
func sharedEnv(env map[string]string) map[string]string {
	shared := map[string]string{}
	for _, k := range []string{wire.EnvWebSocketURL, wire.EnvWebSocketURLs, wire.EnvCAFile} {
		if v, ok := env[k]; ok {
			shared[k] = v
		}
	}
	return shared
}

// errSpareGone is a spare that could not take its environment because it
// had exited: nothing of the dispatch reached it.
var errSpareGone = errors.New("the spare wrapper is gone")

// sameFile reports whether b is still the program file a was: not one
// that replaced it, nor the same one rewritten.
func sameFile(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// startSpare starts a spare of path with the plugin's own share of a
// wrapper's environment (launch.PassEnv) and shared.
func startSpare(log hclog.Logger, path string, shared map[string]string) (*spare, error) {
	ident, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("spare wrapper: %w", err)
	}
	env, err := launch.Environ(shared)
	if err != nil {
		return nil, fmt.Errorf("spare wrapper: %w", err)
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("spare wrapper: stdin pipe: %w", err)
	}
	w, err := launch.Begin(log, launch.Command{
		Path: path, Args: []string{"-env-stdin"}, Env: env, Stdin: stdinR,
		Protocol: wire.ProtocolV2, Detached: true, OneP: true,
	})
	stdinR.Close()
	if err != nil {
		stdinW.Close()
		return nil, fmt.Errorf("spare wrapper: %w", err)
	}
	return &spare{w: w, path: path, stdin: stdinW, ident: ident, shared: shared}, nil
}

// fresh reports whether the spare still runs the program at path, for the
// core whose shared environment is shared.
func (s *spare) fresh(path string, shared map[string]string) bool {
	if s.path != path || !maps.Equal(s.shared, shared) {
		return false
	}
	ident, err := os.Stat(path)
	return err == nil && sameFile(s.ident, ident)
}

// drop ends an unused spare: with its standard input closed it reads end
// of file, finds no dispatch environment and exits, and is reaped.
func (s *spare) drop() {
	s.stdin.Close()
	s.w.Drop()
}

// dispatch hands the spare the dispatch environment env and awaits its
// detach line, as for a wrapper started now; errSpareGone when it had
// exited.
func (s *spare) dispatch(ctx context.Context, log hclog.Logger, env map[string]string) (target.DispatchResult, error) {
	records, err := launch.EnvRecords(env)
	if err != nil {
		s.drop()
		return target.DispatchResult{}, err
	}
	// A pipe takes a dispatch environment's few hundred bytes at once;
	// should it not, ctx still bounds the write.
	stop := context.AfterFunc(ctx, func() { _ = s.stdin.SetWriteDeadline(time.Now()) })
	_, err = s.stdin.Write(records)
	stop()
	if cerr := s.stdin.Close(); err == nil {
		err = cerr
	}
	switch {
	case err == nil:
		return s.w.Await(ctx, log)
	case errors.Is(err, syscall.EPIPE):
		s.drop()
		return target.DispatchResult{}, fmt.Errorf("%w: %v", errSpareGone, err)
	}
	s.w.Kill()
	s.drop()
	if ctx.Err() != nil {
		return target.DispatchResult{}, ctx.Err()
	}
	return target.DispatchResult{}, fmt.Errorf("hand the spare wrapper its environment: %w", err)
}

// takeSpare returns the spare for path and shared, nil when there is none
// or it no longer runs the program at path, or for that core (it is
// dropped then). The caller owns what it gets.
func (t *Target) takeSpare(path string, shared map[string]string) *spare {
	t.mu.Lock()
	s := t.spare
	t.spare = nil
	t.mu.Unlock()
	if s != nil && !s.fresh(path, shared) {
		t.log.Info("spare wrapper dropped: its program, or its core, changed since it started", "wrapper", s.path, "pid", s.w.PID())
		s.drop()
		return nil
	}
	return s
}

// spareQuiet is how long dispatching must have paused before the next
// spare is started. A spare's start (exec, the runtime's start, Prefault)
// is a millisecond or two of CPU; started as soon as a dispatch returned,
// it ran beside that dispatch's wrapper connecting and starting its job
// and beside the core recording them, and on a 2-core machine made a run
// of `true` about a millisecond slower from run now to its stored end (p50
// 9.1 against 8.0 ms, means of four interleaved runs of BenchmarkRunTrueP
// each way). A dispatch that comes meanwhile starts its wrapper afresh, as
// one without spares does; dispatches that keep coming closer than this
// keep no spare, and cost what they cost before there were spares.
const spareQuiet = 20 * time.Millisecond

// refill has a spare started for path and shared, in the background,
// once dispatching has paused for t.quiet (spareQuiet), unless one is
// there, or to be started, already. A later call while the start waits,
// as a later dispatch makes, moves it back and has it made for the
// later call's path and shared.
func (t *Target) refill(path string, shared map[string]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastDispatch = time.Now()
	if t.refilling != nil && t.pending != nil {
		t.pending.path, t.pending.shared = path, shared
		return
	}
	if t.spare != nil || t.refilling != nil {
		return
	}
	done := make(chan struct{})
	t.refilling = done
	t.pending = &pendingSpare{path: path, shared: shared}
	var start func()
	start = func() {
		t.mu.Lock()
		if wait := t.quiet - time.Since(t.lastDispatch); wait > 0 {
			time.AfterFunc(wait, start)
			t.mu.Unlock()
			return
		}
		p := t.pending
		t.pending = nil
		t.mu.Unlock()
		defer close(done)
		s, err := startSpare(t.log, p.path, p.shared)
		if err != nil {
			t.log.Warn("no spare wrapper: the next dispatch starts one afresh", "error", err)
		}
		t.mu.Lock()
		t.refilling = nil
		if t.spare == nil {
			t.spare, s = s, nil
		}
		t.mu.Unlock()
		if s != nil {
			s.drop()
		}
	}
	time.AfterFunc(t.quiet, start)
}

// pendingSpare is what the spare waiting for dispatching to pause will be
// started for.
type pendingSpare struct {
	path   string
	shared map[string]string
}
