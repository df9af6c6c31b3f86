package schedule

import "time"

// Fire is one upcoming slot.
type Fire struct {
	At time.Time
	// DST is set when At's UTC offset differs from the previous fire's (for
	// the first fire: from from's), that is when a daylight-saving
	// transition lies between them; the UI flags such times.
	DST bool
	// Shifted is set when the slot's wall-clock time did not exist that
	// day (a spring-forward gap) and dst_gap = "shift" moved it to the
	// gap's end, At.
	Shifted bool
	// SecondPass is set when At is the second time the slot's wall-clock
	// time came round (a repeated autumn hour): with dst_repeat = "twice",
	// or for an interval schedule, which follows the clock.
	SecondPass bool
}

// NextN lists up to n slots of s strictly after from, returned in loc (nil:
// UTC), which is also where a schedule from Parse reads its fields; one
// from WithDST reads them in its own zone. It stops early when s has no
// further slot; @manually gives none. The slots are s.Next's, policies
// included, so the listing shows what the Scheduler will fire.
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
		var k slotKind
		t, k = nextOf(s, t)
		if t.IsZero() {
			break
		}
		t = t.In(loc)
		_, off := t.Zone()
		out = append(out, Fire{At: t, DST: off != prevOff, Shifted: k&kindShifted != 0, SecondPass: k&kindSecondPass != 0})
		prevOff = off
	}
	return out
}
