package pluginhost

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/saltpeter/saltpeter/core/config"
)

// TestCheckTargets: a third party's target plugin checks its jobs'
// blocks at load; one that cannot start or refuses its configuration is
// a diagnostic at its first job; built-in targets are left to
// CheckBuiltinTargets, and plugins no job uses are not started.
func TestCheckTargets(t *testing.T) {
	blocks := []config.Plugin{
		fakePlugin(t, "fake", `{"machines":["m1"]}`),
		fakePlugin(t, "misconfigured", `{"machines":[]}`),
		fakePlugin(t, "unused", `{"machines":["m1"]}`),
		{Kind: "target", Name: "ghost", Path: "/nonexistent/saltpeter-ghost"},
	}
	h, _ := newHost(t, blocks...)
	job := func(name, plugin, args string) *config.Job {
		return &config.Job{Name: name, Target: config.Target{Plugin: plugin, Args: json.RawMessage(args)}}
	}
	tests := []struct {
		name string
		jobs []*config.Job
		want []string // one diagnostic each, in order
	}{
		{"good blocks", []*config.Job{job("a", "fake", `{}`), job("b", "fake", `{"x":1}`)}, nil},
		{"a bad block", []*config.Job{job("a", "fake", `{}`), job("b", "fake", `{"bad":"yes"}`)},
			[]string{`job "b": fake target block: bad = yes is not allowed`}},
		{"refused configuration, once", []*config.Job{job("a", "misconfigured", `{}`), job("b", "misconfigured", `{}`)},
			[]string{`job "a": its target plugin cannot check the block:`}},
		{"no such program", []*config.Job{job("a", "ghost", `{}`)}, []string{"/nonexistent/saltpeter-ghost"}},
		{"built-in left alone", []*config.Job{job("a", "local", `{"bad":1}`)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			diags := h.CheckTargets(ctx(t), &config.Config{Plugins: blocks, Jobs: tc.jobs})
			if len(diags) != len(tc.want) {
				t.Fatalf("%d diagnostics, want %d: %v", len(diags), len(tc.want), diags)
			}
			for i, w := range tc.want {
				if !strings.Contains(diags[i].Detail, w) {
					t.Errorf("diagnostic %d: %q, want it to contain %q", i, diags[i].Detail, w)
				}
			}
		})
	}
	if _, ok := h.PID("target", "unused"); ok {
		t.Error("a target plugin no job uses was started")
	}
}
