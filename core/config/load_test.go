package config_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/saltpeter/saltpeter/core/config"
)

// writeFiles writes name → content into a fresh folder and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// wantDiag is one expected diagnostic. Summary and Detail are substrings;
// Col 0 skips the column.
type wantDiag struct {
	Summary, Detail string
	File            string // base name
	Line, Col       int
	Warning         bool
}

// checkDiags requires every wanted diagnostic, and no other error (or
// warning, when one is wanted).
func checkDiags(t *testing.T, diags hcl.Diagnostics, want []wantDiag) {
	t.Helper()
	used := make([]bool, len(diags))
	for _, w := range want {
		found := false
		for i, d := range diags {
			if used[i] || !matches(d, w) {
				continue
			}
			used[i], found = true, true
			break
		}
		if !found {
			t.Errorf("no diagnostic %+v among:\n%s", w, describe(diags))
		}
	}
	for i, d := range diags {
		if !used[i] && d.Severity == hcl.DiagError {
			t.Errorf("unexpected error: %s", describe(hcl.Diagnostics{d}))
		}
	}
}

func matches(d *hcl.Diagnostic, w wantDiag) bool {
	if (d.Severity == hcl.DiagWarning) != w.Warning || !strings.Contains(d.Summary, w.Summary) || !strings.Contains(d.Detail, w.Detail) {
		return false
	}
	if d.Subject == nil {
		return w.File == "" && w.Line == 0
	}
	return filepath.Base(d.Subject.Filename) == w.File && d.Subject.Start.Line == w.Line &&
		(w.Col == 0 || d.Subject.Start.Column == w.Col)
}

func describe(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		where := "no range"
		if d.Subject != nil {
			where = d.Subject.String()
		}
		b.WriteString("  " + where + ": " + d.Summary + ": " + d.Detail + "\n")
	}
	return b.String()
}

// job is a valid job "j" with extra lines first, so that the first extra
// line is line 2 of the file.
func job(extra ...string) string {
	return "job \"j\" {\n" + lines(extra...) + "  schedule = \"@hourly\"\n  command = \"true\"\n  target \"local\" {}\n}\n"
}

func lines(l ...string) string {
	if len(l) == 0 {
		return ""
	}
	return strings.Join(l, "\n") + "\n"
}

const hash = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"

func TestLoadMistakes(t *testing.T) {
	tests := []struct {
		name string
		src  string // main.hcl
		want []wantDiag
	}{
		{"unknown job attribute", job(`  colour = "red"`),
			[]wantDiag{{Summary: "Unsupported argument", Detail: `"colour"`, File: "main.hcl", Line: 2, Col: 3}}},
		{"unknown job block", job(`  cleanup {}`),
			[]wantDiag{{Summary: "Unsupported block type", Detail: `"cleanup"`, File: "main.hcl", Line: 2, Col: 3}}},
		{"unknown top-level block", "jobs \"x\" {}\n",
			[]wantDiag{{Summary: "Unsupported block type", Detail: `"jobs"`, File: "main.hcl", Line: 1, Col: 1}}},
		{"unknown core attribute", "core {\n  listen = \"127.0.0.1:1\"\n  lisen = \"x\"\n}\n",
			[]wantDiag{{Summary: "Unsupported argument", Detail: `"lisen"`, File: "main.hcl", Line: 3, Col: 3}}},
		{"bad duration", job(`  timeout = "5 minutes"`),
			[]wantDiag{{Summary: "Invalid duration", Detail: `timeout takes a duration such as "90s", "1h30m" or "30d": invalid duration "5 minutes"`, File: "main.hcl", Line: 2, Col: 13}}},
		{"bad duration in a block", job(`  kill { grace = "soon" }`),
			[]wantDiag{{Summary: "Invalid duration", Detail: `grace takes a duration`, File: "main.hcl", Line: 2, Col: 18}}},
		{"zero connect deadline", "core { connect_deadline = \"0s\" }\n",
			[]wantDiag{{Summary: "Invalid duration", Detail: "connect_deadline must be longer than zero", File: "main.hcl", Line: 1, Col: 27}}},
		{"bad size", "store \"sqlite\" {\n  max_output_per_machine = \"64MB\"\n}\n",
			[]wantDiag{{Summary: "Invalid size", Detail: `"64MB" is not a positive whole number of bytes, KiB, MiB or GiB`, File: "main.hcl", Line: 2, Col: 28}}},
		{"wrapper CA without TLS", "core {\n  wrapper_ca_file = \"/etc/ca.pem\"\n}\n",
			[]wantDiag{{Summary: "wrapper_ca_file without TLS", Detail: "needs tls_cert and tls_key", File: "main.hcl", Line: 2, Col: 21}}},
		{"bad synchronous", "store \"sqlite\" {\n  synchronous = \"off\"\n}\n",
			[]wantDiag{{Summary: "Invalid synchronous", Detail: `synchronous must be "normal" or "full", not "off"`, File: "main.hcl", Line: 2, Col: 17}}},
		{"output cap below two chunks", "store \"sqlite\" {\n  max_output_per_machine = \"32KiB\"\n}\n",
			[]wantDiag{{Summary: "Output cap too small", Detail: "at least 64KiB", File: "main.hcl", Line: 2, Col: 28}}},
		{"bad cron field", strings.Replace(job(), `"@hourly"`, `"61 * * * *"`, 1),
			[]wantDiag{{Summary: "Invalid schedule", Detail: `minute field "61": end of range (61) above maximum (59)`, File: "main.hcl", Line: 2, Col: 14}}},
		{"cron with 4 fields", strings.Replace(job(), `"@hourly"`, `"* * * *"`, 1),
			[]wantDiag{{Summary: "Invalid schedule", Detail: "5 fields", File: "main.hcl", Line: 2, Col: 14}}},
		{"unknown time zone", job(`  timezone = "Mars/Olympus"`),
			[]wantDiag{{Summary: "Unknown time zone", Detail: `"Mars/Olympus" is not known`, File: "main.hcl", Line: 2, Col: 14}}},
		{"duplicate job name", job() + job(),
			[]wantDiag{{Summary: "Duplicate job", Detail: `A job named "j" is already declared at ` + "%DIR%/main.hcl:1", File: "main.hcl", Line: 6, Col: 5}}},
		{"job without target", "job \"j\" {\n  schedule = \"@daily\"\n  command = \"true\"\n}\n",
			[]wantDiag{{Summary: "Missing target block", Detail: `job "j" needs a target block`, File: "main.hcl", Line: 1, Col: 1}}},
		{"job without schedule", "job \"j\" {\n  command = \"true\"\n  target \"local\" {}\n}\n",
			[]wantDiag{{Summary: "Missing schedule", Detail: `job "j" needs schedule`, File: "main.hcl", Line: 1, Col: 1}}},
		{"job without command", "job \"j\" {\n  schedule = \"@daily\"\n  target \"local\" {}\n}\n",
			[]wantDiag{{Summary: "Missing command", File: "main.hcl", Line: 1, Col: 1}}},
		{"two target blocks", job(`  target "ssh" {}`),
			[]wantDiag{{Summary: "Duplicate target block", Detail: "the first is at %DIR%/main.hcl:2", File: "main.hcl", Line: 5, Col: 3}}},
		{"unknown kill signal", job(`  kill { signal = "SIGFOO" }`),
			[]wantDiag{{Summary: "Unknown signal", Detail: `"SIGFOO" is not a Linux signal name`, File: "main.hcl", Line: 2, Col: 19}}},
		{"SIGKILL as kill signal", job(`  kill { signal = "kill" }`),
			[]wantDiag{{Summary: "SIGKILL as the kill signal", Detail: "cannot be caught", File: "main.hcl", Line: 2, Col: 19}}},
		{"overlap unknown", job(`  overlap = "sometimes"`),
			[]wantDiag{{Summary: "Invalid overlap", Detail: `overlap must be "skip", "allow", "queue" or "replace", not "sometimes"`, File: "main.hcl", Line: 2, Col: 13}}},
		{"wrapper protocol 3", job(`  wrapper { protocol = 3 }`),
			[]wantDiag{{Summary: "Unknown wrapper protocol", Detail: "not 3", File: "main.hcl", Line: 2, Col: 24}}},
		{"token role", "core {\n  api_tokens = [\n    { name = \"a\", role = \"admin\", sha256 = \"" + hash + "\" },\n  ]\n}\n",
			[]wantDiag{{Summary: "Invalid API token role", Detail: `role must be "read" or "operate", not "admin"`, File: "main.hcl", Line: 3, Col: 26}}},
		{"token sha256 too short", "core {\n  api_tokens = [\n    { name = \"a\", role = \"read\", sha256 = \"abc123\" },\n  ]\n}\n",
			[]wantDiag{{Summary: "Invalid API token hash", Detail: "64 hexadecimal characters", File: "main.hcl", Line: 3, Col: 43}}},
		{"token sha256 not hex", "core {\n  api_tokens = [{ name = \"a\", role = \"read\", sha256 = \"" + strings.Repeat("zz", 32) + "\" }]\n}\n",
			[]wantDiag{{Summary: "Invalid API token hash", File: "main.hcl", Line: 2}}},
		{"duplicate token names", "core {\n  api_tokens = [\n    { name = \"a\", role = \"read\", sha256 = \"" + hash + "\" },\n    { name = \"a\", role = \"operate\", sha256 = \"" + hash + "\" },\n  ]\n}\n",
			[]wantDiag{{Summary: "Duplicate API token name", Detail: "already declared at %DIR%/main.hcl:3", File: "main.hcl", Line: 4, Col: 14}}},
		{"token unknown key and missing role", "core {\n  api_tokens = [{ name = \"a\", sha256 = \"" + hash + "\", scope = \"x\" }]\n}\n",
			[]wantDiag{
				{Summary: "Unsupported API token attribute", Detail: `"scope"`, File: "main.hcl", Line: 2},
				{Summary: "Incomplete API token", Detail: "needs role", File: "main.hcl", Line: 2, Col: 17},
			}},
		{"catch_up", job(`  catch_up = "every"`),
			[]wantDiag{{Summary: "Invalid catch_up", Detail: `catch_up must be "none", "latest" or "all", not "every"`, File: "main.hcl", Line: 2, Col: 14}}},
		{"dst_gap", job(`  dst_gap = "later"`),
			[]wantDiag{{Summary: "Invalid dst_gap", Detail: `"shift" or "skip"`, File: "main.hcl", Line: 2, Col: 13}}},
		{"dst_repeat", job(`  dst_repeat = "thrice"`),
			[]wantDiag{{Summary: "Invalid dst_repeat", Detail: `"once" or "twice"`, File: "main.hcl", Line: 2, Col: 16}}},
		{"success word", job(`  success = "most"`),
			[]wantDiag{{Summary: "Invalid success", Detail: `not "most"`, File: "main.hcl", Line: 2, Col: 13}}},
		{"success 0%", job(`  success = "0%"`),
			[]wantDiag{{Summary: "Invalid success", Detail: `not "0%"`, File: "main.hcl", Line: 2, Col: 13}}},
		{"success 101%", job(`  success = "101%"`),
			[]wantDiag{{Summary: "Invalid success", Detail: `not "101%"`, File: "main.hcl", Line: 2, Col: 13}}},
		{"negative batch_size", job(`  batch_size = -1`),
			[]wantDiag{{Summary: "Negative number", Detail: "batch_size must be 0 or more, not -1", File: "main.hcl", Line: 2, Col: 16}}},
		{"negative number_of_targets", job(`  number_of_targets = -3`),
			[]wantDiag{{Summary: "Negative number", Detail: "number_of_targets", File: "main.hcl", Line: 2}}},
		{"negative abort_after_failures", job(`  abort_after_failures = -1`),
			[]wantDiag{{Summary: "Negative number", Detail: "abort_after_failures", File: "main.hcl", Line: 2}}},
		{"negative retry attempts", job(`  retry { attempts = -1 }`),
			[]wantDiag{{Summary: "Negative number", Detail: "attempts", File: "main.hcl", Line: 2, Col: 22}}},
		{"fractional count", job(`  batch_size = 1.5`),
			[]wantDiag{{Summary: "Incorrect value type", File: "main.hcl", Line: 2, Col: 16}}},
		{"string for bool", job(`  enabled = "yes"`),
			[]wantDiag{{Summary: "Incorrect value type", File: "main.hcl", Line: 2, Col: 13}}},
		{"env not strings", job(`  env = { A = [1] }`),
			[]wantDiag{{Summary: "Incorrect value type", File: "main.hcl", Line: 2, Col: 9}}},
		{"heartbeat interval too long for default timeout", "core {\n  heartbeat_interval = \"20s\"\n}\n",
			[]wantDiag{{Summary: "Heartbeat timeout too short", Detail: "heartbeat_timeout (30s) must be at least twice heartbeat_interval (20s)", File: "main.hcl", Line: 2, Col: 24}}},
		{"heartbeat timeout too short", "core {\n  heartbeat_timeout = \"9s\"\n}\n",
			[]wantDiag{{Summary: "Heartbeat timeout too short", Detail: "heartbeat_timeout (9s) must be at least twice heartbeat_interval (5s)", File: "main.hcl", Line: 2, Col: 23}}},
		{"unknown target plugin", strings.Replace(job(), `target "local"`, `target "k8s"`, 1),
			[]wantDiag{{Summary: "Unknown target plugin", Detail: `target "k8s" is neither a built-in target ("local", "ssh" or "salt") nor configured`, File: "main.hcl", Line: 4, Col: 10}}},
		{"unknown notifier", job(`  notify "pager" { on = ["failure"] }`),
			[]wantDiag{{Summary: "Unknown notifier", Detail: `No notifier "pager"`, File: "main.hcl", Line: 2, Col: 10}}},
		{"unknown notify event", "notifier \"n\" { plugin = \"webhook\" }\n" + job(`  notify "n" { on = ["failure", "exploded"] }`),
			[]wantDiag{{Summary: "Unknown notify event", Detail: `"exploded" is not an event`, File: "main.hcl", Line: 3, Col: 21}}},
		{"notifier without plugin", "notifier \"n\" {}\n",
			[]wantDiag{{Summary: "Missing notifier plugin", File: "main.hcl", Line: 1, Col: 1}}},
		{"unknown store kind", "store \"mongodb\" {}\n",
			[]wantDiag{{Summary: "Unknown store kind", Detail: `"sqlite", "postgres" or "memory", not "mongodb"`, File: "main.hcl", Line: 1, Col: 7}}},
		{"postgres without dsn", "store \"postgres\" {\n  retention = \"7d\"\n}\n",
			[]wantDiag{{Summary: "Missing dsn", File: "main.hcl", Line: 1, Col: 1}}},
		{"path in a postgres store", "store \"postgres\" {\n  dsn = \"postgres://x\"\n  path = \"/x\"\n}\n",
			[]wantDiag{{Summary: "Unsupported argument", Detail: `"path"`, File: "main.hcl", Line: 3, Col: 3}}},
		{"two core blocks", "core {}\ncore {}\n",
			[]wantDiag{{Summary: "Duplicate core block", Detail: "the first is at %DIR%/main.hcl:1", File: "main.hcl", Line: 2, Col: 1}}},
		{"unknown plugin kind", "plugin \"widget\" \"x\" {}\n",
			[]wantDiag{{Summary: "Unknown plugin kind", Detail: `"target", "notifier" or "store", not "widget"`, File: "main.hcl", Line: 1, Col: 8}}},
		{"duplicate plugin", "plugin \"target\" \"k8s\" {}\nplugin \"target\" \"k8s\" {}\n",
			[]wantDiag{{Summary: "Duplicate plugin", Detail: "already configured at %DIR%/main.hcl:1", File: "main.hcl", Line: 2, Col: 17}}},
		{"nested block in plugin config", "plugin \"target\" \"k8s\" {\n  config {\n    tls {}\n  }\n}\n",
			[]wantDiag{{Summary: "Unexpected \"tls\" block", File: "main.hcl", Line: 3, Col: 5}}},
		{"number beyond float64 in plugin config", "plugin \"target\" \"k8s\" {\n  config {\n    n = 1e9999999\n    m = [1, 1e-9999]\n  }\n}\n",
			[]wantDiag{
				{Summary: "Number out of range", Detail: "n holds a number", File: "main.hcl", Line: 3, Col: 9},
				{Summary: "Number out of range", Detail: "m holds a number", File: "main.hcl", Line: 4, Col: 9},
			}},
		{"huge number for a string", job(`  cwd = 1e9999999`),
			[]wantDiag{{Summary: "Incorrect value type", Detail: "beyond what a 64-bit float can hold", File: "main.hcl", Line: 2, Col: 9}}},
		{"tls_cert without tls_key", "core {\n  tls_cert = \"/etc/cert.pem\"\n}\n",
			[]wantDiag{{Summary: "Incomplete TLS settings", File: "main.hcl", Line: 2, Col: 14}}},
		{"advertise http", "core {\n  advertise = [\"http://10.0.0.5:8080\"]\n}\n",
			[]wantDiag{{Summary: "Invalid advertise URL", Detail: `"http://10.0.0.5:8080"`, File: "main.hcl", Line: 2, Col: 15}}},
		{"listen without port", "core {\n  listen = \"8080\"\n}\n",
			[]wantDiag{{Summary: "Invalid listen address", File: "main.hcl", Line: 2, Col: 12}}},
		{"job name with a slash", strings.Replace(job(), `job "j"`, `job "a/b"`, 1),
			[]wantDiag{{Summary: "Invalid job name", File: "main.hcl", Line: 1, Col: 5}}},
		{"env name with =", job(`  env = { "A=B" = "x" }`),
			[]wantDiag{{Summary: "Invalid environment variable name", Detail: `"A=B"`, File: "main.hcl", Line: 2, Col: 9}}},
		{"duplicate kill block", job(`  kill {}`, `  kill {}`),
			[]wantDiag{{Summary: "Duplicate kill block", File: "main.hcl", Line: 3, Col: 3}}},
		{"duplicate notify block", "notifier \"n\" { plugin = \"webhook\" }\n" + job(`  notify "n" { on = ["failure"] }`, `  notify "n" { on = ["lost"] }`),
			[]wantDiag{{Summary: "Duplicate notify block", File: "main.hcl", Line: 4, Col: 10}}},
		{"expect without max_gap", job(`  expect {}`),
			[]wantDiag{{Summary: "Missing max_gap", File: "main.hcl", Line: 2, Col: 3}}},
		{"variables are not allowed", job(`  cwd = var.dir`),
			[]wantDiag{{Summary: "Variables not allowed", File: "main.hcl", Line: 2, Col: 9}}},
		{"syntax error", "job \"j\" {\n  schedule = \n}\n",
			[]wantDiag{{Summary: "Invalid expression", File: "main.hcl", Line: 2}}},
		{"soft_timeout not shorter than timeout warns", job(`  timeout = "1h"`, `  soft_timeout = "2h"`),
			[]wantDiag{{Summary: "Soft timeout never reached", File: "main.hcl", Line: 3, Col: 18, Warning: true}}},
		{"protocol 1 without legacy_wrappers warns", job(`  wrapper { protocol = 1 }`),
			[]wantDiag{{Summary: "Protocol 1 needs legacy_wrappers", File: "main.hcl", Line: 2, Col: 24, Warning: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"main.hcl": tt.src})
			_, diags := config.Load(filepath.Join(dir, "main.hcl"))
			want := make([]wantDiag, len(tt.want))
			for i, w := range tt.want {
				w.Detail = strings.ReplaceAll(w.Detail, "%DIR%", dir)
				want[i] = w
			}
			checkDiags(t, diags, want)
		})
	}
}

func TestLoadReportsEverythingAtOnce(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.hcl": "core {\n  heartbeat_timeout = \"soon\"\n}\n" +
			"job \"one\" {\n  schedule = \"@fortnightly\"\n  command = \"x\"\n  target \"local\" {}\n  timeout = \"5 minutes\"\n}\n",
		"b.hcl": "job \"two\" {\n  command = \"x\"\n  overlap = \"often\"\n}\n" +
			"job \"three\" {\n  schedule = \"@daily\"\n  command = \"x\"\n  target \"nowhere\" {}\n  kill { signal = \"SIGKILL\" }\n}\n",
	})
	_, diags := config.Load(dir)
	checkDiags(t, diags, []wantDiag{
		{Summary: "Invalid duration", Detail: "heartbeat_timeout", File: "a.hcl", Line: 2, Col: 23},
		{Summary: "Invalid schedule", Detail: `unknown descriptor "@fortnightly"`, File: "a.hcl", Line: 5, Col: 14},
		{Summary: "Invalid duration", Detail: "timeout", File: "a.hcl", Line: 8, Col: 13},
		{Summary: "Missing schedule", File: "b.hcl", Line: 1, Col: 1},
		{Summary: "Invalid overlap", File: "b.hcl", Line: 3, Col: 13},
		{Summary: "Missing target block", File: "b.hcl", Line: 1, Col: 1},
		{Summary: "Unknown target plugin", File: "b.hcl", Line: 8, Col: 10},
		{Summary: "SIGKILL as the kill signal", File: "b.hcl", Line: 9, Col: 19},
	})
}

func TestLoadSyntaxErrorDoesNotHideOtherFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.hcl": "job \"broken\" {\n",
		"b.hcl": job(`  timeout = "forever"`),
		// A job naming a plugin that may be in the broken file: not
		// reported, since the reference cannot be checked.
		"c.hcl": "job \"k\" {\n  schedule = \"@daily\"\n  command = \"x\"\n  target \"k8s\" {}\n}\n",
	})
	_, diags := config.Load(dir)
	checkDiags(t, diags, []wantDiag{
		{Summary: "Unclosed configuration block", File: "a.hcl", Line: 1},
		{Summary: "Invalid duration", File: "b.hcl", Line: 2, Col: 13},
	})
}

func TestLoadFolder(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"00-core.hcl": "core {\n  listen = \"0.0.0.0:9000\"\n}\nplugin \"target\" \"k8s\" {\n  path = \"/usr/lib/saltpeter/k8s\"\n}\n",
		"10-web.hcl": "job \"web\" {\n  schedule = \"@hourly\"\n  command = \"x\"\n  target \"k8s\" { namespace = \"web\" }\n}\n" +
			"job \"alpha\" {\n  schedule = \"@daily\"\n  command = \"x\"\n  target \"local\" {}\n}\n",
		"notes.txt": "not read",
	})
	if err := os.Mkdir(filepath.Join(dir, "sub.hcl"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Load(dir)
	checkDiags(t, diags, nil)
	if cfg.Core.Listen != "0.0.0.0:9000" {
		t.Errorf("Listen = %q from 00-core.hcl", cfg.Core.Listen)
	}
	var names []string
	for _, j := range cfg.Jobs {
		names = append(names, j.Name)
	}
	if !reflect.DeepEqual(names, []string{"alpha", "web"}) {
		t.Errorf("jobs %v, want [alpha web] in name order", names)
	}
	if web := cfg.Job("web"); web == nil || web.Target.Plugin != "k8s" || string(web.Target.Args) != `{"namespace":"web"}` {
		t.Errorf("web target = %+v", cfg.Job("web"))
	}
	if len(cfg.Files) != 2 {
		t.Errorf("Files has %d entries, want the 2 .hcl files", len(cfg.Files))
	}
	if want := filepath.Join(dir, "data"); cfg.Core.DataDir != want {
		t.Errorf("DataDir = %q, want %q inside the folder", cfg.Core.DataDir, want)
	}
}

func TestLoadDuplicatesAcrossFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.hcl": "core {}\nnotifier \"n\" { plugin = \"webhook\" }\n" + job(),
		"b.hcl": "\n\ncore {}\nnotifier \"n\" { plugin = \"webhook\" }\n" + job(),
	})
	_, diags := config.Load(dir)
	a := filepath.Join(dir, "a.hcl")
	checkDiags(t, diags, []wantDiag{
		{Summary: "Duplicate core block", Detail: "across all its files; the first is at " + a + ":1", File: "b.hcl", Line: 3, Col: 1},
		{Summary: "Duplicate notifier", Detail: `A notifier named "n" is already declared at ` + a + ":2", File: "b.hcl", Line: 4, Col: 10},
		{Summary: "Duplicate job", Detail: `A job named "j" is already declared at ` + a + ":3", File: "b.hcl", Line: 5, Col: 5},
	})
}

func TestLoadMissingPath(t *testing.T) {
	_, diags := config.Load(filepath.Join(t.TempDir(), "nope.hcl"))
	checkDiags(t, diags, []wantDiag{{Summary: "Cannot read the configuration", Detail: "no such file"}})
	_, diags = config.Load(writeFiles(t, map[string]string{"readme.md": ""}))
	checkDiags(t, diags, []wantDiag{{Summary: "No configuration files", Detail: "no *.hcl files"}})
}

func TestLoadDefaults(t *testing.T) {
	dir := writeFiles(t, map[string]string{"main.hcl": job() + "store \"sqlite\" {}\n"})
	cfg, diags := config.Load(filepath.Join(dir, "main.hcl"))
	checkDiags(t, diags, nil)
	data := filepath.Join(dir, "data")
	wantCore := config.Core{
		Listen: "127.0.0.1:8080", DataDir: data, SecretFile: filepath.Join(data, "secret"),
		HeartbeatTimeout: 30 * time.Second, HeartbeatInterval: 5 * time.Second, ConnectDeadline: 2 * time.Minute,
		MetricsPerMachine: true,
	}
	if !reflect.DeepEqual(cfg.Core, wantCore) {
		t.Errorf("Core = %+v\nwant %+v", cfg.Core, wantCore)
	}
	wantStore := config.Store{Kind: "sqlite", Path: filepath.Join(data, "saltpeter.db"), Retention: 30 * 24 * time.Hour, MaxOutputPerMachine: 64 << 20}
	if cfg.Store == nil || *cfg.Store != wantStore {
		t.Errorf("Store = %+v, want %+v", cfg.Store, wantStore)
	}
	j := cfg.Job("j")
	if j == nil {
		t.Fatal("job j missing")
	}
	if j.Timezone != "UTC" || j.Location != time.UTC || !j.Enabled || j.Overlap != "skip" ||
		j.Success != "all" || j.CatchUp != "latest" || j.DSTGap != "shift" || j.DSTRepeat != "once" ||
		j.Kill != (config.Kill{Signal: "SIGTERM", Grace: 5 * time.Second}) || j.Wrapper != (config.Wrapper{Protocol: 2}) ||
		j.Timeout != 0 || j.Retry != nil || j.Expect != nil || j.KeepChildren || string(j.Target.Args) != "{}" {
		t.Errorf("job defaults wrong: %+v", j)
	}
	if j.ParsedSchedule == nil || j.ParsedSchedule.String() != "@hourly" {
		t.Errorf("ParsedSchedule = %v", j.ParsedSchedule)
	}

	// No store block: no store (the server picks its own default).
	cfg, _ = config.Load(writeFiles(t, map[string]string{"main.hcl": job()}))
	if cfg.Store != nil {
		t.Errorf("Store = %+v without a store block, want nil", cfg.Store)
	}
}

func TestLoadFullExample(t *testing.T) {
	cfg, diags := config.Load("testdata/full.hcl")
	checkDiags(t, diags, nil)
	if len(diags) != 0 {
		t.Errorf("warnings on the spec's example:\n%s", describe(diags))
	}
	c := cfg.Core
	if c.Listen != "127.0.0.1:8080" || !reflect.DeepEqual(c.Advertise, []string{"ws://10.0.0.5:8080"}) ||
		c.DataDir != "/var/lib/saltpeter" || c.SecretFile != "/etc/saltpeter/secret" || c.ConnectDeadline != 2*time.Minute {
		t.Errorf("core = %+v", c)
	}
	wantTokens := []config.APIToken{
		{Name: "ops", Role: "operate", SHA256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"},
		{Name: "dash", Role: "read", SHA256: "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9"},
	}
	if !reflect.DeepEqual(c.APITokens, wantTokens) {
		t.Errorf("tokens = %+v", c.APITokens)
	}
	if s := cfg.Store; s == nil || s.Kind != "sqlite" || s.Path != "/var/lib/saltpeter/saltpeter.db" || s.Retention != 30*24*time.Hour || s.MaxOutputPerMachine != 64<<20 || s.Synchronous != "full" {
		t.Errorf("store = %+v", cfg.Store)
	}
	if len(cfg.Plugins) != 2 {
		t.Fatalf("plugins = %+v", cfg.Plugins)
	}
	var ssh map[string]any
	if err := json.Unmarshal(cfg.Plugins[0].Config, &ssh); err != nil {
		t.Fatal(err)
	}
	if cfg.Plugins[0].Kind != "target" || cfg.Plugins[0].Name != "ssh" || ssh["user"] != "cron" || ssh["deploy_wrapper"] != false {
		t.Errorf("ssh plugin = %+v, config %v", cfg.Plugins[0], ssh)
	}
	if n := cfg.Notifiers; len(n) != 1 || n[0].Plugin != "webhook" || string(n[0].Config) != `{"url":"https://hooks.example.com/cron"}` {
		t.Errorf("notifiers = %+v", n)
	}
	if m := cfg.Maintenance; m.Global || !reflect.DeepEqual(m.Machines, []string{"db3"}) {
		t.Errorf("maintenance = %+v", m)
	}

	j := cfg.Job("backup-db")
	if j == nil {
		t.Fatal("no backup-db")
	}
	if j.Location.String() != "Europe/Bucharest" || j.Schedule != "0 30 2 * * *" || j.Group != "databases" ||
		j.Command != "/usr/local/bin/backup.sh --full" || j.Cwd != "/var/backups" || j.User != "backup" ||
		!reflect.DeepEqual(j.Env, map[string]string{"PGHOST": "db1"}) {
		t.Errorf("job = %+v", j)
	}
	if j.Target.Plugin != "salt" || string(j.Target.Args) != `{"tgt":"db*","tgt_type":"glob"}` {
		t.Errorf("target = %+v (%s)", j.Target, j.Target.Args)
	}
	if j.Timeout != 2*time.Hour || j.SoftTimeout != time.Hour || j.NoOutputTimeout != 0 || j.Overlap != "skip" {
		t.Errorf("timeouts/overlap = %v %v %v %q", j.Timeout, j.SoftTimeout, j.NoOutputTimeout, j.Overlap)
	}
	if *j.Retry != (config.Retry{Attempts: 2, Backoff: time.Minute}) || j.Expect.MaxGap != 26*time.Hour {
		t.Errorf("retry %+v expect %+v", j.Retry, j.Expect)
	}
	if len(j.Notify) != 1 || j.Notify[0].Notifier != "ops-webhook" || len(j.Notify[0].On) != 7 {
		t.Errorf("notify = %+v", j.Notify)
	}
	if j.Wrapper != (config.Wrapper{Path: "/usr/local/bin/saltpeter-wrapper", Protocol: 2}) {
		t.Errorf("wrapper = %+v", j.Wrapper)
	}
	if j.Range.Start.Line != 54 {
		t.Errorf("job range %s, want line 54", j.Range)
	}
}

// The job's ParsedSchedule carries its timezone and DST policies, so that
// whoever asks it for slots, from a time in any location, gets the job's.
// New York goes from 02:00 EST to 03:00 EDT on 2026-03-08 and from 02:00
// EDT back to 01:00 EST on 2026-11-01.
func TestLoadScheduleCarriesDSTPolicies(t *testing.T) {
	tests := []struct {
		name  string
		attrs []string
		after string // RFC 3339
		want  []string
	}{
		{"default gap: shift", []string{`  timezone = "America/New_York"`, `  schedule = "0 30 2 * * *"`},
			"2026-03-08T00:00:00Z", []string{"2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"}},
		{"dst_gap skip", []string{`  timezone = "America/New_York"`, `  schedule = "0 30 2 * * *"`, `  dst_gap = "skip"`},
			"2026-03-08T00:00:00Z", []string{"2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"}},
		{"default repeat: once", []string{`  timezone = "America/New_York"`, `  schedule = "0 30 1 * * *"`},
			"2026-11-01T00:00:00Z", []string{"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"}},
		{"dst_repeat twice", []string{`  timezone = "America/New_York"`, `  schedule = "0 30 1 * * *"`, `  dst_repeat = "twice"`},
			"2026-11-01T00:00:00Z", []string{"2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00", "2026-11-02T01:30:00-05:00"}},
		{"no timezone: UTC", []string{`  schedule = "0 30 2 * * *"`, `  dst_gap = "skip"`},
			"2026-03-08T00:00:00Z", []string{"2026-03-08T02:30:00Z", "2026-03-09T02:30:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "job \"j\" {\n" + lines(tt.attrs...) + "  command = \"true\"\n  target \"local\" {}\n}\n"
			cfg, diags := config.Load(filepath.Join(writeFiles(t, map[string]string{"main.hcl": src}), "main.hcl"))
			checkDiags(t, diags, nil)
			j := cfg.Job("j")
			if j == nil || j.ParsedSchedule == nil {
				t.Fatalf("job j = %+v", j)
			}
			at, err := time.Parse(time.RFC3339, tt.after)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tt.want {
				at = j.ParsedSchedule.Next(at)
				if got := at.Format(time.RFC3339); got != want || at.Location() != j.Location {
					t.Fatalf("slot %d = %s in %s, want %s in %s", i, got, at.Location(), want, j.Location)
				}
				at = at.UTC() // the argument's location must not matter
			}
		})
	}
}

func TestWriteDiagnostics(t *testing.T) {
	dir := writeFiles(t, map[string]string{"main.hcl": job(`  timeout = "5 minutes"`)})
	cfg, diags := config.Load(filepath.Join(dir, "main.hcl"))
	var b bytes.Buffer
	if err := config.WriteDiagnostics(&b, cfg.Files, diags); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"Error: Invalid duration", "main.hcl line 2", `2:   timeout = "5 minutes"`, `invalid duration "5 minutes"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestReleaseSyntax: a configuration that dropped its syntax trees still
// prints a diagnostic with the source line under it.
func TestReleaseSyntax(t *testing.T) {
	dir := writeFiles(t, map[string]string{"main.hcl": job(`  timeout = "5m"`)})
	path := filepath.Join(dir, "main.hcl")
	cfg, diags := config.Load(path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	cfg.ReleaseSyntax()
	if f := cfg.Files[path]; f == nil || f.Body != nil || f.Nav != nil {
		t.Fatalf("after ReleaseSyntax, Files holds %+v, want the source only", f)
	}
	rng := cfg.Jobs[0].Range
	var b bytes.Buffer
	if err := config.WriteDiagnostics(&b, cfg.Files, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Refused", Subject: &rng}}); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.Contains(out, `1: job "j" {`) {
		t.Errorf("the diagnostic lacks its source line:\n%s", out)
	}
}

func TestJobLookup(t *testing.T) {
	a, b, c := &config.Job{Name: "a"}, &config.Job{Name: "b"}, &config.Job{Name: "c"}
	tests := []struct {
		name string
		jobs []*config.Job
		want map[string]*config.Job
	}{
		{"name order", []*config.Job{a, b, c}, map[string]*config.Job{"a": a, "b": b, "c": c, "d": nil, "": nil}},
		{"other order", []*config.Job{c, a, b}, map[string]*config.Job{"a": a, "b": b, "c": c, "d": nil}},
		{"none", nil, map[string]*config.Job{"a": nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := &config.Config{Jobs: tt.jobs}
			for name, want := range tt.want {
				if got := conf.Job(name); got != want {
					t.Errorf("Job(%q) = %v, want %v", name, got, want)
				}
			}
		})
	}
}
