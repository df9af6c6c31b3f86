package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/saltpeter/saltpeter/core/schedule"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// Job defaults.
const (
	DefaultTimezone  = "UTC"
	DefaultOverlap   = OverlapSkip
	DefaultSuccess   = "all"
	DefaultCatchUp   = "latest"
	DefaultDSTGap    = "shift"
	DefaultDSTRepeat = "once"
	DefaultSignal    = "SIGTERM"
	DefaultGrace     = 5 * time.Second
	DefaultProtocol  = 2
	DefaultBackoff   = time.Minute
)

// BuiltinTargets are the target plugins that need no plugin block.
var BuiltinTargets = []string{"local", "ssh", "salt"}

// NotifyEvents are the values a notify block's on list takes.
var NotifyEvents = []string{"success", "failure", "timeout", "killed", "lost", "not_started", "soft_timeout", "missed", "recovered"}

// Names appear in URLs, metrics labels and logs, so they keep to a set of
// characters that needs no escaping anywhere.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

const nameRule = "A name is 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit: names appear in URLs, metrics and logs."

func validName(s string) bool { return nameRE.MatchString(s) }

var jobSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "group"}, {Name: "schedule"}, {Name: "timezone"}, {Name: "enabled"},
		{Name: "command"}, {Name: "cwd"}, {Name: "user"}, {Name: "env"},
		{Name: "number_of_targets"}, {Name: "batch_size"}, {Name: "success"}, {Name: "abort_after_failures"},
		{Name: "timeout"}, {Name: "soft_timeout"}, {Name: "no_output_timeout"}, {Name: "overlap"},
		{Name: "jitter"}, {Name: "catch_up"}, {Name: "dst_gap"}, {Name: "dst_repeat"}, {Name: "keep_children"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "target", LabelNames: []string{"plugin"}},
		{Type: "kill"}, {Type: "retry"}, {Type: "expect"},
		{Type: "notify", LabelNames: []string{"notifier"}},
		{Type: "wrapper"},
	},
}

// jobRefs is what of a job can be checked only once every file is read.
type jobRefs struct {
	job      *Job
	target   *hcl.Block
	notifies []*hcl.Block
	protocol *hcl.Attribute
}

func (l *loader) decodeJob(b *hcl.Block) {
	j := &Job{
		Name:      b.Labels[0],
		Timezone:  DefaultTimezone,
		Location:  time.UTC,
		Enabled:   true,
		Success:   DefaultSuccess,
		Overlap:   DefaultOverlap,
		CatchUp:   DefaultCatchUp,
		DSTGap:    DefaultDSTGap,
		DSTRepeat: DefaultDSTRepeat,
		Kill:      Kill{Signal: DefaultSignal, Grace: DefaultGrace},
		Wrapper:   Wrapper{Protocol: DefaultProtocol},
		Range:     b.DefRange,
	}
	refs := jobRefs{job: j}
	if !validName(j.Name) {
		l.errorAt(b.LabelRanges[0], "Invalid job name", nameRule)
	}
	if prev, dup := l.firstJob[j.Name]; dup {
		l.errorAt(b.LabelRanges[0], "Duplicate job", fmt.Sprintf("A job named %q is already declared at %s.", j.Name, at(prev)))
	} else {
		l.firstJob[j.Name] = b.DefRange
	}
	c := l.content(b.Body, jobSchema)
	attrs := c.Attributes

	l.str(attrs, "group", &j.Group)
	if attrs["schedule"] == nil {
		l.errorAt(b.DefRange, "Missing schedule", fmt.Sprintf("job %q needs schedule: cron with 5 or 6 fields, @hourly, @daily, @every 10s or @manually.", j.Name))
	} else if a := l.str(attrs, "schedule", &j.Schedule); a != nil {
		sched, err := schedule.Parse(j.Schedule)
		if err != nil {
			l.attrError(a, "Invalid schedule", err.Error()+".")
		}
		j.ParsedSchedule = sched
	}
	if a := l.str(attrs, "timezone", &j.Timezone); a != nil {
		j.Location = l.location(a, j.Timezone)
	}
	l.boolean(attrs, "enabled", &j.Enabled)

	if attrs["command"] == nil {
		l.errorAt(b.DefRange, "Missing command", fmt.Sprintf("job %q needs command, the command line its machines run.", j.Name))
	} else if a := l.str(attrs, "command", &j.Command); a != nil && strings.TrimSpace(j.Command) == "" {
		l.attrError(a, "Empty command", "command must not be empty.")
	}
	l.str(attrs, "cwd", &j.Cwd)
	l.str(attrs, "user", &j.User)
	if a := attrs["env"]; a != nil {
		var env map[string]string
		if l.decode(a, &env) {
			for k := range env {
				if k == "" || strings.ContainsAny(k, "=\x00") {
					l.attrError(a, "Invalid environment variable name", fmt.Sprintf("%q cannot be an environment variable name: it is empty or holds '=' or a NUL.", k))
				}
			}
			j.Env = env
		}
	}

	l.count(attrs, "number_of_targets", &j.NumberOfTargets)
	l.count(attrs, "batch_size", &j.BatchSize)
	l.count(attrs, "abort_after_failures", &j.AbortAfterFailures)
	if a := l.str(attrs, "success", &j.Success); a != nil {
		if !validSuccess(j.Success) {
			l.attrError(a, "Invalid success", fmt.Sprintf("success must be \"all\", \"any\" or a percentage above 0 and up to 100 such as \"95%%\", not %q.", j.Success))
			j.Success = DefaultSuccess
		}
	}

	l.duration(attrs, "timeout", &j.Timeout, true)
	soft := l.duration(attrs, "soft_timeout", &j.SoftTimeout, true)
	l.duration(attrs, "no_output_timeout", &j.NoOutputTimeout, true)
	if soft != nil && j.Timeout > 0 && j.SoftTimeout >= j.Timeout {
		l.attrWarning(soft, "Soft timeout never reached",
			fmt.Sprintf("soft_timeout (%s) is not shorter than timeout (%s), so the job is killed before the soft timeout can notify.", j.SoftTimeout, j.Timeout))
	}
	l.duration(attrs, "jitter", &j.Jitter, true)
	l.oneOf(attrs, "overlap", &j.Overlap, []string{OverlapSkip, OverlapAllow, OverlapQueue, OverlapReplace})
	l.oneOf(attrs, "catch_up", &j.CatchUp, []string{"none", "latest", "all"})
	l.oneOf(attrs, "dst_gap", &j.DSTGap, []string{"shift", "skip"})
	l.oneOf(attrs, "dst_repeat", &j.DSTRepeat, []string{"once", "twice"})
	if j.ParsedSchedule != nil {
		// Bound here, so that every consumer of the job's schedule (the
		// Scheduler, catch-up, the next-runs listing) fires the same slots.
		sched, err := schedule.WithDST(j.ParsedSchedule, j.Location, j.DSTGap, j.DSTRepeat)
		if err != nil {
			l.errorAt(b.DefRange, "Invalid daylight-saving policy", err.Error()+".")
		}
		j.ParsedSchedule = sched
	}
	l.boolean(attrs, "keep_children", &j.KeepChildren)

	if tb := l.single(c.Blocks, "target", fmt.Sprintf("job %q", j.Name)); tb != nil {
		j.Target = Target{Plugin: tb.Labels[0], Args: l.jsonBody(tb.Body), Range: tb.DefRange}
		refs.target = tb
	} else {
		l.errorAt(b.DefRange, "Missing target block", fmt.Sprintf("job %q needs a target block naming where it runs, such as target \"local\" {} or target \"ssh\" { hosts = [\"web1\"] }.", j.Name))
	}
	if kb := l.single(c.Blocks, "kill", fmt.Sprintf("job %q", j.Name)); kb != nil {
		l.decodeKill(kb, &j.Kill)
	}
	if rb := l.single(c.Blocks, "retry", fmt.Sprintf("job %q", j.Name)); rb != nil {
		j.Retry = l.decodeRetry(rb)
	}
	if eb := l.single(c.Blocks, "expect", fmt.Sprintf("job %q", j.Name)); eb != nil {
		j.Expect = l.decodeExpect(eb)
	}
	if wb := l.single(c.Blocks, "wrapper", fmt.Sprintf("job %q", j.Name)); wb != nil {
		refs.protocol = l.decodeWrapper(wb, &j.Wrapper)
	}
	seen := map[string]hcl.Range{}
	for _, nb := range c.Blocks.OfType("notify") {
		name := nb.Labels[0]
		if prev, dup := seen[name]; dup {
			l.errorAt(nb.LabelRanges[0], "Duplicate notify block", fmt.Sprintf("job %q already notifies %q at %s; list every event in one on.", j.Name, name, at(prev)))
			continue
		}
		seen[name] = nb.DefRange
		j.Notify = append(j.Notify, l.decodeNotify(nb))
		refs.notifies = append(refs.notifies, nb)
	}

	l.cfg.Jobs = append(l.cfg.Jobs, j)
	l.refs = append(l.refs, refs)
}

func (l *loader) location(a *hcl.Attribute, name string) *time.Location {
	if name == "" || name == "UTC" {
		return time.UTC
	}
	// "Local" would make slots depend on the host the core runs on.
	if name == "Local" {
		l.attrError(a, "Unknown time zone", "timezone takes an IANA name such as \"Europe/Bucharest\"; \"Local\" would depend on the host.")
		return time.UTC
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		l.attrError(a, "Unknown time zone", fmt.Sprintf("timezone takes an IANA name such as \"Europe/Bucharest\" or \"America/New_York\"; %q is not known: %v.", name, err))
		return time.UTC
	}
	return loc
}

func validSuccess(s string) bool {
	if s == "all" || s == "any" {
		return true
	}
	num, ok := strings.CutSuffix(s, "%")
	if !ok {
		return false
	}
	p, err := strconv.ParseFloat(num, 64)
	return err == nil && p > 0 && p <= 100
}

var killSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "signal"}, {Name: "grace"}}}

func (l *loader) decodeKill(b *hcl.Block, k *Kill) {
	attrs := l.content(b.Body, killSchema).Attributes
	var sig string
	if a := l.str(attrs, "signal", &sig); a != nil {
		canon, ok := wire.CanonicalSignal(sig)
		switch {
		case !ok:
			l.attrError(a, "Unknown signal", fmt.Sprintf("%q is not a Linux signal name; use a name such as \"SIGTERM\", \"SIGINT\" or \"SIGHUP\".", sig))
		case canon == "SIGKILL":
			l.attrError(a, "SIGKILL as the kill signal", "SIGKILL cannot be caught, so the job gets no grace period to clean up; it is what the core sends when grace runs out. Use a signal the job can handle, such as \"SIGTERM\".")
		default:
			k.Signal = canon
		}
	}
	l.duration(attrs, "grace", &k.Grace, false)
}

var retrySchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "attempts"}, {Name: "backoff"}}}

func (l *loader) decodeRetry(b *hcl.Block) *Retry {
	r := &Retry{Backoff: DefaultBackoff}
	attrs := l.content(b.Body, retrySchema).Attributes
	if attrs["attempts"] == nil {
		l.errorAt(b.DefRange, "Missing attempts", "A retry block needs attempts, how many times a failed machine is retried.")
	}
	l.count(attrs, "attempts", &r.Attempts)
	l.duration(attrs, "backoff", &r.Backoff, false)
	return r
}

var expectSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "max_gap"}}}

func (l *loader) decodeExpect(b *hcl.Block) *Expect {
	e := &Expect{}
	attrs := l.content(b.Body, expectSchema).Attributes
	if attrs["max_gap"] == nil {
		l.errorAt(b.DefRange, "Missing max_gap", "An expect block needs max_gap, how long the job may go without succeeding, such as \"26h\".")
	}
	l.positiveDuration(attrs, "max_gap", &e.MaxGap)
	return e
}

var wrapperSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "path"}, {Name: "protocol"}}}

func (l *loader) decodeWrapper(b *hcl.Block, w *Wrapper) *hcl.Attribute {
	attrs := l.content(b.Body, wrapperSchema).Attributes
	l.str(attrs, "path", &w.Path)
	a := attrs["protocol"]
	var p int
	if a == nil || !l.decode(a, &p) {
		return nil
	}
	if p != 1 && p != 2 {
		l.attrError(a, "Unknown wrapper protocol", fmt.Sprintf("protocol is 1 (Saltpeter v1 wrappers) or 2, not %d.", p))
		return nil
	}
	w.Protocol = p
	return a
}

var notifySchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "on"}}}

func (l *loader) decodeNotify(b *hcl.Block) Notify {
	n := Notify{Notifier: b.Labels[0], Range: b.DefRange}
	attrs := l.content(b.Body, notifySchema).Attributes
	if attrs["on"] == nil {
		l.errorAt(b.DefRange, "Missing on", fmt.Sprintf("notify %q needs on, the events to notify: %s.", n.Notifier, orList(NotifyEvents)))
		return n
	}
	var on []string
	a := l.strList(attrs, "on", &on)
	if a == nil {
		return n
	}
	for _, ev := range on {
		known := false
		for _, k := range NotifyEvents {
			known = known || ev == k
		}
		if !known {
			l.attrError(a, "Unknown notify event", fmt.Sprintf("%q is not an event; on lists %s.", ev, orList(NotifyEvents)))
			continue
		}
		n.On = append(n.On, ev)
	}
	return n
}

// checkRefs resolves what jobs name elsewhere. After a syntax error it is
// skipped: the block a job refers to may be in the part that failed.
func (l *loader) checkRefs() {
	if l.syntaxErrors {
		return
	}
	targets := map[string]bool{}
	for _, t := range BuiltinTargets {
		targets[t] = true
	}
	for _, p := range l.cfg.Plugins {
		if p.Kind == KindTarget {
			targets[p.Name] = true
		}
	}
	notifiers := map[string]bool{}
	for _, n := range l.cfg.Notifiers {
		notifiers[n.Name] = true
	}
	for _, r := range l.refs {
		if r.target != nil && !targets[r.target.Labels[0]] {
			l.errorAt(r.target.LabelRanges[0], "Unknown target plugin",
				fmt.Sprintf("target %q is neither a built-in target (%s) nor configured with a plugin \"target\" %q block.", r.target.Labels[0], orList(BuiltinTargets), r.target.Labels[0]))
		}
		for _, nb := range r.notifies {
			if !notifiers[nb.Labels[0]] {
				l.errorAt(nb.LabelRanges[0], "Unknown notifier", fmt.Sprintf("No notifier %q is declared; add a notifier %q block or fix the name.", nb.Labels[0], nb.Labels[0]))
			}
		}
		if r.protocol != nil && r.job.Wrapper.Protocol == 1 && !l.cfg.Core.LegacyWrappers {
			l.attrWarning(r.protocol, "Protocol 1 needs legacy_wrappers",
				fmt.Sprintf("job %q uses wrapper protocol 1, but the core block does not set legacy_wrappers = true, so its v1 wrappers will be refused.", r.job.Name))
		}
	}
}
