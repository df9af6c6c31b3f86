package api

import (
	"time"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// ts renders a time as RFC 3339 UTC, and a zero time as null: a run that
// has not finished has no finished_at, not one in the year 1.
func ts(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

// dur renders a duration the way the configuration spells it.
func dur(d time.Duration) string { return wire.FormatDuration(d) }

// optDur renders an optional duration, where zero means "none", as null.
func optDur(d time.Duration) *string {
	if d == 0 {
		return nil
	}
	s := wire.FormatDuration(d)
	return &s
}
