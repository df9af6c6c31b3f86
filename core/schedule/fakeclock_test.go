package schedule_test

import (
	"sync"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/schedule"
)

// fakeClock moves only when the test says so. Its timers fire when the
// clock is moved past their deadline. A live timer whose deadline is ahead
// means the Scheduler has finished its round and is parked waiting, which
// is how the tests know that nothing more is about to be sent.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  map[*fakeTimer]bool
	changed chan struct{} // closed and replaced whenever timers change
}

type fakeTimer struct {
	c  *fakeClock
	at time.Time
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
	t := &fakeTimer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
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

// set moves the clock to now, forwards or backwards, firing due timers.
func (c *fakeClock) set(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
	for t := range c.timers {
		if !t.at.After(now) {
			t.ch <- now
			delete(c.timers, t)
		}
	}
	c.notifyLocked()
}

func (c *fakeClock) advance(d time.Duration) { c.set(c.Now().Add(d)) }

// parked reports whether the Scheduler waits on a timer, and a channel
// that is closed when that may have changed.
func (c *fakeClock) parked() (time.Time, bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first time.Time
	for t := range c.timers {
		if first.IsZero() || t.at.Before(first) {
			first = t.at
		}
	}
	return first, len(c.timers) > 0, c.changed
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
