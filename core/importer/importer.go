package importer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Options are what the old files cannot say for themselves.
type Options struct {
	// Timezone is the IANA zone the old server ran in. The old tool read
	// the cron fields of a job without utc: true in its host's zone, which
	// the files do not name; without Timezone such jobs are refused.
	Timezone string
}

// Result is the HCL for a whole folder and what the operator should read.
type Result struct {
	HCL      []byte
	Jobs     int
	Warnings []string // one line each, also written as comments in HCL
}

// Dir converts every *.yaml file of dir, in name order. Only *.yaml is
// read because the old tool read nothing else: a .yml file never ran.
// All problems are reported at once, joined in the error; Result is never
// nil, so that warnings can be printed beside the error.
func Dir(dir string, opts Options) (*Result, error) {
	res := &Result{}
	if err := checkZone(opts.Timezone); err != nil {
		return res, err
	}
	entries, err := os.ReadDir(dir) // sorted by name: stable output
	if err != nil {
		return res, fmt.Errorf("read the folder of old job files: %w", err)
	}
	c := &converter{opts: opts, names: map[string]string{}}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		c.file(filepath.Join(dir, e.Name()))
	}
	if c.files == 0 {
		return res, fmt.Errorf("no *.yaml files in %s", dir)
	}
	if len(c.needZone) > 0 {
		c.errs = append(c.errs, fmt.Errorf("%d jobs ran in the old server's own time zone (utc: false, or no utc, which the old tool read as false), and the files do not say which zone that was: "+
			"give -timezone ZONE, the old server's IANA zone such as Europe/Bucharest, or set utc: true where UTC was meant. The jobs: %s",
			len(c.needZone), strings.Join(c.needZone, ", ")))
	}
	res.Warnings = c.warnings
	if len(c.errs) > 0 {
		return res, errors.Join(c.errs...)
	}
	res.HCL = c.render(dir)
	res.Jobs = len(c.jobs)
	return res, nil
}

func checkZone(tz string) error {
	if tz == "" {
		return nil
	}
	// "Local" would make the imported schedules depend on where the core
	// runs, which is the very ambiguity the option removes.
	if tz == "Local" {
		return errors.New("-timezone takes an IANA zone such as Europe/Bucharest, not Local")
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return fmt.Errorf("-timezone %q: %w", tz, err)
	}
	return nil
}

// converter gathers a folder's jobs and every problem found on the way.
type converter struct {
	opts     Options
	files    int
	jobs     []*hclJob
	maint    *maintenance
	notes    map[string][]string // per file: comments for what is not a job
	names    map[string]string   // HCL job name → where it was first used
	needZone []string            // "file: job" of jobs that need Options.Timezone
	warnings []string
	errs     []error
}

func (c *converter) fail(file string, n *yaml.Node, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s:%d: %s", file, n.Line, fmt.Sprintf(format, args...)))
}

func (c *converter) warn(file string, n *yaml.Node, format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf("%s:%d: %s", file, n.Line, fmt.Sprintf(format, args...)))
}

func (c *converter) note(file, text string) {
	if c.notes == nil {
		c.notes = map[string][]string{}
	}
	c.notes[file] = append(c.notes[file], text)
}

func (c *converter) file(path string) {
	c.files++
	data, err := os.ReadFile(path)
	if err != nil {
		c.errs = append(c.errs, fmt.Errorf("read old job file: %w", err))
		return
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// yaml's message carries the line ("yaml: line 3: ...").
		c.errs = append(c.errs, fmt.Errorf("parse %s: %w", path, err))
		return
	}
	if len(doc.Content) == 0 {
		return // empty or only comments: the old tool saw no jobs either
	}
	root := deref(doc.Content[0])
	if isNull(root) {
		return
	}
	if root.Kind != yaml.MappingNode {
		c.fail(path, root, "the file is not a mapping of job names to jobs")
		return
	}
	// The old tool named each job's group after its file.
	group := strings.TrimSuffix(filepath.Base(path), ".yaml")
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], deref(root.Content[i+1])
		switch k.Value {
		case "saltpeter_maintenance":
			c.maintenance(path, k, v)
		case "saltpeter_config":
			c.warn(path, k, "saltpeter_config (the old tool's own settings) is not imported: set the core block by hand")
			c.note(path, fmt.Sprintf("saltpeter_config (line %d) is not imported: it held the old tool's own settings; set the core block by hand.", k.Line))
		default:
			c.job(path, group, k, v)
		}
	}
}

// maintenance maps the old top-level saltpeter_maintenance entry. The old
// tool let the last file it happened to list win; HCL takes one block, so
// a second one is refused instead of picked.
func (c *converter) maintenance(file string, k, v *yaml.Node) {
	if c.maint != nil {
		c.fail(file, k, "saltpeter_maintenance is also in %s: HCL takes one maintenance block, keep one of them", c.maint.file)
		return
	}
	m := &maintenance{file: file}
	c.maint = m
	if isNull(v) {
		return
	}
	fields, ok := c.fields(file, "saltpeter_maintenance", v)
	if !ok {
		return
	}
	for _, f := range fields {
		switch f.key {
		case "global":
			b, ok := yamlBool(f.val)
			if !ok {
				c.fail(file, f.val, "saltpeter_maintenance: global must be true or false, not %s", show(f.val))
				continue
			}
			m.global = b
		case "machines":
			list, ok := scalars(f.val)
			if !ok {
				c.fail(file, f.val, "saltpeter_maintenance: machines must be a list of machine names")
				continue
			}
			m.machines = list
		default:
			c.warn(file, f.key0, "saltpeter_maintenance: unknown field %q is not imported", f.key)
			m.comments = append(m.comments, fmt.Sprintf("unknown field %q = %s in saltpeter_maintenance is not imported.", f.key, show(f.val)))
		}
	}
}

type maintenance struct {
	file     string
	global   bool
	machines []string
	comments []string
}

// field is one key of a mapping, merges resolved.
type field struct {
	key  string
	key0 *yaml.Node
	val  *yaml.Node
}

// fields lists a mapping's keys in order, with YAML merge keys (<<:
// *defaults, which the old tool's PyYAML loader honoured) resolved:
// a key written in the mapping wins over a merged one.
func (c *converter) fields(file, what string, n *yaml.Node) ([]field, bool) {
	if n.Kind != yaml.MappingNode {
		c.fail(file, n, "%s is not a mapping of fields", what)
		return nil, false
	}
	var own, merged []field
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		if k.Value != "<<" || k.Tag != "!!merge" {
			own = append(own, field{key: k.Value, key0: k, val: v})
			continue
		}
		srcs := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			srcs = v.Content
		}
		for _, s := range srcs {
			sub, ok := c.fields(file, what+" (merged)", deref(s))
			if !ok {
				return nil, false
			}
			merged = append(merged, sub...)
		}
	}
	seen := map[string]bool{}
	var out []field
	for _, f := range append(own, merged...) {
		if !seen[f.key] {
			seen[f.key] = true
			out = append(out, f)
		}
	}
	return out, true
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// yamlBool reads a boolean as the old tool's PyYAML (YAML 1.1) did, so
// yes/no and on/off count; a quoted string is not a boolean.
func yamlBool(n *yaml.Node) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
		return false, false
	}
	switch n.Value {
	case "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON":
		return true, true
	case "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF":
		return false, true
	}
	return false, false
}

func scalars(n *yaml.Node) ([]string, bool) {
	if n.Kind != yaml.SequenceNode {
		return nil, false
	}
	out := []string{}
	for _, e := range n.Content {
		e = deref(e)
		if e.Kind != yaml.ScalarNode || isNull(e) {
			return nil, false
		}
		out = append(out, e.Value)
	}
	return out, true
}

// show renders a YAML value for a one-line comment or message.
func show(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return fmt.Sprintf("%q", n.Value)
	case yaml.MappingNode:
		return "(a mapping)"
	case yaml.SequenceNode:
		return "(a list)"
	}
	return "(a value)"
}
