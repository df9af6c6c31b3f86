//go:build !linux

package schedule

import "time"

// newPreciseTimer has no timer more precise than Go's to offer here.
func newPreciseTimer(time.Duration) Timer { return nil }
