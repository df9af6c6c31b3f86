package local

import "time"

// DropSpare drops the spare wrapper, once the one being started, if any,
// is there: for tests that end.
func (t *Target) DropSpare() {
	t.awaitRefill()
	t.mu.Lock()
	s := t.spare
	t.spare = nil
	t.mu.Unlock()
	if s != nil {
		s.drop()
	}
}

// SparePID is the spare wrapper's pid, once the one being started, if
// any, is there; 0 when there is none.
func (t *Target) SparePID() int {
	t.awaitRefill()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.spare == nil {
		return 0
	}
	return t.spare.w.PID()
}

// awaitRefill waits for the spare being started, if any.
func (t *Target) awaitRefill() {
	t.mu.Lock()
	done := t.refilling
	t.mu.Unlock()
	if done != nil {
		<-done
	}
}

// SetSpareQuiet sets how long dispatching must pause before a spare is
// started; call it before the first dispatch.
func (t *Target) SetSpareQuiet(d time.Duration) { t.quiet = d }

// SparePending reports, without waiting, whether a spare is to be started
// once dispatching pauses and has not been yet.
func (t *Target) SparePending() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pending != nil
}
