package schedule

import (
	"fmt"
	"time"
)

// The daylight-saving policies, spelled as in the configuration's dst_gap
// and dst_repeat.
const (
	GapShift    = "shift" // the default
	GapSkip     = "skip"
	RepeatOnce  = "once" // the default
	RepeatTwice = "twice"
)

// WithDST returns s bound to the zone loc (nil: UTC) and to the
// daylight-saving policies gap (GapShift, GapSkip; "" is GapShift) and
// repeat (RepeatOnce, RepeatTwice; "" is RepeatOnce). Its Next reads cron
// fields in loc whatever the location of its argument, and returns slots
// in loc. This is what the configuration stores as a job's schedule, so
// that the Scheduler, catch-up and the next-runs listing agree on every
// slot.
//
// The policies apply to fixed-hour schedules: cron whose hour field names
// its hours (a number, a range or a list: "2", "9-17", "2,14") and the
// descriptors but @hourly (they fire at 00:00). A slot is a wall-clock
// reading; on the day of a transition it may be no instant, or two:
//
//   - In a spring-forward gap (02:30 when 02:00 becomes 03:00) the reading
//     never happens. GapShift fires the slot at the end of the gap, the
//     first instant the clock reads later than the slot (03:00 there; 02:30
//     in Australia/Lord_Howe, whose clocks go from 02:00 to 02:30). GapSkip
//     does not fire it that day.
//   - In a repeated autumn hour (01:30 when 02:00 becomes 01:00 again) the
//     reading happens twice. RepeatOnce fires the slot in the first pass
//     only, RepeatTwice in both.
//
// Interval schedules, those whose hour field has a wildcard or a step
// ("0 */30 * * * *", @hourly), follow the wall clock whatever the
// policies: they have no slot in a gap and fire in both passes of a
// repeated hour, which keeps them at their interval in absolute time
// across a one-hour shift. "@every D" counts absolute time since the Unix
// epoch and knows no zone at all.
//
// A slot is identified by its instant, which is where the store records it:
// a shifted slot is recorded at the gap's end, a second pass at its own
// instant. Slots that land on the same instant (02:00 shifted to 03:00 by a
// "0 2,3 * * *" schedule) fire once. Next stays strictly increasing and
// gives the same instants from any starting point, so a restart neither
// repeats nor moves a slot.
func WithDST(s Schedule, loc *time.Location, gap, repeat string) (Schedule, error) {
	if loc == nil {
		loc = time.UTC
	}
	switch gap {
	case "", GapShift:
		gap = GapShift
	case GapSkip:
	default:
		return nil, fmt.Errorf("apply dst_gap %q: want %q or %q", gap, GapShift, GapSkip)
	}
	switch repeat {
	case "", RepeatOnce:
		repeat = RepeatOnce
	case RepeatTwice:
	default:
		return nil, fmt.Errorf("apply dst_repeat %q: want %q or %q", repeat, RepeatOnce, RepeatTwice)
	}
	switch v := s.(type) {
	case cronSchedule:
		v.loc, v.gap, v.repeat = loc, gap, repeat
		return v, nil
	case every:
		v.loc = loc
		return v, nil
	case manual:
		return v, nil
	}
	return nil, fmt.Errorf("apply daylight-saving policies to %v: not a schedule from Parse", s)
}

// SlotDST reports how the slot at of s came about: shifted when a
// spring-forward gap moved it to at (the gap's end), secondPass when at is
// the second time its wall-clock reading came round. Both are false for an
// ordinary slot and for an instant that is not a slot of s. The API uses
// it to flag fire times it is given as bare instants.
func SlotDST(s Schedule, at time.Time) (shifted, secondPass bool) {
	if s == nil {
		return false, false
	}
	t, k := nextOf(s, at.Add(-time.Nanosecond))
	if !t.Equal(at) {
		return false, false
	}
	return k&kindShifted != 0, k&kindSecondPass != 0
}

// slotKind says how a slot's instant follows from its wall-clock reading.
type slotKind uint8

const (
	kindShifted    slotKind = 1 << iota // moved to the end of a gap
	kindSecondPass                      // the reading's second occurrence
)

// slotter is a Schedule that can say how its slots came about.
type slotter interface {
	nextSlot(after time.Time) (time.Time, slotKind)
}

func nextOf(s Schedule, after time.Time) (time.Time, slotKind) {
	if k, ok := s.(slotter); ok {
		return k.nextSlot(after)
	}
	return s.Next(after), 0
}

// policyKey is what of a schedule besides its expression decides its
// slots; the Scheduler compares it on reload.
func (c cronSchedule) policyKey() string {
	k := ""
	if c.loc != nil {
		k = c.loc.String()
	}
	if c.fixedHour {
		k += " dst_gap=" + c.gapPolicy() + " dst_repeat=" + c.repeatPolicy()
	}
	return k
}

func (e every) policyKey() string {
	if e.loc == nil {
		return ""
	}
	return e.loc.String()
}

func (c cronSchedule) gapPolicy() string {
	if c.gap == "" {
		return GapShift
	}
	return c.gap
}

func (c cronSchedule) repeatPolicy() string {
	if c.repeat == "" {
		return RepeatOnce
	}
	return c.repeat
}

// nextSlot is Next, with how the slot came about.
//
// robfig/cron matches the fields against wall-clock readings expressed in
// UTC, where every reading exists exactly once. Each reading W then maps
// to instants in the zone (wallInstants). The instant at which the clock
// first reads W or later, first(W), never decreases as W grows; a second
// pass comes after its first. So the readings are walked in order from
// the lowest that can still give an instant after after, and the walk
// stops at the first reading whose first(W) is no earlier than the best
// instant found: no later reading can give an earlier one.
//
// The walk usually takes one reading. It takes more near an autumn
// transition, where readings before after's own may have a second pass
// still to come: at most the repeated hour's matches.
func (c cronSchedule) nextSlot(after time.Time) (time.Time, slotKind) {
	loc := c.loc
	if loc == nil {
		loc = after.Location()
	}
	after = after.In(loc)
	// An interval schedule follows the clock: no slot where the clock
	// does not go, a slot each time it reads a matching time.
	skipGap, twice := true, true
	if c.fixedHour {
		skipGap, twice = c.gapPolicy() == GapSkip, c.repeatPolicy() == RepeatTwice
	}

	// A reading earlier than after's own gives an instant after after
	// only if the clock goes back before reaching it: the lowest offset in
	// force from after until such a reading decides where to start.
	_, off := after.Zone()
	low := off
	if _, end := after.ZoneBounds(); !end.IsZero() {
		if _, next := end.Zone(); next < off && end.Sub(after) <= time.Duration(off-next)*time.Second {
			low = next
		}
	}
	from := after.UTC().Add(time.Duration(low) * time.Second)
	limit := from.AddDate(5, 0, 0)

	var best time.Time
	var kind slotKind
	offer := func(t time.Time, k slotKind) {
		switch {
		case !t.After(after):
		case best.IsZero() || t.Before(best):
			best, kind = t, k
		case t.Equal(best):
			kind |= k
		}
	}
	for w := c.spec.Next(from); !w.IsZero() && !w.After(limit); w = c.spec.Next(w) {
		wi := wallInstants(w, loc)
		switch {
		case wi.gap:
			if !skipGap {
				offer(wi.first, kindShifted)
			}
		default:
			offer(wi.first, 0)
			if twice && !wi.second.IsZero() {
				offer(wi.second, kindSecondPass)
			}
		}
		if !best.IsZero() && !wi.first.Before(best) {
			break
		}
	}
	if best.IsZero() {
		return time.Time{}, 0
	}
	return best.In(loc), kind
}

// readings is what one wall-clock reading comes to in a zone.
type readings struct {
	// first is the first instant the clock reads the time or later: the
	// reading itself, its first pass, or the end of the gap it falls in.
	first time.Time
	// second is the reading's second pass; zero unless it is repeated.
	second time.Time
	// gap: the clock never reads it; first is the gap's end.
	gap bool
}

// wallInstants maps the wall-clock reading w, given as a UTC time whose
// fields are the reading, to instants in loc. Offsets are probed a day
// either side: every instant whose reading is w lies within 14 hours of w
// read as UTC, and zones do not change offset twice in two days.
func wallInstants(w time.Time, loc *time.Location) readings {
	u := w.Unix()
	before, after := offsetAt(u-86400, loc), offsetAt(u+86400, loc)
	if before == after {
		return readings{first: time.Unix(u-before, 0)}
	}
	cb, ca := u-before, u-after // w read with each offset
	vb, va := offsetAt(cb, loc) == before, offsetAt(ca, loc) == after
	switch {
	case vb && va:
		// Read twice: the clock went back. The larger offset is the
		// earlier instant.
		return readings{first: time.Unix(min(cb, ca), 0), second: time.Unix(max(cb, ca), 0)}
	case vb:
		return readings{first: time.Unix(cb, 0)}
	case va:
		return readings{first: time.Unix(ca, 0)}
	}
	// Never read: the clock jumped over it. Read with either offset it
	// lands after the jump or before; the jump is the start of the zone
	// in force at the later of the two.
	start, _ := time.Unix(max(cb, ca), 0).In(loc).ZoneBounds()
	if start.IsZero() {
		start = time.Unix(max(cb, ca), 0)
	}
	return readings{first: start, gap: true}
}

func offsetAt(unix int64, loc *time.Location) int64 {
	_, off := time.Unix(unix, 0).In(loc).Zone()
	return int64(off)
}
