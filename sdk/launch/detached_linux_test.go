package launch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// fakeCommand starts the test binary as a fake wrapper of kind (see
// fakeWrapper); report is where it reports.
func fakeCommand(t *testing.T, kind string, detached bool) (c Command, report string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	report = filepath.Join(t.TempDir(), "report.json")
	return Command{
		Path:     exe,
		Env:      []string{envFake + "=" + kind, envReport + "=" + report},
		Protocol: wire.ProtocolV2,
		Detached: detached,
	}, report
}

var linePIDRE = regexp.MustCompile(`^` + regexp.QuoteMeta(wire.DetachedLine) + ` pid=(\d+)$`)

// linePID is the pid a detach line names; that process is killed at
// cleanup.
func linePID(t *testing.T, detail string) int {
	t.Helper()
	m := linePIDRE.FindStringSubmatch(detail)
	if m == nil {
		t.Fatalf("Detail %q is not a detach line", detail)
	}
	pid, _ := strconv.Atoi(m[1])
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

// procState is the state letter of pid ("Z" for a zombie), or an error
// wrapping os.ErrNotExist once it is gone.
func procState(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return f[0], nil
}

// awaitGone waits for pid to have exited and been reaped, or, with
// zombieOK, only to have exited (a process whose reaper is not ours).
func awaitGone(t *testing.T, pid int, zombieOK bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		state, err := procState(pid)
		if errors.Is(err, os.ErrNotExist) || (zombieOK && state == "Z") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) is still there, state %s, after 30s", what, pid, state)
		}
		<-tick.C
	}
}

// TestStartDetached: a wrapper started Detached runs in a session of its
// own, told so by wire.EnvDetachedByTarget, with no descriptor beyond 0-2
// (not even one this process inherited without close-on-exec); Start
// returns at its line without waiting for it, and it is reaped whenever
// it exits. One that does not know the variable detaches a copy, and is
// reaped once it exited. Without Detached, nothing of that changes what
// Start always did: a process group of its own, no variable, and the
// first process reaped before Start returns.
func TestStartDetached(t *testing.T) {
	tests := []struct {
		name     string
		kind     string
		detached bool
		inPlace  bool // the line names the process Start started
	}{
		{"in place", "wrapper", true, true},
		{"a wrapper that does not know the variable", "old", true, false},
		{"not detached", "wrapper", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, reportPath := fakeCommand(t, tc.kind, tc.detached)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			res, err := Start(ctx, nil, c)
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			pid := linePID(t, res.Detail)
			if ctx.Err() != nil {
				t.Fatal("Start returned only once its context ended: it waited for the wrapper to exit")
			}
			r := readReport(t, reportPath)
			if r.PPID != os.Getpid() {
				t.Errorf("the wrapper's parent is %d, want this process (%d)", r.PPID, os.Getpid())
			}
			if len(r.FDs) > 0 {
				t.Errorf("the wrapper has descriptors beyond 0-2: %v (this process leaked %d)", r.FDs, leakedFD)
			}
			if tc.detached {
				if r.SID != r.PID || r.ByTarget != "1" {
					t.Errorf("the wrapper (pid %d) is in session %d with %s=%q; want a session of its own, and %s=1",
						r.PID, r.SID, wire.EnvDetachedByTarget, r.ByTarget, wire.EnvDetachedByTarget)
				}
			} else if r.PGID != r.PID || r.SID == r.PID || r.ByTarget != "" {
				t.Errorf("the wrapper (pid %d) is in group %d, session %d, with %s=%q; want a group of its own, this process's session, and no variable",
					r.PID, r.PGID, r.SID, wire.EnvDetachedByTarget, r.ByTarget)
			}

			switch {
			case tc.inPlace:
				if pid != r.PID {
					t.Fatalf("the line names pid %d, not the wrapper Start started (%d): it detached a copy", pid, r.PID)
				}
				if state, err := procState(pid); err != nil || state == "Z" {
					t.Fatalf("the wrapper, which runs its job, is %q (%v) once Start returned", state, err)
				}
				// Its job ends: it is reaped without anyone awaiting it.
				if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				awaitGone(t, pid, false, "the wrapper whose job ended")
			case pid == r.PID:
				t.Fatalf("the line names the wrapper Start started (%d), not its copy", pid)
			case tc.detached:
				awaitGone(t, r.PID, false, "the wrapper that detached a copy")
			default:
				if _, err := procState(r.PID); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the wrapper that detached a copy (pid %d) is still there once Start returned (%v): it was not awaited", r.PID, err)
				}
			}
		})
	}
}

// TestBeginThenAwait: a wrapper started before its dispatch gets what the
// caller writes on its standard input after Begin, and Await returns its
// line.
func TestBeginThenAwait(t *testing.T) {
	c, reportPath := fakeCommand(t, "env-stdin", true)
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdinW.Close()
	c.Stdin = stdinR
	w, err := Begin(nil, c)
	stdinR.Close()
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	t.Cleanup(w.Kill)
	const env = "SP_JOB_NAME=later\x00"
	if _, err := stdinW.Write([]byte(env)); err != nil {
		t.Fatal(err)
	}
	stdinW.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := w.Await(ctx, nil)
	if err != nil {
		t.Fatalf("Await: %v", err)
	}
	if pid := linePID(t, res.Detail); pid != w.PID() {
		t.Errorf("the line names pid %d, want the wrapper's own (%d)", pid, w.PID())
	}
	if r := readReport(t, reportPath); r.Stdin != env {
		t.Errorf("the wrapper read %q on stdin, want %q", r.Stdin, env)
	}
}

// TestDropLeavesNothing: a wrapper dropped before its dispatch (a spare
// no longer wanted) leaves no descriptor in this process, and is reaped
// once it exits.
func TestDropLeavesNothing(t *testing.T) {
	before := ownFDs()
	c, _ := fakeCommand(t, "env-stdin", true)
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c.Stdin = stdinR
	w, err := Begin(nil, c)
	stdinR.Close()
	if err != nil {
		stdinW.Close()
		t.Fatalf("Begin: %v", err)
	}
	w.Drop()
	w.Drop() // again: nothing more
	stdinW.Close()
	awaitGone(t, w.PID(), false, "the dropped wrapper, which read end of file")
	if after := ownFDs(); !slices.Equal(after, before) {
		t.Errorf("descriptors before Begin %v, after Drop %v", before, after)
	}
}

// TestAwaitCarriesStderr: a wrapper that exits without detaching is
// reported with what it wrote on standard error, however that is kept.
func TestAwaitCarriesStderr(t *testing.T) {
	c, _ := fakeCommand(t, "env-stdin", true)
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdinW.Close() // an empty dispatch environment: it complains, exits 2
	c.Stdin = stdinR
	w, err := Begin(nil, c)
	stdinR.Close()
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = w.Await(ctx, nil)
	for _, want := range []string{"exit status 2", "its stderr: fake wrapper: no dispatch environment on stdin"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Await of a wrapper that exited without detaching: %v, want it to say %q", err, want)
		}
	}
}

// TestKillEndsTheProcessGroup: Kill ends the wrapper and what it started
// in its process group.
func TestKillEndsTheProcessGroup(t *testing.T) {
	c, reportPath := fakeCommand(t, "group", true)
	w, err := Begin(nil, c)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := w.Await(ctx, nil); err != nil {
		w.Kill()
		t.Fatalf("Await: %v", err)
	}
	r := readReport(t, reportPath)
	t.Cleanup(func() { _ = syscall.Kill(r.Child, syscall.SIGKILL) })
	w.Kill()
	awaitGone(t, w.PID(), false, "the killed wrapper")
	// Not this process's child: whoever inherits it reaps it, or not.
	awaitGone(t, r.Child, true, "the process the killed wrapper started in its group")
}

func TestBeginRefusesProtocol1(t *testing.T) {
	if _, err := Begin(nil, Command{Path: "/bin/true", Protocol: wire.ProtocolV1}); err == nil || !strings.Contains(err.Error(), "protocol 1") {
		t.Fatalf("Begin of a protocol 1 wrapper: %v", err)
	}
}

// TestStartOneP: a wrapper started Detached and OneP starts on one P,
// told that its target chose it, unless its environment sets GOMAXPROCS;
// nothing of that without both.
func TestStartOneP(t *testing.T) {
	tests := []struct {
		name           string
		detached, oneP bool
		env            []string
		gomaxprocs     string
		narrowed       string
	}{
		{name: "one P", detached: true, oneP: true, gomaxprocs: "1", narrowed: "1"},
		{name: "the operator's GOMAXPROCS", detached: true, oneP: true, env: []string{"GOMAXPROCS=3"}, gomaxprocs: "3"},
		{name: "not asked", detached: true},
		{name: "not detached", oneP: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, reportPath := fakeCommand(t, "wrapper", tc.detached)
			c.OneP = tc.oneP
			c.Env = append(c.Env, tc.env...)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			res, err := Start(ctx, nil, c)
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			linePID(t, res.Detail)
			r := readReport(t, reportPath)
			if r.GOMAXPROCS != tc.gomaxprocs || r.Narrowed != tc.narrowed {
				t.Errorf("the wrapper found GOMAXPROCS=%q %s=%q, want %q and %q",
					r.GOMAXPROCS, wire.EnvNarrowedByTarget, r.Narrowed, tc.gomaxprocs, tc.narrowed)
			}
		})
	}
}
