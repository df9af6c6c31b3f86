//go:build linux

package proc

import (
	"errors"
	"os"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
)

// reg is the process-wide state: a subreaper has one set of children, so
// there is one reaper for all jobs, and it must know every job to hand the
// main process's status to the right one.
var reg struct {
	// mu serialises reaping with starting (a main process cannot be reaped
	// before its job is registered) and with attributing processes to jobs
	// (a main process counts as such until its job has its status).
	mu    sync.Mutex
	jobs  map[*job]struct{}
	holds int           // open jobs, and Terminates of closed ones
	stop  chan struct{} // non-nil while the reaper runs
	// sigchld is relayed SIGCHLD from the first hold on, for the
	// process's lifetime: signal.Stop, when the last hold went, waited
	// for the runtime's signal goroutine to be idle, and with a SIGCHLD
	// just delivered (the job's end) that was a Gosched loop waking
	// threads, some 5% of a short run's wrapper CPU. Unread, the
	// channel's one slot fills and later signals are dropped; a reaper
	// started then reaps once more than it needs to.
	sigchld chan os.Signal
}

// register adds j and holds the reaper for it. The caller holds reg.mu
// and has not forked yet, so no SIGCHLD of j's can be missed.
func register(j *job) {
	if reg.jobs == nil {
		reg.jobs = make(map[*job]struct{})
	}
	reg.jobs[j] = struct{}{}
	holdReaper()
}

// unregister drops j and its hold on the reaper. The caller holds reg.mu.
func unregister(j *job) {
	delete(reg.jobs, j)
	releaseReaper()
}

// holdReaper starts the reaper if none runs; it runs until every hold is
// released, so that a process done with its jobs can wait for children of
// its own again. The caller holds reg.mu.
func holdReaper() {
	reg.holds++
	if reg.stop == nil {
		reg.stop = make(chan struct{})
		if reg.sigchld == nil {
			reg.sigchld = make(chan os.Signal, 1)
			signal.Notify(reg.sigchld, unix.SIGCHLD)
		}
		go reapLoop(reg.sigchld, reg.stop)
	}
}

// releaseReaper: see holdReaper. The caller holds reg.mu.
func releaseReaper() {
	reg.holds--
	if reg.holds == 0 && reg.stop != nil {
		close(reg.stop)
		reg.stop = nil
	}
}

func reapLoop(sigs <-chan os.Signal, stop chan struct{}) {
	for {
		// Signals coalesce: one SIGCHLD may stand for many exits, so
		// every wake-up reaps until nothing is left.
		reapAll()
		select {
		case <-sigs:
		case <-stop:
			return
		}
	}
}

// reapAll waits for every child that has exited, main processes and
// re-parented orphans alike, and tells every job something changed.
func reapAll() {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	reaped := false
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 { // ECHILD: no children; 0: none exited
			break
		}
		reaped = true
		for j := range reg.jobs {
			if !j.mainReaped && j.mainPID == pid {
				j.setStatus(ws)
			}
		}
	}
	if reaped {
		for j := range reg.jobs {
			j.poke()
		}
	}
}

var subreaper struct {
	once sync.Once
	err  error
}

// becomeSubreaper makes orphans of the job's tree the wrapper's children
// rather than init's, so the /proc walk still finds them and the reaper
// reaps them. It is process-wide and never undone.
func becomeSubreaper() error {
	subreaper.once.Do(func() {
		subreaper.err = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	})
	return subreaper.err
}
