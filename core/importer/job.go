package importer

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/saltpeter/saltpeter/core/schedule"
)

// overlapPhrase is the one allow_overlap value with which the old tool
// let a job's runs overlap; anything else, true included, meant skip.
const overlapPhrase = "i know what i am doing!"

// oldDefaultTimeout is the old tool's timeout for a job that set none.
const oldDefaultTimeout = 3600

// hclJob is one job, ready to print: its attributes in output order, each
// with the comments that explain it.
type hclJob struct {
	file     string
	name     string
	comments []string
	items    []item
}

type item struct {
	comments []string
	text     string // may span lines (a block)
}

func (j *hclJob) add(text string, comments ...string) {
	j.items = append(j.items, item{comments: comments, text: text})
}

// cronField is one field of the old schedule, in the order the HCL
// 6-field cron reads them (second first).
type cronField struct {
	key, def string
	required bool // the old tool skipped a job without it
}

// The old tool defaulted sec to 0, so a job it fired once a minute stays
// once a minute; the other fields default to "*" as the brief of this
// import asks. The old tool itself refused a job missing min, hour, dom,
// mon or dow, so importing one is a change, noted on the job.
var cronFields = []cronField{
	{"sec", "0", false}, {"min", "*", true}, {"hour", "*", true},
	{"dom", "*", true}, {"mon", "*", true}, {"dow", "*", true},
}

var knownFields = map[string]bool{
	"sec": true, "min": true, "hour": true, "dom": true, "mon": true, "dow": true, "year": true,
	"utc": true, "command": true, "cwd": true, "user": true, "env": true,
	"targets": true, "target_type": true, "number_of_targets": true, "batch_size": true,
	"timeout": true, "hard_timeout": true, "allow_overlap": true,
}

func (c *converter) job(file, group string, k, v *yaml.Node) {
	old := k.Value
	j := &hclJob{file: file, name: jobName(old)}
	where := fmt.Sprintf("job %q", old)
	errs := len(c.errs)
	fail := func(n *yaml.Node, format string, args ...any) {
		c.fail(file, n, where+": "+format, args...)
	}
	if j.name != old {
		j.comments = append(j.comments, fmt.Sprintf("Old name %q: HCL job names take only letters, digits, '.', '_' and '-', starting with a letter or digit.", old))
	}
	if isNull(v) {
		fail(k, "has no fields")
		return
	}
	fields, ok := c.fields(file, where, v)
	if !ok {
		return
	}
	f := map[string]*yaml.Node{}
	for _, fl := range fields {
		f[fl.key] = fl.val
	}
	if _, has := f["command"]; !has {
		// Such an entry is most often a template for YAML merge keys
		// (<<: *defaults); the old tool never ran it, so neither do we.
		c.warn(file, k, "%s has no command: not a job, not imported", where)
		c.note(file, fmt.Sprintf("%q (line %d) has no command: not a job, not imported.", old, k.Line))
		return
	}
	if first, dup := c.names[j.name]; dup {
		fail(k, "its HCL name %q is already taken by %s; rename one of them", j.name, first)
	} else {
		c.names[j.name] = fmt.Sprintf("job %q in %s", old, file)
	}
	str := func(key string) (string, bool) {
		n := f[key]
		if isNull(n) {
			return "", false
		}
		if n.Kind != yaml.ScalarNode {
			fail(n, "%s must be a string, not %s", key, show(n))
			return "", false
		}
		return n.Value, true
	}

	j.add("group = " + quote(group))

	// Schedule.
	var parts, missing []string
	for _, cf := range cronFields {
		n := f[cf.key]
		if isNull(n) {
			parts = append(parts, cf.def)
			if cf.required {
				missing = append(missing, cf.key)
			}
			continue
		}
		s, _ := str(cf.key)
		if s = strings.TrimSpace(s); s == "" || strings.ContainsAny(s, " \t\n") {
			fail(n, "%s %s is not one cron field", cf.key, show(n))
		}
		parts = append(parts, s)
	}
	if n := f["year"]; !isNull(n) && strings.TrimSpace(n.Value) != "*" {
		// Dropping the year would fire a job meant for one year in every
		// year after it; the operator decides, not the importer.
		fail(n, "year %s: HCL schedules have no year field; remove the year (or the job) from the old file and import again", show(n))
	}
	sched := strings.Join(parts, " ")
	var schedNotes []string
	if len(missing) > 0 {
		schedNotes = append(schedNotes, fmt.Sprintf("%s not set: imported as \"*\", but the old tool refused a job without min, hour, dom, mon and dow, so it never ran.", strings.Join(missing, ", ")))
		c.warn(file, k, "%s: %s not set: imported as \"*\" (the old tool never ran such a job)", where, strings.Join(missing, ", "))
	}
	if _, err := schedule.Parse(sched); err != nil && len(c.errs) == errs {
		fail(k, "schedule %q (sec min hour dom mon dow): %v", sched, err)
	}
	j.add("schedule = "+quote(sched), schedNotes...)

	// Time zone.
	utc := false
	if n := f["utc"]; !isNull(n) {
		b, ok := yamlBool(n)
		if !ok {
			fail(n, "utc must be true or false, not %s", show(n))
		}
		utc = b
	}
	switch {
	case utc:
		j.add(`timezone = "UTC"`)
	case c.opts.Timezone != "":
		j.add("timezone = "+quote(c.opts.Timezone),
			"The old tool read this schedule in its server's own zone (utc false or unset); -timezone gave it.")
	default:
		c.needZone = append(c.needZone, fmt.Sprintf("%s: %s", file, old))
	}

	// What runs, and where.
	if cmd, ok := str("command"); !ok || strings.TrimSpace(cmd) == "" {
		fail(k, "has no command")
	} else {
		j.add("command = " + quote(cmd))
	}
	if s, ok := str("cwd"); ok {
		j.add("cwd = " + quote(s))
	}
	if s, ok := str("user"); ok {
		j.add("user = " + quote(s))
	}
	if n := f["env"]; !isNull(n) {
		if env, ok := c.env(file, where, n); ok {
			j.add(env)
		}
	}
	tgt, ok := str("targets")
	if !ok || tgt == "" {
		fail(k, "has no targets (the Salt target expression)")
	}
	tgtType, ok := str("target_type")
	if !ok || tgtType == "" {
		tgtType = "glob" // Salt's default, and the old tool's
	}
	j.add(fmt.Sprintf("target \"salt\" {\n  tgt      = %s\n  tgt_type = %s\n}", quote(tgt), quote(tgtType)))
	for _, key := range []string{"number_of_targets", "batch_size"} {
		if n := f[key]; !isNull(n) {
			if v, ok := count(n); ok {
				j.add(fmt.Sprintf("%s = %d", key, v))
			} else {
				fail(n, "%s must be a whole number of machines, not %s", key, show(n))
			}
		}
	}

	// Timeout: the old tool read timeout, else hard_timeout, else 3600s;
	// 0 meant none.
	tn, from := f["timeout"], "timeout"
	if isNull(tn) {
		tn, from = f["hard_timeout"], "hard_timeout"
	}
	if isNull(tn) {
		j.add("timeout = "+quote(seconds(oldDefaultTimeout)), fmt.Sprintf("No timeout in the old file: the old tool's default was %d seconds.", oldDefaultTimeout))
	} else if secs, ok := count(tn); !ok {
		fail(tn, "%s must be a whole number of seconds, not %s", from, show(tn))
	} else {
		var notes []string
		if from == "hard_timeout" {
			notes = append(notes, "From hard_timeout, the old tool's other name for timeout.")
		}
		if secs == 0 {
			j.add(`timeout = ""`, append(notes, "0 in the old tool: no timeout.")...)
		} else {
			j.add("timeout = "+quote(seconds(secs)), notes...)
		}
	}

	// Overlap.
	n := f["allow_overlap"]
	switch {
	case !isNull(n) && n.Kind == yaml.ScalarNode && n.Tag == "!!str" && n.Value == overlapPhrase:
		j.add(`overlap = "allow"`)
	case !isNull(n) && meantYes(n):
		j.add(`overlap = "skip"`, fmt.Sprintf("allow_overlap %s did not allow overlap in the old tool (only %q did), so runs are skipped as before; set overlap = \"allow\" if overlapping runs are wanted.", show(n), overlapPhrase))
		c.warn(file, n, "%s: allow_overlap %s meant skip in the old tool, imported as overlap = \"skip\"", where, show(n))
	default:
		j.add(`overlap = "skip"`)
	}

	for _, fl := range fields {
		if !knownFields[fl.key] {
			j.comments = append(j.comments, fmt.Sprintf("WARNING: unknown field %q = %s in the old file is not imported.", fl.key, show(fl.val)))
			c.warn(file, fl.key0, "%s: unknown field %q is not imported", where, fl.key)
		}
	}
	if len(c.errs) == errs {
		c.jobs = append(c.jobs, j)
	}
}

func (c *converter) env(file, where string, n *yaml.Node) (string, bool) {
	fields, ok := c.fields(file, where+" env", n)
	if !ok {
		return "", false
	}
	sort.Slice(fields, func(a, b int) bool { return fields[a].key < fields[b].key })
	var b strings.Builder
	b.WriteString("env = {\n")
	for _, f := range fields {
		if f.key == "" || strings.ContainsAny(f.key, "=\x00") || f.val.Kind != yaml.ScalarNode || isNull(f.val) {
			c.fail(file, f.key0, "%s: env %q: a variable needs a name without '=' and a value", where, f.key)
			return "", false
		}
		fmt.Fprintf(&b, "  %s = %s\n", quote(f.key), quote(f.val.Value))
	}
	b.WriteString("}")
	return b.String(), true
}

// meantYes reports whether an allow_overlap value other than the phrase
// reads as a wish to allow overlap: anything but a false-like value.
func meantYes(n *yaml.Node) bool {
	if b, ok := yamlBool(n); ok {
		return b
	}
	v := strings.TrimSpace(n.Value)
	return n.Kind != yaml.ScalarNode || (v != "" && v != "0")
}

func count(n *yaml.Node) (int, bool) {
	if n.Kind != yaml.ScalarNode {
		return 0, false
	}
	v, err := strconv.Atoi(strings.TrimSpace(n.Value))
	return v, err == nil && v >= 0
}

// seconds writes a whole number of seconds as the shortest Go duration
// ("1h30m", not time.Duration's "1h30m0s").
func seconds(secs int) string {
	d := time.Duration(secs) * time.Second
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// jobName maps an old job name to one HCL accepts, deterministically:
// every character the name rule forbids becomes '-', and a name that does
// not start with a letter or digit gets "job-" in front. Names longer than
// the rule's 128 characters are cut.
func jobName(old string) string {
	var b strings.Builder
	for _, r := range old {
		switch {
		case r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-'):
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := b.String()
	if s == "" || !isAlnum(s[0]) {
		s = "job-" + s
	}
	if len(s) > 128 {
		s = s[:128]
	}
	return s
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
