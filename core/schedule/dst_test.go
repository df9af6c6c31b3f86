package schedule_test

import (
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/schedule"
)

// The transitions below were read from Go's tzdata (time.LoadLocation,
// ZoneBounds) before the expectations were written by hand:
//
//	America/New_York     2026-03-08 07:00Z  02:00 EST  -> 03:00 EDT  (gap 02:00-03:00)
//	                     2026-11-01 06:00Z  02:00 EDT  -> 01:00 EST  (01:00-02:00 twice)
//	Europe/London        2026-03-29 01:00Z  01:00 GMT  -> 02:00 BST  (gap 01:00-02:00)
//	                     2026-10-25 01:00Z  02:00 BST  -> 01:00 GMT  (01:00-02:00 twice)
//	Australia/Lord_Howe  2026-04-04 15:00Z  02:00 +11  -> 01:30 +1030 (01:30-02:00 twice)
//	                     2026-10-03 15:30Z  02:00 +1030 -> 02:30 +11  (gap 02:00-02:30)

// fire is one expected slot: its instant in RFC 3339 with the zone's
// offset, and "shifted" or "second" when the policy made it so.
type fire struct {
	at   string
	flag string
}

// policies lists the four dst_gap × dst_repeat combinations.
var policies = [][2]string{
	{schedule.GapShift, schedule.RepeatOnce},
	{schedule.GapShift, schedule.RepeatTwice},
	{schedule.GapSkip, schedule.RepeatOnce},
	{schedule.GapSkip, schedule.RepeatTwice},
}

// either marks a policy the expectation does not depend on.
const either = "either"

func TestDSTPolicies(t *testing.T) {
	tests := []struct {
		name   string
		zone   string
		expr   string
		gap    string // either: the same for both
		repeat string // either: the same for both
		from   string
		want   []fire
	}{
		// America/New_York, spring: 02:00 EST becomes 03:00 EDT.
		{"NY gap, inside, shift", "America/New_York", "0 30 2 * * *", "shift", either, "2026-03-07T00:00:00-05:00", []fire{
			{"2026-03-07T02:30:00-05:00", ""}, {"2026-03-08T03:00:00-04:00", "shifted"}, {"2026-03-09T02:30:00-04:00", ""}}},
		{"NY gap, inside, skip", "America/New_York", "0 30 2 * * *", "skip", either, "2026-03-07T00:00:00-05:00", []fire{
			{"2026-03-07T02:30:00-05:00", ""}, {"2026-03-09T02:30:00-04:00", ""}, {"2026-03-10T02:30:00-04:00", ""}}},
		{"NY gap, at its start, shift", "America/New_York", "0 0 2 * * *", "shift", either, "2026-03-08T00:00:00-05:00", []fire{
			{"2026-03-08T03:00:00-04:00", "shifted"}, {"2026-03-09T02:00:00-04:00", ""}}},
		{"NY gap, at its start, skip", "America/New_York", "0 0 2 * * *", "skip", either, "2026-03-08T00:00:00-05:00", []fire{
			{"2026-03-09T02:00:00-04:00", ""}}},
		{"NY gap, shifted slot meets a real one: fires once", "America/New_York", "0 0 2,3 * * *", "shift", either, "2026-03-08T00:00:00-05:00", []fire{
			{"2026-03-08T03:00:00-04:00", "shifted"}, {"2026-03-09T02:00:00-04:00", ""}, {"2026-03-09T03:00:00-04:00", ""}}},
		{"NY gap, stepped minute in a fixed hour, shift", "America/New_York", "0 */20 2 * * *", "shift", either, "2026-03-08T00:00:00-05:00", []fire{
			{"2026-03-08T03:00:00-04:00", "shifted"}, {"2026-03-09T02:00:00-04:00", ""}}},
		{"NY gap, just before", "America/New_York", "0 59 1 * * *", either, either, "2026-03-08T00:00:00-05:00", []fire{
			{"2026-03-08T01:59:00-05:00", ""}, {"2026-03-09T01:59:00-04:00", ""}}},
		{"NY gap, at its end", "America/New_York", "0 0 3 * * *", either, either, "2026-03-08T00:00:00-05:00", []fire{
			{"2026-03-08T03:00:00-04:00", ""}, {"2026-03-09T03:00:00-04:00", ""}}},
		{"NY gap, interval cron", "America/New_York", "0 */30 * * * *", either, either, "2026-03-08T01:15:00-05:00", []fire{
			{"2026-03-08T01:30:00-05:00", ""}, {"2026-03-08T03:00:00-04:00", ""}, {"2026-03-08T03:30:00-04:00", ""}}},
		{"NY gap, @every 1h", "America/New_York", "@every 1h", either, either, "2026-03-08T00:30:00-05:00", []fire{
			{"2026-03-08T01:00:00-05:00", ""}, {"2026-03-08T03:00:00-04:00", ""}, {"2026-03-08T04:00:00-04:00", ""}}},

		// America/New_York, autumn: 02:00 EDT becomes 01:00 EST.
		{"NY repeat, inside, once", "America/New_York", "0 30 1 * * *", either, "once", "2026-10-31T12:00:00-04:00", []fire{
			{"2026-11-01T01:30:00-04:00", ""}, {"2026-11-02T01:30:00-05:00", ""}}},
		{"NY repeat, inside, twice", "America/New_York", "0 30 1 * * *", either, "twice", "2026-10-31T12:00:00-04:00", []fire{
			{"2026-11-01T01:30:00-04:00", ""}, {"2026-11-01T01:30:00-05:00", "second"}, {"2026-11-02T01:30:00-05:00", ""}}},
		{"NY repeat, at its start, once", "America/New_York", "0 0 1 * * *", either, "once", "2026-10-31T12:00:00-04:00", []fire{
			{"2026-11-01T01:00:00-04:00", ""}, {"2026-11-02T01:00:00-05:00", ""}}},
		{"NY repeat, at its start, twice", "America/New_York", "0 0 1 * * *", either, "twice", "2026-10-31T12:00:00-04:00", []fire{
			{"2026-11-01T01:00:00-04:00", ""}, {"2026-11-01T01:00:00-05:00", "second"}, {"2026-11-02T01:00:00-05:00", ""}}},
		{"NY repeat, @daily", "America/New_York", "@daily", either, either, "2026-10-31T12:00:00-04:00", []fire{
			{"2026-11-01T00:00:00-04:00", ""}, {"2026-11-02T00:00:00-05:00", ""}}},
		{"NY repeat, just before", "America/New_York", "0 59 0 * * *", either, either, "2026-10-31T12:00:00-04:00", []fire{
			{"2026-11-01T00:59:00-04:00", ""}, {"2026-11-02T00:59:00-05:00", ""}}},
		{"NY repeat, just after: 02:00 comes once", "America/New_York", "0 0 2 * * *", either, either, "2026-10-31T12:00:00-04:00", []fire{
			{"2026-11-01T02:00:00-05:00", ""}, {"2026-11-02T02:00:00-05:00", ""}}},
		{"NY repeat, interval cron", "America/New_York", "0 */30 * * * *", either, either, "2026-11-01T00:45:00-04:00", []fire{
			{"2026-11-01T01:00:00-04:00", ""}, {"2026-11-01T01:30:00-04:00", ""},
			{"2026-11-01T01:00:00-05:00", "second"}, {"2026-11-01T01:30:00-05:00", "second"}, {"2026-11-01T02:00:00-05:00", ""}}},
		{"NY repeat, @every 1h", "America/New_York", "@every 1h", either, either, "2026-11-01T00:30:00-04:00", []fire{
			{"2026-11-01T01:00:00-04:00", ""}, {"2026-11-01T01:00:00-05:00", ""}, {"2026-11-01T02:00:00-05:00", ""}}},

		// Europe/London, spring: 01:00 GMT becomes 02:00 BST.
		{"London gap, inside, shift", "Europe/London", "0 30 1 * * *", "shift", either, "2026-03-28T00:00:00Z", []fire{
			{"2026-03-28T01:30:00Z", ""}, {"2026-03-29T02:00:00+01:00", "shifted"}, {"2026-03-30T01:30:00+01:00", ""}}},
		{"London gap, inside, skip", "Europe/London", "0 30 1 * * *", "skip", either, "2026-03-28T00:00:00Z", []fire{
			{"2026-03-28T01:30:00Z", ""}, {"2026-03-30T01:30:00+01:00", ""}, {"2026-03-31T01:30:00+01:00", ""}}},
		{"London gap, just before", "Europe/London", "0 59 0 * * *", either, either, "2026-03-29T00:00:00Z", []fire{
			{"2026-03-29T00:59:00Z", ""}, {"2026-03-30T00:59:00+01:00", ""}}},
		{"London gap, at its end", "Europe/London", "0 0 2 * * *", either, either, "2026-03-29T00:00:00Z", []fire{
			{"2026-03-29T02:00:00+01:00", ""}, {"2026-03-30T02:00:00+01:00", ""}}},
		{"London gap, interval cron", "Europe/London", "0 */30 * * * *", either, either, "2026-03-29T00:15:00Z", []fire{
			{"2026-03-29T00:30:00Z", ""}, {"2026-03-29T02:00:00+01:00", ""}, {"2026-03-29T02:30:00+01:00", ""}}},

		// Europe/London, autumn: 02:00 BST becomes 01:00 GMT.
		{"London repeat, inside, once", "Europe/London", "0 30 1 * * *", either, "once", "2026-10-24T12:00:00+01:00", []fire{
			{"2026-10-25T01:30:00+01:00", ""}, {"2026-10-26T01:30:00Z", ""}}},
		{"London repeat, inside, twice", "Europe/London", "0 30 1 * * *", either, "twice", "2026-10-24T12:00:00+01:00", []fire{
			{"2026-10-25T01:30:00+01:00", ""}, {"2026-10-25T01:30:00Z", "second"}, {"2026-10-26T01:30:00Z", ""}}},
		{"London repeat, just after", "Europe/London", "0 0 2 * * *", either, either, "2026-10-24T12:00:00+01:00", []fire{
			{"2026-10-25T02:00:00Z", ""}, {"2026-10-26T02:00:00Z", ""}}},
		{"London repeat, just before", "Europe/London", "0 59 0 * * *", either, either, "2026-10-24T12:00:00+01:00", []fire{
			{"2026-10-25T00:59:00+01:00", ""}, {"2026-10-26T00:59:00Z", ""}}},
		{"London repeat, interval cron", "Europe/London", "0 */30 * * * *", either, either, "2026-10-25T00:45:00+01:00", []fire{
			{"2026-10-25T01:00:00+01:00", ""}, {"2026-10-25T01:30:00+01:00", ""},
			{"2026-10-25T01:00:00Z", "second"}, {"2026-10-25T01:30:00Z", "second"}, {"2026-10-25T02:00:00Z", ""}}},

		// Australia/Lord_Howe, autumn (April): 02:00 +11 becomes 01:30 +1030.
		{"Lord Howe repeat, inside, once", "Australia/Lord_Howe", "0 45 1 * * *", either, "once", "2026-04-04T12:00:00+11:00", []fire{
			{"2026-04-05T01:45:00+11:00", ""}, {"2026-04-06T01:45:00+10:30", ""}}},
		{"Lord Howe repeat, inside, twice", "Australia/Lord_Howe", "0 45 1 * * *", either, "twice", "2026-04-04T12:00:00+11:00", []fire{
			{"2026-04-05T01:45:00+11:00", ""}, {"2026-04-05T01:45:00+10:30", "second"}, {"2026-04-06T01:45:00+10:30", ""}}},
		{"Lord Howe repeat, just before: 01:15 comes once", "Australia/Lord_Howe", "0 15 1 * * *", either, either, "2026-04-04T12:00:00+11:00", []fire{
			{"2026-04-05T01:15:00+11:00", ""}, {"2026-04-06T01:15:00+10:30", ""}}},
		{"Lord Howe repeat, just after", "Australia/Lord_Howe", "0 0 2 * * *", either, either, "2026-04-04T12:00:00+11:00", []fire{
			{"2026-04-05T02:00:00+10:30", ""}, {"2026-04-06T02:00:00+10:30", ""}}},
		{"Lord Howe repeat, interval cron", "Australia/Lord_Howe", "0 */30 * * * *", either, either, "2026-04-05T00:45:00+11:00", []fire{
			{"2026-04-05T01:00:00+11:00", ""}, {"2026-04-05T01:30:00+11:00", ""},
			{"2026-04-05T01:30:00+10:30", "second"}, {"2026-04-05T02:00:00+10:30", ""}, {"2026-04-05T02:30:00+10:30", ""}}},

		// Australia/Lord_Howe, spring (October): 02:00 +1030 becomes 02:30 +11.
		{"Lord Howe gap, inside, shift", "Australia/Lord_Howe", "0 15 2 * * *", "shift", either, "2026-10-03T12:00:00+10:30", []fire{
			{"2026-10-04T02:30:00+11:00", "shifted"}, {"2026-10-05T02:15:00+11:00", ""}}},
		{"Lord Howe gap, inside, skip", "Australia/Lord_Howe", "0 15 2 * * *", "skip", either, "2026-10-03T12:00:00+10:30", []fire{
			{"2026-10-05T02:15:00+11:00", ""}, {"2026-10-06T02:15:00+11:00", ""}}},
		{"Lord Howe gap, at its start, shift", "Australia/Lord_Howe", "0 0 2 * * *", "shift", either, "2026-10-03T12:00:00+10:30", []fire{
			{"2026-10-04T02:30:00+11:00", "shifted"}, {"2026-10-05T02:00:00+11:00", ""}}},
		{"Lord Howe gap, at its end", "Australia/Lord_Howe", "0 30 2 * * *", either, either, "2026-10-03T12:00:00+10:30", []fire{
			{"2026-10-04T02:30:00+11:00", ""}, {"2026-10-05T02:30:00+11:00", ""}}},
		{"Lord Howe gap, just before", "Australia/Lord_Howe", "0 45 1 * * *", either, either, "2026-10-03T12:00:00+10:30", []fire{
			{"2026-10-04T01:45:00+10:30", ""}, {"2026-10-05T01:45:00+11:00", ""}}},
		{"Lord Howe gap, interval cron", "Australia/Lord_Howe", "0 */30 * * * *", either, either, "2026-10-04T01:15:00+10:30", []fire{
			{"2026-10-04T01:30:00+10:30", ""}, {"2026-10-04T02:30:00+11:00", ""}, {"2026-10-04T03:00:00+11:00", ""}}},
		{"Lord Howe gap, @every 1h", "Australia/Lord_Howe", "@every 1h", either, either, "2026-10-04T01:15:00+10:30", []fire{
			{"2026-10-04T01:30:00+10:30", ""}, {"2026-10-04T03:00:00+11:00", ""}, {"2026-10-04T04:00:00+11:00", ""}}},
	}
	for _, tt := range tests {
		for _, p := range policies {
			if (tt.gap != either && tt.gap != p[0]) || (tt.repeat != either && tt.repeat != p[1]) {
				continue
			}
			t.Run(tt.name+"/"+p[0]+","+p[1], func(t *testing.T) {
				loc := mustLoc(t, tt.zone)
				s := mustDST(t, tt.expr, loc, p[0], p[1])
				from := mustTime(t, tt.from)
				checkFires(t, schedule.NextN(s, loc, from, len(tt.want)), tt.want)

				// Next alone, from a UTC argument, walks the same slots:
				// the zone is the schedule's, not the argument's.
				at := from.UTC()
				for i, w := range tt.want {
					next := s.Next(at)
					if got := next.Format(time.RFC3339); got != w.at || next.Location() != loc {
						t.Fatalf("Next #%d from %s = %s in %s, want %s in %s", i, at, got, next.Location(), w.at, loc)
					}
					at = next.UTC()
				}
			})
		}
	}
}

// Which schedules the policies apply to: an hour field naming hours
// (number, range, list) and the descriptors but @hourly; not a wildcard or
// a step. With dst_gap = "shift", a fixed-hour 02:30 on New York's gap day
// fires at 03:00 EDT, flagged; an interval schedule just has no slot in
// the gap.
func TestFixedHourDetection(t *testing.T) {
	tests := []struct {
		zone, expr, from string
		want             fire
	}{
		{"America/New_York", "30 2 * * *", "2026-03-08T01:45:00-05:00", fire{"2026-03-08T03:00:00-04:00", "shifted"}},
		{"America/New_York", "30 1-3 * * *", "2026-03-08T01:45:00-05:00", fire{"2026-03-08T03:00:00-04:00", "shifted"}},
		{"America/New_York", "30 2,14 * * *", "2026-03-08T01:45:00-05:00", fire{"2026-03-08T03:00:00-04:00", "shifted"}},
		{"America/New_York", "30 */2 * * *", "2026-03-08T01:45:00-05:00", fire{"2026-03-08T04:30:00-04:00", ""}},
		{"America/New_York", "30 0-23/2 * * *", "2026-03-08T01:45:00-05:00", fire{"2026-03-08T04:30:00-04:00", ""}},
		{"America/New_York", "30 * * * *", "2026-03-08T01:45:00-05:00", fire{"2026-03-08T03:30:00-04:00", ""}},
		{"America/New_York", "@hourly", "2026-03-08T01:45:00-05:00", fire{"2026-03-08T03:00:00-04:00", ""}},
		// Havana goes from 00:00 CST to 01:00 CDT on 2026-03-08: midnight
		// does not exist, and @daily is fixed at 00:00.
		{"America/Havana", "@daily", "2026-03-07T12:00:00-05:00", fire{"2026-03-08T01:00:00-04:00", "shifted"}},
	}
	for _, tt := range tests {
		t.Run(tt.zone+"/"+tt.expr, func(t *testing.T) {
			loc := mustLoc(t, tt.zone)
			s := mustDST(t, tt.expr, loc, schedule.GapShift, schedule.RepeatOnce)
			checkFires(t, schedule.NextN(s, loc, mustTime(t, tt.from), 1), []fire{tt.want})
		})
	}
}

// Next from an instant inside a transition: the first or the second pass
// of a repeated hour, or the very end of a gap.
func TestDSTNextFromInside(t *testing.T) {
	tests := []struct {
		name, zone, expr, gap, repeat string
		after                         string
		want                          string
	}{
		{"twice, in the first pass: the second pass of an earlier slot comes first", "America/New_York", "0 0,30 1 * * *", "shift", "twice",
			"2026-11-01T01:45:00-04:00", "2026-11-01T01:00:00-05:00"},
		{"once, in the first pass: the next day", "America/New_York", "0 0,30 1 * * *", "shift", "once",
			"2026-11-01T01:45:00-04:00", "2026-11-02T01:00:00-05:00"},
		{"twice, in the second pass", "America/New_York", "0 0,30 1 * * *", "shift", "twice",
			"2026-11-01T01:10:00-05:00", "2026-11-01T01:30:00-05:00"},
		{"once, in the second pass: 01:30 already fired in the first", "America/New_York", "0 0,30 1 * * *", "shift", "once",
			"2026-11-01T01:10:00-05:00", "2026-11-02T01:00:00-05:00"},
		{"interval, in the first pass", "America/New_York", "0 */30 * * * *", "shift", "once",
			"2026-11-01T01:45:00-04:00", "2026-11-01T01:00:00-05:00"},
		{"once, from the first pass's slot itself", "Europe/London", "0 30 1 * * *", "shift", "once",
			"2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00Z"},
		{"twice, from the first pass's slot itself", "Europe/London", "0 30 1 * * *", "shift", "twice",
			"2026-10-25T01:30:00+01:00", "2026-10-25T01:30:00Z"},
		{"shift, a nanosecond before the gap's end", "America/New_York", "0 30 2,3 * * *", "shift", "once",
			"2026-03-08T01:59:59.999999999-05:00", "2026-03-08T03:00:00-04:00"},
		{"shift, from the shifted slot: it does not come again", "America/New_York", "0 30 2,3 * * *", "shift", "once",
			"2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"},
		{"shift, thirty-minute gap, from inside its hour", "Australia/Lord_Howe", "0 10,40 2 * * *", "shift", "once",
			"2026-10-04T01:50:00+10:30", "2026-10-04T02:30:00+11:00"},
		{"shift, thirty-minute gap, after the shifted slot", "Australia/Lord_Howe", "0 10,40 2 * * *", "shift", "once",
			"2026-10-04T02:30:00+11:00", "2026-10-04T02:40:00+11:00"},
		{"twice, thirty-minute repeat, in the second pass", "Australia/Lord_Howe", "0 35,50 1 * * *", "shift", "twice",
			"2026-04-05T01:40:00+10:30", "2026-04-05T01:50:00+10:30"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := mustLoc(t, tt.zone)
			s := mustDST(t, tt.expr, loc, tt.gap, tt.repeat)
			got := s.Next(mustTime(t, tt.after))
			if got.Format(time.RFC3339Nano) != tt.want {
				t.Errorf("Next(%s) = %s, want %s", tt.after, got.Format(time.RFC3339Nano), tt.want)
			}
		})
	}
}

// The slots of a schedule are instants that do not depend on where the
// enumeration starts: a core restarted at any moment finds the same ones.
func TestDSTSlotsStableAcrossStarts(t *testing.T) {
	day := func(s string) time.Time { return mustTime(t, s+"T00:00:00Z") }
	// Three days around each transition of 2026.
	windows := map[string][][2]time.Time{
		"America/New_York":    {{day("2026-03-07"), day("2026-03-10")}, {day("2026-10-31"), day("2026-11-03")}},
		"Europe/London":       {{day("2026-03-28"), day("2026-03-31")}, {day("2026-10-24"), day("2026-10-27")}},
		"Australia/Lord_Howe": {{day("2026-04-03"), day("2026-04-06")}, {day("2026-10-02"), day("2026-10-05")}},
	}
	for zone, wins := range windows {
		for _, expr := range []string{"0 30 1 * * *", "0 15,45 1,2 * * *", "0 */30 * * * *", "@daily"} {
			for _, p := range policies {
				t.Run(zone+"/"+expr+"/"+p[0]+","+p[1], func(t *testing.T) {
					s := mustDST(t, expr, mustLoc(t, zone), p[0], p[1])
					for _, w := range wins {
						checkStable(t, s, w[0], w[1])
					}
				})
			}
		}
	}
}

// checkStable lists the slots from start to end one by one, requires them
// strictly increasing, and requires Next from any instant in between, from
// each slot and from just before each slot to give the listed slot.
func checkStable(t *testing.T, s schedule.Schedule, start, end time.Time) {
	t.Helper()
	var slots []time.Time
	for at := s.Next(start); at.Before(end); at = s.Next(at) {
		if n := len(slots); n > 0 && !at.After(slots[n-1]) {
			t.Fatalf("Next went from %s to %s", slots[n-1], at)
		}
		slots = append(slots, at)
	}
	if len(slots) < 2 {
		t.Fatalf("only %d slots from %s to %s", len(slots), start, end)
	}
	i := 0
	for at := start; at.Before(slots[len(slots)-1]); at = at.Add(7*time.Minute + 13*time.Second) {
		for !slots[i].After(at) {
			i++
		}
		if got := s.Next(at); !got.Equal(slots[i]) {
			t.Fatalf("Next(%s) = %s, want %s", at, got, slots[i])
		}
	}
	for i, slot := range slots {
		if got := s.Next(slot.Add(-time.Nanosecond)); !got.Equal(slot) {
			t.Fatalf("Next(just before %s) = %s", slot, got)
		}
		if i+1 < len(slots) {
			if got := s.Next(slot); !got.Equal(slots[i+1]) {
				t.Fatalf("Next(%s) = %s, want %s", slot, got, slots[i+1])
			}
		}
	}
}

func TestSlotDST(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	tests := []struct {
		expr, gap, repeat, at string
		shifted, second       bool
	}{
		{"0 30 2 * * *", "shift", "once", "2026-03-08T03:00:00-04:00", true, false},
		{"0 30 2 * * *", "skip", "once", "2026-03-08T03:00:00-04:00", false, false}, // not a slot
		{"0 0 3 * * *", "shift", "once", "2026-03-08T03:00:00-04:00", false, false},
		{"0 30 1 * * *", "shift", "twice", "2026-11-01T01:30:00-04:00", false, false},
		{"0 30 1 * * *", "shift", "twice", "2026-11-01T01:30:00-05:00", false, true},
		{"0 30 1 * * *", "shift", "once", "2026-11-01T01:30:00-05:00", false, false}, // not a slot
	}
	for _, tt := range tests {
		t.Run(tt.expr+"/"+tt.gap+","+tt.repeat+"/"+tt.at, func(t *testing.T) {
			s := mustDST(t, tt.expr, ny, tt.gap, tt.repeat)
			shifted, second := schedule.SlotDST(s, mustTime(t, tt.at).UTC())
			if shifted != tt.shifted || second != tt.second {
				t.Errorf("SlotDST = shifted %v, second pass %v; want %v, %v", shifted, second, tt.shifted, tt.second)
			}
		})
	}
}

func TestWithDSTRefuses(t *testing.T) {
	s := mustParse(t, "0 30 2 * * *")
	tests := []struct{ gap, repeat, want string }{
		{"later", "once", `dst_gap "later"`},
		{"shift", "thrice", `dst_repeat "thrice"`},
	}
	for _, tt := range tests {
		if _, err := schedule.WithDST(s, time.UTC, tt.gap, tt.repeat); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("WithDST(%q, %q) = %v, want an error containing %q", tt.gap, tt.repeat, err, tt.want)
		}
	}
	if _, err := schedule.WithDST(nil, time.UTC, "", ""); err == nil {
		t.Error("WithDST(nil) gave no error")
	}
	// "" is the default; @manually stays manual.
	m, err := schedule.WithDST(mustParse(t, "@manually"), nil, "", "")
	if err != nil || !m.Manual() {
		t.Errorf("WithDST(@manually) = %v, %v", m, err)
	}
}

func mustDST(t *testing.T, expr string, loc *time.Location, gap, repeat string) schedule.Schedule {
	t.Helper()
	s, err := schedule.WithDST(mustParse(t, expr), loc, gap, repeat)
	if err != nil {
		t.Fatalf("WithDST(%q, %s, %q, %q): %v", expr, loc, gap, repeat, err)
	}
	return s
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return at
}

// checkFires compares NextN's fires with the expected ones, offsets and
// flags included; DST must be set exactly where the offset changed.
func checkFires(t *testing.T, got []schedule.Fire, want []fire) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d fires %v, want %d", len(got), got, len(want))
	}
	for i, f := range got {
		flag := ""
		switch {
		case f.Shifted && f.SecondPass:
			flag = "shifted+second"
		case f.Shifted:
			flag = "shifted"
		case f.SecondPass:
			flag = "second"
		}
		if at := f.At.Format(time.RFC3339); at != want[i].at || flag != want[i].flag {
			t.Errorf("fire %d = %s %q, want %s %q", i, at, flag, want[i].at, want[i].flag)
		}
		if i > 0 {
			_, prev := got[i-1].At.Zone()
			_, off := f.At.Zone()
			if f.DST != (off != prev) {
				t.Errorf("fire %d (%s) DST = %v, want %v", i, want[i].at, f.DST, off != prev)
			}
		}
	}
}
