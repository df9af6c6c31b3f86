package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// Schedule yields a job's slots.
type Schedule interface {
	// Next returns the first slot strictly after after, or the zero time
	// when there is none (@manually, or a cron expression that matches no
	// date within five years). A schedule from Parse reads cron fields in
	// after's location and returns the slot in it, so the caller converts
	// after to the job's time zone first; one from WithDST reads them in
	// its own zone and returns slots there, whatever after's location.
	// @every ignores zones: its slots are instants. For the same after,
	// Next always gives the same instant, so that a slot is the same across
	// restarts.
	Next(after time.Time) time.Time
	// Manual reports whether the schedule never fires by itself.
	Manual() bool
	// String is the normalised expression: equal strings mean the same
	// expression. The zone and daylight-saving policies WithDST adds are
	// not part of it; the Scheduler compares those too when it tells
	// whether a reload left a job's schedule unchanged.
	String() string
}

// The descriptors robfig/cron knows, besides @every.
var descriptors = map[string]bool{
	"@yearly": true, "@annually": true, "@monthly": true, "@weekly": true,
	"@daily": true, "@midnight": true, "@hourly": true,
}

const descriptorHint = "@hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually, @every 10s or @manually"

// SecondOptional: 6 fields put seconds first, 5 fields are classic cron
// with the second at 0.
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour |
	cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse reads a schedule expression: cron with 5 fields (minute first) or
// 6 (second first), a descriptor (@hourly, @daily, @midnight, @weekly,
// @monthly, @yearly, @annually), "@every D" with D a duration of whole
// seconds, at least 1s (days allowed: "@every 1d"), or "@manually".
//
// The schedule reads cron fields in the location of the time given to
// Next, with the default daylight-saving policies (shift, once); WithDST
// binds it to a zone and to the job's policies.
func Parse(expr string) (Schedule, error) {
	s := strings.TrimSpace(expr)
	switch {
	case s == "":
		return nil, fmt.Errorf("empty schedule: use a cron expression such as \"0 30 2 * * *\" or one of %s", descriptorHint)
	case strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ="):
		// robfig accepts a zone prefix, but the job's timezone attribute is
		// the one place a zone is set; two would disagree.
		return nil, errors.New("a time zone prefix is not accepted in the schedule: set the job's timezone attribute instead")
	case strings.HasPrefix(s, "@"):
		return parseDescriptor(s)
	}
	return parseCron(s)
}

func parseDescriptor(s string) (Schedule, error) {
	fields := strings.Fields(s)
	name := strings.ToLower(fields[0])
	switch {
	case name == "@manually":
		if len(fields) > 1 {
			return nil, fmt.Errorf("@manually takes no argument, found %q", strings.Join(fields[1:], " "))
		}
		return manual{}, nil
	case name == "@every":
		if len(fields) != 2 {
			return nil, errors.New("@every needs one duration, such as \"@every 10s\" or \"@every 1h30m\"")
		}
		d, err := wire.ParseDuration(fields[1])
		if err != nil {
			return nil, fmt.Errorf("@every: %v", err)
		}
		if d < time.Second {
			return nil, fmt.Errorf("@every %s: the interval must be at least 1s", fields[1])
		}
		if d%time.Second != 0 {
			// Slots are fired with second precision; a fraction would make
			// slots that cannot be hit exactly.
			return nil, fmt.Errorf("@every %s: the interval must be a whole number of seconds", fields[1])
		}
		return every{d: d}, nil
	case descriptors[name]:
		if len(fields) > 1 {
			return nil, fmt.Errorf("%s takes no argument, found %q", name, strings.Join(fields[1:], " "))
		}
		sched, err := parser.Parse(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		// Every descriptor but @hourly names its hour: 00:00.
		return cronSchedule{spec: sched.(*cron.SpecSchedule), expr: name, fixedHour: name != "@hourly"}, nil
	}
	return nil, fmt.Errorf("unknown descriptor %q: use %s", fields[0], descriptorHint)
}

var (
	names5 = []string{"minute", "hour", "day-of-month", "month", "day-of-week"}
	names6 = append([]string{"second"}, names5...)
)

func parseCron(s string) (Schedule, error) {
	fields := strings.Fields(s)
	var names []string
	switch len(fields) {
	case 5:
		names = names5
	case 6:
		names = names6
	default:
		return nil, fmt.Errorf("a cron schedule has 5 fields (minute hour day-of-month month day-of-week) or 6 (second first); %q has %d", s, len(fields))
	}
	expr := strings.Join(fields, " ")
	sched, err := parser.Parse(expr)
	if err != nil {
		return nil, fieldError(fields, names, err)
	}
	spec, ok := sched.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("cron schedule %q: unexpected schedule type %T", expr, sched)
	}
	// robfig looks five years ahead, which covers 29 February; finding
	// nothing from any start means the expression names no real date.
	if spec.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, fmt.Errorf("cron schedule %q never fires: no date matches its day-of-month and month (such as 30 February)", expr)
	}
	hour := fields[len(fields)-4]
	return cronSchedule{spec: spec, expr: expr, fixedHour: fixedHourField(hour)}, nil
}

// fixedHourField reports whether a cron hour field names its hours: a
// number, a range or a list of them ("2", "9-17", "2,14"). A wildcard or a
// step anywhere in it ("*", "?", "*/2", "1-23/2") makes the hour follow the
// clock instead, and the schedule is an interval one for daylight saving
// (see WithDST).
func fixedHourField(f string) bool { return !strings.ContainsAny(f, "*?/") }

// fieldError names the field robfig rejected: its own message does not say
// which one it was, and an operator reads fields by name.
func fieldError(fields, names []string, err error) error {
	for i := range fields {
		probe := make([]string, len(fields))
		for k := range probe {
			probe[k] = "*"
		}
		probe[i] = fields[i]
		if _, perr := parser.Parse(strings.Join(probe, " ")); perr != nil {
			return fmt.Errorf("%s field %q: %s", names[i], fields[i], operatorWords(perr.Error()))
		}
	}
	return fmt.Errorf("cron schedule %q: %s", strings.Join(fields, " "), operatorWords(err.Error()))
}

// operatorWords trims robfig's messages to what an operator acts on: the
// trailing ": <expr>" repeats the field we already quote, and strconv
// internals mean nothing to the reader.
func operatorWords(msg string) string {
	if strings.HasPrefix(msg, "failed to parse int from ") {
		return "not a number, a range (1-5), a step (*/15), a list (1,3) or a month or weekday name"
	}
	if strings.HasPrefix(msg, "negative number") {
		return "negative numbers are not allowed"
	}
	if i := strings.LastIndex(msg, ": "); i > 0 {
		msg = msg[:i]
	}
	return msg
}

// cronSchedule matches its fields against wall-clock readings with
// robfig/cron, in UTC where no reading is missing or repeated, and maps each
// reading to instants in its zone itself (see dst.go).
type cronSchedule struct {
	spec *cron.SpecSchedule
	expr string
	// fixedHour: the hour field names hours, so the DST policies apply.
	fixedHour bool
	// loc is the zone set by WithDST; nil reads fields in Next's argument's
	// location, as Parse's schedules do.
	loc *time.Location
	// gap and repeat are the policies set by WithDST; "" is the default.
	gap, repeat string
}

func (c cronSchedule) Next(after time.Time) time.Time {
	t, _ := c.nextSlot(after)
	return t
}
func (c cronSchedule) Manual() bool   { return false }
func (c cronSchedule) String() string { return c.expr }

// every is "@every D". Its slots are the multiples of D since the Unix
// epoch, not since the core started, so every core and every restart agree
// on them and a restart neither shifts nor repeats a slot.
type every struct {
	d   time.Duration
	loc *time.Location // set by WithDST: slots are returned in it
}

func (e every) Next(after time.Time) time.Time {
	// Whole seconds keep the arithmetic far from int64 limits: nanoseconds
	// since 1970 overflow in 2262, seconds do not.
	step := int64(e.d / time.Second)
	sec := after.Unix()
	k := sec / step
	if sec%step < 0 { // floor for instants before 1970
		k--
	}
	loc := e.loc
	if loc == nil {
		loc = after.Location()
	}
	return time.Unix((k+1)*step, 0).In(loc)
}
func (e every) Manual() bool   { return false }
func (e every) String() string { return "@every " + wire.FormatDuration(e.d) }

// manual never fires; runs come only from the API.
type manual struct{}

func (manual) Next(time.Time) time.Time { return time.Time{} }
func (manual) Manual() bool             { return true }
func (manual) String() string           { return "@manually" }
