package importer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/core/pluginhost"
)

// writeDir writes old YAML job files into a fresh folder.
func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatalf("write %s: %v", name, err)
		}
	}
	return dir
}

// load checks HCL as `saltpeter validate` does and returns the config.
func load(t *testing.T, src []byte) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "imported.hcl")
	if err := os.WriteFile(path, src, 0o644); err != nil {
		t.Fatalf("write HCL: %v", err)
	}
	conf, diags := config.Load(path)
	if !diags.HasErrors() {
		diags = append(diags, pluginhost.CheckBuiltinTargets(context.Background(), conf)...)
	}
	if len(diags) > 0 {
		var b strings.Builder
		_ = config.WriteDiagnostics(&b, conf.Files, hcl.Diagnostics(diags))
		t.Fatalf("imported HCL does not validate:\n%s\n--- HCL:\n%s", b.String(), src)
	}
	return conf
}

// job is an old job "j" with the fields every case needs, plus extra
// lines; a field named in drop is left out.
func job(extra string, drop ...string) string {
	base := []string{"min: 30", "hour: 2", "dom: '*'", "mon: '*'", "dow: '*'", "utc: true", "command: /bin/true", "targets: 'web*'"}
	var b strings.Builder
	b.WriteString("j:\n")
	for _, l := range base {
		key, _, _ := strings.Cut(l, ":")
		skip := strings.Contains(extra, "\n"+key+":") || strings.HasPrefix(extra, key+":")
		for _, d := range drop {
			skip = skip || d == key
		}
		if !skip {
			b.WriteString("  " + l + "\n")
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(extra), "\n") {
		if l != "" {
			b.WriteString("  " + l + "\n")
		}
	}
	return b.String()
}

func TestConvert(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string // default: jobs.yaml holding job(yaml)
		yaml     string
		drop     []string
		tz       string
		wantErr  []string // substrings of the error; none: must succeed
		check    func(t *testing.T, j *config.Job)
		wantHCL  []string
		notHCL   []string
		wantWarn []string
	}{
		{name: "six cron fields, second first", yaml: "sec: 5\nmin: 30\nhour: 2\ndom: 1\nmon: 6\ndow: 1-5",
			check: func(t *testing.T, j *config.Job) { eq(t, "schedule", j.Schedule, "5 30 2 1 6 1-5") }},
		{name: "missing sec is 0", yaml: "min: '*/5'",
			check:  func(t *testing.T, j *config.Job) { eq(t, "schedule", j.Schedule, "0 */5 2 * * *") },
			notHCL: []string{"never ran"}},
		{name: "missing cron fields are * with a note", drop: []string{"min", "hour", "dom", "mon", "dow"},
			check:    func(t *testing.T, j *config.Job) { eq(t, "schedule", j.Schedule, "0 * * * * *") },
			wantHCL:  []string{"# min, hour, dom, mon, dow not set", "never ran"},
			wantWarn: []string{"jobs.yaml:1: job \"j\": min, hour, dom, mon, dow not set"}},
		{name: "sec list", yaml: "sec: 0,15,30,45",
			check: func(t *testing.T, j *config.Job) { eq(t, "schedule", j.Schedule, "0,15,30,45 30 2 * * *") }},
		{name: "year star is fine", yaml: "year: '*'",
			check: func(t *testing.T, j *config.Job) { eq(t, "schedule", j.Schedule, "0 30 2 * * *") }},
		{name: "year refused", yaml: "year: 2024", wantErr: []string{"jobs.yaml:", `job "j"`, `year "2024"`, "no year field"}},
		{name: "cron field with a space", yaml: "min: '0 5'", wantErr: []string{`min "0 5" is not one cron field`}},
		{name: "bad cron field", yaml: "min: 61", wantErr: []string{`job "j"`, `schedule "0 61 2 * * *"`}},
		{name: "utc true", check: func(t *testing.T, j *config.Job) { eq(t, "timezone", j.Timezone, "UTC") }},
		{name: "utc yes as PyYAML read it", yaml: "utc: yes",
			check: func(t *testing.T, j *config.Job) { eq(t, "timezone", j.Timezone, "UTC") }},
		{name: "utc false needs -timezone", yaml: "utc: false", wantErr: []string{"-timezone", "jobs.yaml: j"}},
		{name: "no utc needs -timezone", drop: []string{"utc"}, wantErr: []string{"-timezone", "jobs.yaml: j"}},
		{name: "utc false with -timezone", yaml: "utc: false", tz: "Europe/Bucharest",
			check:   func(t *testing.T, j *config.Job) { eq(t, "timezone", j.Timezone, "Europe/Bucharest") },
			wantHCL: []string{"# The old tool read this schedule in its server's own zone"}},
		{name: "utc true ignores -timezone", tz: "Europe/Bucharest",
			check: func(t *testing.T, j *config.Job) { eq(t, "timezone", j.Timezone, "UTC") }},
		{name: "bad -timezone", tz: "Mars/Olympus", wantErr: []string{`-timezone "Mars/Olympus"`}},
		{name: "quoted utc is not a boolean", yaml: "utc: 'yes'", wantErr: []string{"utc must be true or false"}},
		{name: "command stays literal", yaml: `command: 'echo ${HOME} %{x} "q"'`,
			check: func(t *testing.T, j *config.Job) { eq(t, "command", j.Command, `echo ${HOME} %{x} "q"`) }},
		{name: "cwd user env", yaml: "cwd: /srv\nuser: app\nenv:\n    A: x\n    N: 3",
			check: func(t *testing.T, j *config.Job) {
				eq(t, "cwd", j.Cwd, "/srv")
				eq(t, "user", j.User, "app")
				eq(t, "env", j.Env["A"]+","+j.Env["N"], "x,3")
			}},
		{name: "env with a bad name", yaml: "env:\n    'A=B': x", wantErr: []string{`env "A=B"`}},
		{name: "salt target, default glob",
			check: func(t *testing.T, j *config.Job) {
				eq(t, "plugin", j.Target.Plugin, "salt")
				eq(t, "args", string(j.Target.Args), `{"tgt":"web*","tgt_type":"glob"}`)
			}},
		{name: "salt target type", yaml: "targets: 'G@role:db and G@env:prod'\ntarget_type: compound",
			check: func(t *testing.T, j *config.Job) {
				eq(t, "args", string(j.Target.Args), `{"tgt":"G@role:db and G@env:prod","tgt_type":"compound"}`)
			}},
		{name: "no targets", drop: []string{"targets"}, wantErr: []string{`job "j": has no targets`}},
		{name: "counts", yaml: "number_of_targets: 2\nbatch_size: 3",
			check: func(t *testing.T, j *config.Job) {
				eq(t, "number_of_targets", j.NumberOfTargets, 2)
				eq(t, "batch_size", j.BatchSize, 3)
			}},
		{name: "negative count", yaml: "batch_size: -1", wantErr: []string{"batch_size must be a whole number"}},
		{name: "missing timeout is the old 3600s",
			check:   func(t *testing.T, j *config.Job) { eq(t, "timeout", j.Timeout, time.Hour) },
			wantHCL: []string{`timeout = "1h"`, "default was 3600 seconds"}},
		{name: "timeout seconds", yaml: "timeout: 5400",
			check:  func(t *testing.T, j *config.Job) { eq(t, "timeout", j.Timeout, 90*time.Minute) },
			notHCL: []string{"default was"}},
		{name: "timeout 0 is none", yaml: "timeout: 0",
			check:   func(t *testing.T, j *config.Job) { eq(t, "timeout", j.Timeout, time.Duration(0)) },
			wantHCL: []string{"0 in the old tool: no timeout"}},
		{name: "hard_timeout", yaml: "hard_timeout: 120",
			check:   func(t *testing.T, j *config.Job) { eq(t, "timeout", j.Timeout, 2*time.Minute) },
			wantHCL: []string{"From hard_timeout"}},
		{name: "timeout wins over hard_timeout", yaml: "hard_timeout: 120\ntimeout: 60",
			check: func(t *testing.T, j *config.Job) { eq(t, "timeout", j.Timeout, time.Minute) }},
		{name: "bad timeout", yaml: "timeout: 1h", wantErr: []string{`timeout must be a whole number of seconds, not "1h"`}},
		{name: "overlap phrase allows", yaml: "allow_overlap: 'i know what i am doing!'",
			check:  func(t *testing.T, j *config.Job) { eq(t, "overlap", j.Overlap, "allow") },
			notHCL: []string{"did not allow overlap"}},
		{name: "overlap true meant skip", yaml: "allow_overlap: true",
			check:    func(t *testing.T, j *config.Job) { eq(t, "overlap", j.Overlap, "skip") },
			wantHCL:  []string{`allow_overlap "true" did not allow overlap`},
			wantWarn: []string{`allow_overlap "true" meant skip`}},
		{name: "overlap near-phrase meant skip", yaml: "allow_overlap: 'I know what I am doing'",
			check:   func(t *testing.T, j *config.Job) { eq(t, "overlap", j.Overlap, "skip") },
			wantHCL: []string{"did not allow overlap"}},
		{name: "overlap false is skip, silently", yaml: "allow_overlap: false",
			check:  func(t *testing.T, j *config.Job) { eq(t, "overlap", j.Overlap, "skip") },
			notHCL: []string{"did not allow overlap"}},
		{name: "no overlap is skip",
			check: func(t *testing.T, j *config.Job) { eq(t, "overlap", j.Overlap, "skip") }},
		{name: "group is the file name",
			check: func(t *testing.T, j *config.Job) { eq(t, "group", j.Group, "jobs") }},
		{name: "unknown field reported", yaml: "wrapper_path: /x.py",
			wantHCL:  []string{`# WARNING: unknown field "wrapper_path" = "/x.py"`},
			wantWarn: []string{`jobs.yaml:10: job "j": unknown field "wrapper_path" is not imported`}},
		{name: "name mapped", files: map[string]string{"jobs.yaml": strings.Replace(job(""), "j:", "'nightly backup!':", 1)},
			check:   func(t *testing.T, j *config.Job) { eq(t, "name", j.Name, "nightly-backup-") },
			wantHCL: []string{`# Old name "nightly backup!"`}},
		{name: "name must start with a letter", files: map[string]string{"jobs.yaml": strings.Replace(job(""), "j:", "_x:", 1)},
			check: func(t *testing.T, j *config.Job) { eq(t, "name", j.Name, "job-_x") }},
		{name: "mapped names collide", files: map[string]string{
			"a.yaml": strings.Replace(job(""), "j:", "'a b':", 1),
			"b.yaml": strings.Replace(job(""), "j:", "a-b:", 1)},
			wantErr: []string{`b.yaml:1: job "a-b": its HCL name "a-b" is already taken by job "a b" in`}},
		{name: "no command is not a job", files: map[string]string{"jobs.yaml": job("") + "tmpl:\n  min: 1\n"},
			wantHCL:  []string{`# "tmpl" (line 10) has no command: not a job`},
			wantWarn: []string{`job "tmpl" has no command`}},
		{name: "merge keys", files: map[string]string{"jobs.yaml": "d: &d\n  utc: true\n  targets: db1\n  min: 1\n" +
			"j:\n  <<: *d\n  min: 7\n  hour: 3\n  dom: '*'\n  mon: '*'\n  dow: '*'\n  command: /bin/true\n"},
			check: func(t *testing.T, j *config.Job) {
				eq(t, "schedule", j.Schedule, "0 7 3 * * *")
				eq(t, "args", string(j.Target.Args), `{"tgt":"db1","tgt_type":"glob"}`)
			}},
		{name: "maintenance", files: map[string]string{"jobs.yaml": "saltpeter_maintenance:\n  global: true\n  machines: [db3, web9]\n" + job("")},
			wantHCL: []string{"maintenance {", `machines = ["db3", "web9"]`}},
		{name: "maintenance in two files", files: map[string]string{
			"a.yaml": "saltpeter_maintenance: {global: false}\n" + job(""),
			"b.yaml": "saltpeter_maintenance: {global: true}\n"},
			wantErr: []string{"b.yaml:1: saltpeter_maintenance is also in", "a.yaml"}},
		{name: "maintenance global not a bool", files: map[string]string{"jobs.yaml": "saltpeter_maintenance: {global: maybe}\n" + job("")},
			wantErr: []string{"global must be true or false"}},
		{name: "syntax error names file and line", files: map[string]string{"bad.yaml": "j:\n  min: 1\n  hour: a: b\n"},
			wantErr: []string{"bad.yaml", "line 3"}},
		{name: "errors from every file at once", files: map[string]string{"a.yaml": job("year: 2030"), "b.yaml": job("timeout: x")},
			wantErr: []string{"a.yaml:", "b.yaml:"}},
		{name: "no yaml files", files: map[string]string{"jobs.yml": job("")}, wantErr: []string{"no *.yaml files"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := tt.files
			if files == nil {
				files = map[string]string{"jobs.yaml": job(tt.yaml, tt.drop...)}
			}
			res, err := Dir(writeDir(t, files), Options{Timezone: tt.tz})
			if res == nil {
				t.Fatal("Dir returned a nil Result")
			}
			warnings := strings.Join(res.Warnings, "\n")
			for _, w := range tt.wantWarn {
				if !strings.Contains(warnings, w) {
					t.Errorf("warnings lack %q:\n%s", w, warnings)
				}
			}
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want one with %q; HCL:\n%s", tt.wantErr, res.HCL)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Dir: %v", err)
			}
			out := string(res.HCL)
			for _, w := range tt.wantHCL {
				if !strings.Contains(out, w) {
					t.Errorf("HCL lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.notHCL {
				if strings.Contains(out, w) {
					t.Errorf("HCL has %q:\n%s", w, out)
				}
			}
			conf := load(t, res.HCL)
			if len(conf.Jobs) != res.Jobs {
				t.Errorf("config has %d jobs, importer says %d", len(conf.Jobs), res.Jobs)
			}
			if tt.check != nil {
				if len(conf.Jobs) != 1 {
					t.Fatalf("want one job, got %d:\n%s", len(conf.Jobs), out)
				}
				tt.check(t, conf.Jobs[0])
			}
		})
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// TestSampleFolderValidates imports testdata/old, a folder shaped like an
// old deployment, and checks that the result passes `saltpeter validate`.
func TestSampleFolderValidates(t *testing.T) {
	res, err := Dir(filepath.Join("testdata", "old"), Options{Timezone: "Europe/Bucharest"})
	if err != nil {
		t.Fatalf("Dir: %v", err)
	}
	conf := load(t, res.HCL)
	var names []string
	for _, j := range conf.Jobs {
		names = append(names, j.Name)
	}
	// "defaults" is a merge template (no command); ignored.yml is not
	// *.yaml, which the old tool never read either.
	eq(t, "jobs", strings.Join(names, " "), "backup_db cleanup rotate weekly-report-")
	eq(t, "maintenance machines", strings.Join(conf.Maintenance.Machines, " "), "db3.example.com web9.example.com")
	byName := map[string]*config.Job{}
	for _, j := range conf.Jobs {
		byName[j.Name] = j
	}
	eq(t, "backup_db overlap", byName["backup_db"].Overlap, "allow")
	eq(t, "backup_db command", byName["backup_db"].Command, "/usr/local/bin/backup.sh --full ${HOME}")
	eq(t, "weekly timezone", byName["weekly-report-"].Timezone, "Europe/Bucharest")
	eq(t, "cleanup timeout", byName["cleanup"].Timeout, time.Duration(0))
	eq(t, "rotate timeout", byName["rotate"].Timeout, 90*time.Second)
	if !strings.Contains(string(res.HCL), `# plugin "target" "salt" {`) {
		t.Errorf("HCL lacks the commented salt plugin template:\n%s", res.HCL)
	}
	warnings := strings.Join(res.Warnings, "\n")
	for _, w := range []string{`unknown field "wrapper_path"`, `allow_overlap "true" meant skip`, `job "defaults" has no command`} {
		if !strings.Contains(warnings, w) {
			t.Errorf("warnings lack %q:\n%s", w, warnings)
		}
	}
}

// The same folder must give the same bytes: operators diff re-imports.
func TestOutputIsStable(t *testing.T) {
	a, err := Dir(filepath.Join("testdata", "old"), Options{Timezone: "UTC"})
	if err != nil {
		t.Fatalf("Dir: %v", err)
	}
	for i := 0; i < 5; i++ {
		b, err := Dir(filepath.Join("testdata", "old"), Options{Timezone: "UTC"})
		if err != nil {
			t.Fatalf("Dir: %v", err)
		}
		if string(a.HCL) != string(b.HCL) {
			t.Fatalf("two imports differ:\n%s\n---\n%s", a.HCL, b.HCL)
		}
	}
}

func TestJobName(t *testing.T) {
	long := strings.Repeat("a", 200)
	tests := []struct{ old, want string }{
		{"backup_db", "backup_db"},
		{"a.b-c", "a.b-c"},
		{"my job", "my-job"},
		{"café", "caf-"},
		{"-x", "job--x"},
		{"", "job-"},
		{long, long[:128]},
	}
	for _, tt := range tests {
		if got := jobName(tt.old); got != tt.want {
			t.Errorf("jobName(%q) = %q, want %q", tt.old, got, tt.want)
		}
	}
}

func TestSeconds(t *testing.T) {
	for secs, want := range map[int]string{45: "45s", 60: "1m", 90: "1m30s", 3600: "1h", 5400: "1h30m", 3601: "1h0m1s", 86400: "24h"} {
		if got := seconds(secs); got != want {
			t.Errorf("seconds(%d) = %q, want %q", secs, got, want)
		}
	}
}
