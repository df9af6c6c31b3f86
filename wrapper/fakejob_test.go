package wrapper

import (
	"context"
	"io"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/saltpeter/saltpeter/wrapper/proc"
)

// fakeJob stands in for *proc.Job: the test writes its output and decides
// when and how it exits; it records the signals and terminations asked of
// it.
type fakeJob struct {
	outR, errR *io.PipeReader
	outW, errW *io.PipeWriter
	exited     chan struct{}
	exitOnce   sync.Once

	mu        sync.Mutex
	status    proc.ExitStatus
	alive     []int
	signals   []syscall.Signal
	terms     []termCall
	termGate  chan struct{} // non-nil: Terminate waits for it (a long grace)
	termStart chan struct{} // closed when Terminate is first called
	termRes   proc.TerminateResult
	closed    bool
}

type termCall struct {
	sig   syscall.Signal
	grace time.Duration
}

func newFakeJob() *fakeJob {
	j := &fakeJob{exited: make(chan struct{}), alive: []int{4242}, termStart: make(chan struct{})}
	j.outR, j.outW = io.Pipe()
	j.errR, j.errW = io.Pipe()
	return j
}

// exit ends the main process with st: its pipes close, Exited fires.
func (j *fakeJob) exit(st proc.ExitStatus, leftovers ...int) {
	j.exitOnce.Do(func() {
		j.mu.Lock()
		j.status = st
		j.alive = leftovers
		j.mu.Unlock()
		j.outW.Close()
		j.errW.Close()
		close(j.exited)
	})
}

func (j *fakeJob) PID() int                { return 4242 }
func (j *fakeJob) Stdout() io.ReadCloser   { return j.outR }
func (j *fakeJob) Stderr() io.ReadCloser   { return j.errR }
func (j *fakeJob) Exited() <-chan struct{} { return j.exited }

func (j *fakeJob) Status() proc.ExitStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.status
}

func (j *fakeJob) Signal(sig syscall.Signal) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.signals = append(j.signals, sig)
	return len(j.alive), nil
}

// Terminate kills the whole fake tree with sig, after the gate if any.
func (j *fakeJob) Terminate(ctx context.Context, sig syscall.Signal, grace time.Duration) proc.TerminateResult {
	j.mu.Lock()
	first := len(j.terms) == 0
	j.terms = append(j.terms, termCall{sig, grace})
	gate, res := j.termGate, j.termRes
	if res.Signalled == 0 {
		res.Signalled = len(j.alive)
	}
	j.mu.Unlock()
	if first {
		close(j.termStart)
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	j.exit(proc.ExitStatus{Code: 128 + int(sig), Signaled: true, Signal: sig})
	j.mu.Lock()
	j.alive = nil
	j.mu.Unlock()
	return res
}

func (j *fakeJob) Alive() []int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.alive)
}

func (j *fakeJob) Close() error {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	return nil
}

func (j *fakeJob) recorded() ([]syscall.Signal, []termCall) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.signals), slices.Clone(j.terms)
}
