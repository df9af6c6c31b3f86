package config_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/config"
)

// A notifier block names its plugin: a built-in one, or one a plugin
// "notifier" block declares, in any file; anything else is refused at
// the attribute. A plugin "notifier" block has no config of its own.
func TestLoadNotifierPlugins(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []wantDiag
	}{
		{"built-in", map[string]string{"main.hcl": "notifier \"ops\" {\n  plugin = \"slack\"\n  config { url = \"https://hooks.slack.com/x\" }\n}\n"}, nil},
		{"declared in another file", map[string]string{
			"a.hcl": "notifier \"ops\" {\n  plugin = \"pager\"\n}\n",
			"b.hcl": "plugin \"notifier\" \"pager\" {\n  path = \"/usr/lib/saltpeter/pager\"\n}\n",
		}, nil},
		{"unknown", map[string]string{"main.hcl": "notifier \"ops\" {\n  plugin = \"pager\"\n}\n"},
			[]wantDiag{{Summary: "Unknown notifier plugin", Detail: `plugin "pager" is neither a built-in notifier ("email", "exec", "slack" or "webhook")`, File: "main.hcl", Line: 2, Col: 12}}},
		{"a target of that name is no notifier", map[string]string{"main.hcl": "plugin \"target\" \"pager\" {\n  path = \"/x\"\n}\nnotifier \"ops\" {\n  plugin = \"pager\"\n}\n"},
			[]wantDiag{{Summary: "Unknown notifier plugin", File: "main.hcl", Line: 5, Col: 12}}},
		{"config in the plugin block", map[string]string{"main.hcl": "plugin \"notifier\" \"pager\" {\n  path = \"/x\"\n  config { team = \"ops\" }\n}\n"},
			[]wantDiag{{Summary: "Config in a notifier plugin block", Detail: "each notifier block that uses it has its own config block", File: "main.hcl", Line: 3, Col: 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := config.Load(writeFiles(t, tt.files))
			checkDiags(t, diags, tt.want)
			if tt.want == nil && len(cfg.Notifiers) != 1 {
				t.Errorf("notifiers = %+v", cfg.Notifiers)
			}
		})
	}
	// The folder form and the file form agree.
	dir := writeFiles(t, map[string]string{"main.hcl": "notifier \"ops\" {\n  plugin = \"nope\"\n}\n"})
	if _, diags := config.Load(filepath.Join(dir, "main.hcl")); !diags.HasErrors() {
		t.Error("a single file with an unknown notifier plugin loads")
	}
}

// A notifier block's attempts and backoff: defaulted, read, and checked.
func TestLoadNotifierRetry(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		attempts int
		backoff  time.Duration
		want     []wantDiag
	}{
		{"defaults", "", config.DefaultNotifierAttempts, config.DefaultNotifierBackoff, nil},
		{"set", "  attempts = 3\n  backoff  = \"5s\"\n", 3, 5 * time.Second, nil},
		{"no attempt", "  attempts = 0\n", 0, 0, []wantDiag{{Summary: "Invalid attempts", File: "main.hcl", Line: 3, Col: 14}}},
		{"bad backoff", "  backoff = \"soon\"\n", 0, 0, []wantDiag{{Summary: "Invalid duration", File: "main.hcl", Line: 3, Col: 13}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "notifier \"ops\" {\n  plugin = \"webhook\"\n" + tt.body + "}\n"
			cfg, diags := config.Load(writeFiles(t, map[string]string{"main.hcl": src}))
			checkDiags(t, diags, tt.want)
			if tt.want != nil {
				return
			}
			if n := cfg.Notifiers[0]; n.Attempts != tt.attempts || n.Backoff != tt.backoff {
				t.Errorf("attempts %d, backoff %s; want %d, %s", n.Attempts, n.Backoff, tt.attempts, tt.backoff)
			}
		})
	}
}
