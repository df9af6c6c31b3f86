package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/saltpeter/saltpeter/core/config"
)

func TestImport(t *testing.T) {
	old := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(old, name), []byte(text), 0o644); err != nil {
			t.Fatalf("write %s: %v", name, err)
		}
	}
	write("db.yaml", `saltpeter_maintenance:
  global: false
  machines: [db3]
backup:
  min: 30
  hour: 2
  dom: '*'
  mon: '*'
  dow: '*'
  command: /usr/local/bin/backup.sh
  targets: 'db*'
  timeout: 600
  colour: blue
`)
	write("web.yaml", `clean up:
  sec: 15
  min: '*/10'
  hour: '*'
  dom: '*'
  mon: '*'
  dow: '*'
  utc: true
  command: /usr/local/bin/cleanup
  targets: web1,web2
  target_type: list
  allow_overlap: 'i know what i am doing!'
`)
	out := filepath.Join(t.TempDir(), "jobs.hcl")
	tests := []struct {
		name       string
		args       []string
		code       int
		file       string // HCL written here, else to stdout
		wantStderr []string
	}{
		{name: "to a file", args: []string{"import", "-timezone", "Europe/Bucharest", "-o", out, old}, code: 0, file: out,
			wantStderr: []string{`unknown field "colour"`, "wrote 2 jobs to " + out}},
		{name: "to stdout", args: []string{"import", "-timezone", "America/New_York", old}, code: 0,
			wantStderr: []string{`unknown field "colour"`}},
		{name: "local-zone job without -timezone", args: []string{"import", old}, code: 1,
			wantStderr: []string{"nothing written", "-timezone", "db.yaml: backup"}},
		{name: "no folder", args: []string{"import"}, code: 2, wantStderr: []string{"usage: saltpeter import"}},
		{name: "missing folder", args: []string{"import", "-timezone", "UTC", filepath.Join(old, "nope")}, code: 1,
			wantStderr: []string{"read the folder of old job files"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if code != 0 {
				if stdout.Len() > 0 {
					t.Errorf("stdout should be empty on failure, got:\n%s", stdout.String())
				}
				return
			}
			path := tt.file
			if path == "" {
				path = filepath.Join(t.TempDir(), "stdout.hcl")
				if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
					t.Fatalf("write stdout: %v", err)
				}
			}
			// The imported file must pass what `saltpeter validate` runs.
			var vout, verr bytes.Buffer
			if c := Main([]string{"validate", "-config", path}, &vout, &verr); c != 0 {
				src, _ := os.ReadFile(path)
				t.Fatalf("validate exit %d:\n%s\n--- HCL:\n%s", c, verr.String(), src)
			}
			conf, diags := config.Load(path)
			if diags.HasErrors() {
				t.Fatalf("load: %v", diags)
			}
			if len(conf.Jobs) != 2 || conf.Jobs[0].Name != "backup" || conf.Jobs[1].Name != "clean-up" {
				t.Fatalf("jobs = %v, want backup and clean-up", conf.Jobs)
			}
			if conf.Jobs[1].Overlap != "allow" || conf.Jobs[1].Schedule != "15 */10 * * * *" {
				t.Errorf("clean-up: overlap %q schedule %q", conf.Jobs[1].Overlap, conf.Jobs[1].Schedule)
			}
			if len(conf.Maintenance.Machines) != 1 || conf.Maintenance.Machines[0] != "db3" {
				t.Errorf("maintenance machines = %v, want [db3]", conf.Maintenance.Machines)
			}
		})
	}
}
