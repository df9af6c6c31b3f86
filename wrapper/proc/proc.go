package proc

import (
	"context"
	"errors"
	"io"
	"syscall"
	"time"
)

// FullRead is the pipe Linux gives a job's stdout and stderr: a read of
// this much or more found the pipe full, the job writing faster than it
// is read. Such a pipe grows (see outPipe), and the wrapper takes back
// the Ps it started without.
const FullRead = 64 << 10

// Options says how to start a job.
type Options struct {
	// Command runs as /bin/sh -c Command.
	Command string
	Cwd     string
	// User, when set and not the wrapper's own user, is switched to
	// (setgid, supplementary groups, setuid, HOME/USER/LOGNAME); that
	// needs the wrapper to be root, else Start returns ErrNeedRoot.
	User string
	// Env is the job's whole environment, KEY=VALUE.
	Env []string
	// DisableCgroup leaves the tree to the /proc walk even where a cgroup
	// could be made, so the fallback can be exercised on any machine.
	DisableCgroup bool
	// Prepared, when set, is what Start takes instead of doing it now
	// (see Prepare).
	Prepared *Prepared
}

// Prepared is the part of a job's start that Prepare did ahead of it.
type Prepared struct {
	impl *prepared
}

// Prepare does ahead of Start the part of a job's start that does not
// depend on the job and leaves nothing outside this process: the wrapper
// becomes a child subreaper, the reaper runs, and where the job's cgroup
// goes is found (unless disableCgroup). A caller with time to spare before
// it knows its job (the wrapper, while it waits for the core's connect
// ack) hands the result to Start in Options.Prepared, which then has only
// the job's own work left: a short job's start is mostly first steps like
// these. Release it when no Start takes it; Release after Start took it
// does nothing.
func Prepare(disableCgroup bool) *Prepared { return &Prepared{impl: prepare(disableCgroup)} }

// Release undoes what Prepare did, unless a Start took it: the reaper's
// hold is released. It may be called more than once.
func (p *Prepared) Release() {
	if p != nil {
		p.impl.release()
	}
}

// How a Job tracks its tree, as Mode reports it.
const (
	// ModeCgroup: the job runs in a cgroup v2 of its own (cgroup.procs
	// lists it, cgroup.kill kills it), and the /proc walk is used as well.
	ModeCgroup = "cgroup"
	// ModeProc: the tree is found by walking /proc from the wrapper, a
	// child subreaper, alone.
	ModeProc = "proc"
)

// ErrNeedRoot is returned by Start when Options.User needs privileges the
// wrapper does not have.
var ErrNeedRoot = errors.New("switching user needs the wrapper to run as root")

// ExitStatus is how the job's main process ended.
type ExitStatus struct {
	// Code is the exit code, or 128 + the signal number.
	Code     int
	Signaled bool
	Signal   syscall.Signal
}

// Survivor is a process still alive after the kill policy's SIGKILL.
type Survivor struct {
	PID   int
	Comm  string
	State string // from /proc/PID/stat, e.g. "D"
}

// TerminateResult says what the kill policy did.
type TerminateResult struct {
	// Signalled counts the processes the first signal reached.
	Signalled int
	// Killed lists the processes SIGKILLed after the grace period.
	Killed []int
	// Survivors lists processes still alive after SIGKILL (bounded retry).
	Survivors []Survivor
}

// Job is a started command and its whole process tree.
type Job struct {
	impl *job
}

// Start starts the job: its own process group (and its own cgroup v2 where
// the wrapper can make one), the wrapper a child subreaper so orphaned
// descendants stay in reach, one reaper goroutine that waits for every
// child so the main process's status is never lost.
func Start(opts Options) (*Job, error) { return start(opts) }

// PID is the main process's pid.
func (j *Job) PID() int { return j.impl.pid() }

// Stdout and Stderr are the read ends of the job's output pipes. They reach
// EOF only when every process holding the write end closed it.
func (j *Job) Stdout() io.ReadCloser { return j.impl.stdout() }

// Stderr: see Stdout.
func (j *Job) Stderr() io.ReadCloser { return j.impl.stderr() }

// Exited is closed when the main process has exited and been reaped.
func (j *Job) Exited() <-chan struct{} { return j.impl.exited() }

// Status is the main process's exit status; valid once Exited is closed.
func (j *Job) Status() ExitStatus { return j.impl.status() }

// Signal sends sig to every live process of the tree and returns how many
// it reached. It refuses SIGKILL (that is Terminate's job).
func (j *Job) Signal(sig syscall.Signal) (int, error) { return j.impl.signal(sig) }

// Terminate applies the kill policy: sig then SIGCONT to the whole tree,
// wait up to grace for the tree to empty (returning early when it does),
// SIGKILL what is left until nothing is or a bound passes. ctx cancels the
// wait, not the SIGKILL.
func (j *Job) Terminate(ctx context.Context, sig syscall.Signal, grace time.Duration) TerminateResult {
	return j.impl.terminate(ctx, sig, grace)
}

// Alive lists the pids of the tree that are still alive.
func (j *Job) Alive() []int { return j.impl.alive() }

// Mode says how the tree is tracked: ModeCgroup or ModeProc.
func (j *Job) Mode() string { return j.impl.mode() }

// CgroupDir is the job's cgroup directory, or "" in ModeProc.
func (j *Job) CgroupDir() string { return j.impl.cgroupDir() }

// Close releases what Start took (the cgroup); it kills nothing. While the
// cgroup still holds leftovers it returns an error, and may be called again
// after Terminate. Stdout and Stderr stay open: they are the reader's.
func (j *Job) Close() error { return j.impl.close() }
