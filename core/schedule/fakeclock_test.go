package schedule_test

import (
	"sync"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/schedule"
)

// fakeClock moves only when the test says so. Like the real one it has a
// wall clock, which Now reads and which may step, and a monotonic one,
// which only time passing moves and on which timers run: a timer fires
// when the monotonic clock reaches its deadline, whatever the wall clock
// did. A live timer whose deadline is ahead means the Scheduler has
// finished its round and is parked waiting, which is how the tests know
// that nothing more is about to be sent.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time     // the wall clock
	mono    time.Duration // the monotonic clock: time passed since the start
	timers  map[*fakeTimer]bool
	changed chan struct{} // closed and replaced whenever timers change
}

type fakeTimer struct {
	c  *fakeClock
	at time.Duration // on the monotonic clock
	ch chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, timers: map[*fakeTimer]bool{}, changed: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) schedule.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.mono + d, ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
		return t
	}
	c.timers[t] = true
	c.notifyLocked()
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	live := t.c.timers[t]
	delete(t.c.timers, t)
	t.c.notifyLocked()
	return live
}

func (c *fakeClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// set moves the wall clock to now. Forwards, that is time passing: the
// monotonic clock moves as much and due timers fire. Backwards, it is a
// step of the wall clock alone, as jump makes.
func (c *fakeClock) set(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := now.Sub(c.now); d > 0 {
		c.mono += d
	}
	c.now = now
	c.fireLocked()
}

func (c *fakeClock) advance(d time.Duration) { c.set(c.Now().Add(d)) }

// jump steps the wall clock by d, forwards or backwards, without time
// passing: an NTP step or a resumed VM. No timer fires.
func (c *fakeClock) jump(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.notifyLocked()
}

func (c *fakeClock) fireLocked() {
	for t := range c.timers {
		if t.at <= c.mono {
			t.ch <- c.now
			delete(c.timers, t)
		}
	}
	c.notifyLocked()
}

// parked reports whether the Scheduler waits on a timer, the wall-clock
// time at which the first one fires if the wall clock does not step, and a
// channel that is closed when that may have changed.
func (c *fakeClock) parked() (time.Time, bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first time.Duration
	ok := false
	for t := range c.timers {
		if !ok || t.at < first {
			first, ok = t.at, true
		}
	}
	if !ok {
		return time.Time{}, false, c.changed
	}
	return c.now.Add(first - c.mono), true, c.changed
}

// failAfter bounds how long a test waits for an event that should come
// promptly; it fails the test, it never stands in for synchronisation.
const failAfter = 10 * time.Second

// collect receives firings until the Scheduler parks on a timer, and
// returns them with the timer's deadline.
func collect(t *testing.T, c *fakeClock, out <-chan schedule.Firing) ([]schedule.Firing, time.Time) {
	t.Helper()
	var got []schedule.Firing
	deadline := time.After(failAfter)
	for {
		at, ok, changed := c.parked()
		if ok {
			// Firings is unbuffered and the loop is parked: nothing is in flight.
			return got, at
		}
		select {
		case f := <-out:
			got = append(got, f)
		case <-changed:
		case <-deadline:
			t.Fatalf("scheduler did not park on a timer; received %v", got)
		}
	}
}
