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
	// Next returns the first slot strictly after after, in after's
	// location, or the zero time when there is none (@manually, or a cron
	// expression that matches no date within five years). Fixed-hour cron
	// fields are read in after's location, so the caller converts after to
	// the job's time zone first; @every ignores the location.
	Next(after time.Time) time.Time
	// Manual reports whether the schedule never fires by itself.
	Manual() bool
	// String is the normalised expression: equal strings mean the same
	// schedule, which is how the Scheduler tells that a reload left a job's
	// schedule unchanged.
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
		return cronSchedule{spec: sched.(*cron.SpecSchedule), expr: name}, nil
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
	return cronSchedule{spec: spec, expr: expr}, nil
}

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

type cronSchedule struct {
	spec *cron.SpecSchedule
	expr string
}

func (c cronSchedule) Next(after time.Time) time.Time {
	next := c.spec.Next(after)
	// robfig resets to the start of an hour with time.Date, which inside a
	// repeated autumn hour may pick the earlier pass; "strictly after" is
	// what keeps a slot from firing twice, so it is enforced here.
	for i := 0; i < 3 && !next.IsZero() && !next.After(after); i++ {
		next = c.spec.Next(next)
	}
	if !next.IsZero() && !next.After(after) {
		return time.Time{}
	}
	return next
}
func (c cronSchedule) Manual() bool   { return false }
func (c cronSchedule) String() string { return c.expr }

// every is "@every D". Its slots are the multiples of D since the Unix
// epoch, not since the core started, so every core and every restart agree
// on them and a restart neither shifts nor repeats a slot.
type every struct{ d time.Duration }

func (e every) Next(after time.Time) time.Time {
	// Whole seconds keep the arithmetic far from int64 limits: nanoseconds
	// since 1970 overflow in 2262, seconds do not.
	step := int64(e.d / time.Second)
	sec := after.Unix()
	k := sec / step
	if sec%step < 0 { // floor for instants before 1970
		k--
	}
	return time.Unix((k+1)*step, 0).In(after.Location())
}
func (e every) Manual() bool   { return false }
func (e every) String() string { return "@every " + wire.FormatDuration(e.d) }

// manual never fires; runs come only from the API.
type manual struct{}

func (manual) Next(time.Time) time.Time { return time.Time{} }
func (manual) Manual() bool             { return true }
func (manual) String() string           { return "@manually" }
