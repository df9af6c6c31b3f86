package schedule

// OnBlocked lets tests know when the loop waits for the receiver, which
// nothing else makes observable on an unbuffered channel. Call before Run.
func OnBlocked(s *Scheduler, f func(Firing)) { s.blocked = f }

// MaxWait is the longest the loop sleeps before reading the wall clock again.
const MaxWait = maxWait
