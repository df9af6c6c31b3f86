package schedule

import "time"

// Fire is one upcoming slot.
type Fire struct {
	At time.Time
	// DST is set when At's UTC offset differs from the previous fire's (for
	// the first fire: from from's), that is when a daylight-saving
	// transition lies between them; the UI flags such times.
	DST bool
}

// NextN lists up to n slots of s strictly after from, computed and
// returned in loc (nil: UTC). It stops early when s has no further slot;
// @manually gives none.
//
// Around daylight-saving transitions the slots are robfig/cron's, not yet
// the configuration's dst_gap and dst_repeat policies: a fixed-hour slot
// inside a spring-forward gap (02:30 when 03:00 becomes 04:00 — or 03:30 in
// Europe/Bucharest) is skipped that day, as if dst_gap were "skip"; a
// fixed-hour slot inside the repeated autumn hour fires in both passes, as
// if dst_repeat were "twice". Slots with a wildcard or stepped hour follow
// the wall clock, so they simply have no slots in the gap.
func NextN(s Schedule, loc *time.Location, from time.Time, n int) []Fire {
	if loc == nil {
		loc = time.UTC
	}
	if s == nil || s.Manual() || n <= 0 {
		return nil
	}
	out := make([]Fire, 0, n)
	t := from.In(loc)
	_, prevOff := t.Zone()
	for len(out) < n {
		t = s.Next(t)
		if t.IsZero() {
			break
		}
		t = t.In(loc)
		_, off := t.Zone()
		out = append(out, Fire{At: t, DST: off != prevOff})
		prevOff = off
	}
	return out
}
