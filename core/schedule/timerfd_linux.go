package schedule

import (
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// newPreciseTimer returns a timer on a timerfd, or nil where one cannot
// be made. Go's timers wake an idle process through epoll_wait, which
// sleeps in whole milliseconds: a timer with less than one left sleeps
// one more, so a slot fired up to a millisecond late on an idle core,
// on top of the machine's own wake-up latency (golang/go#53824). A
// timerfd in Go's poller wakes it when the kernel's timer expires.
// Measured on the 2-CPU VM of BENCHMARKS.md, 20 waits each for the next
// second boundary, interleaved: a Go timer ended 0.86 ms late at the
// median and 1.74 ms at most, a timerfd 0.42 and 0.92 ms.
//
// It runs on the monotonic clock, as Go's timers do: the Scheduler reads
// the wall clock again at least every maxWait.
func newPreciseTimer(d time.Duration) Timer {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil
	}
	// A zero it_value disarms a timerfd: a due timer waits a nanosecond.
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(max(int64(d), 1))}
	if err := unix.TimerfdSettime(fd, 0, &spec, nil); err != nil {
		unix.Close(fd)
		return nil
	}
	// Non-blocking, so the file is read through Go's poller: a read
	// parks its goroutine until the timer expires, and Close ends it.
	t := &fdTimer{f: os.NewFile(uintptr(fd), "timerfd"), c: make(chan time.Time, 1), done: make(chan struct{})}
	go t.wait()
	return t
}

type fdTimer struct {
	f     *os.File
	c     chan time.Time
	fired atomic.Bool
	done  chan struct{} // closed once wait returned
}

func (t *fdTimer) wait() {
	defer close(t.done)
	var expirations [8]byte
	if _, err := t.f.Read(expirations[:]); err == nil {
		t.fired.Store(true)
		t.c <- time.Now()
	}
}

func (t *fdTimer) C() <-chan time.Time { return t.c }

// Stop closes the timerfd and returns once its goroutine has: true if the
// timer had not fired.
func (t *fdTimer) Stop() bool {
	t.f.Close()
	<-t.done
	return !t.fired.Load()
}
