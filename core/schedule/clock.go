package schedule

import "time"

// Clock is the Scheduler's source of time, injected so that tests drive
// time instead of sleeping.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer the Scheduler uses.
type Timer interface {
	C() <-chan time.Time
	// Stop releases the timer; the Scheduler calls it on every timer it
	// stops waiting for, fired or not.
	Stop() bool
}

// RealClock is the wall clock. Its timers wake to the microsecond where
// the system allows it (see newPreciseTimer), and are Go timers
// elsewhere.
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer {
	if t := newPreciseTimer(d); t != nil {
		return t
	}
	return goTimer{time.NewTimer(d)}
}

type goTimer struct{ t *time.Timer }

func (g goTimer) C() <-chan time.Time { return g.t.C }
func (g goTimer) Stop() bool          { return g.t.Stop() }
