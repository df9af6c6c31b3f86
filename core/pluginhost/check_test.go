package pluginhost

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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

// TestCheckTargetsOncePerBlock: blocks that are the same JSON are checked
// with one call, and each of them still gets the answer's diagnostic.
func TestCheckTargetsOncePerBlock(t *testing.T) {
	blocks := []config.Plugin{fakePlugin(t, "fake", `{"machines":["m1"]}`)}
	h, _ := newHost(t, blocks...)
	calls := filepath.Join(t.TempDir(), "calls")
	good := fmt.Sprintf(`{"count":%q}`, calls)
	bad := fmt.Sprintf(`{"bad":"yes","count":%q}`, calls)
	var jobs []*config.Job
	for i, args := range []string{good, good, bad, good, bad} {
		jobs = append(jobs, &config.Job{Name: fmt.Sprint("j", i), Target: config.Target{Plugin: "fake", Args: json.RawMessage(args)}})
	}
	diags := h.CheckTargets(ctx(t), &config.Config{Plugins: blocks, Jobs: jobs})
	var got []string
	for _, d := range diags {
		got = append(got, d.Detail)
	}
	want := []string{
		`job "j2": fake target block: bad = yes is not allowed.`,
		`job "j4": fake target block: bad = yes is not allowed.`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("diagnostics %q, want %q", got, want)
	}
	data, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != 2 {
		t.Errorf("the plugin was asked %d times for 2 distinct blocks:\n%s", n, data)
	}
}

// TestCheckTargetsNoAnswer: a plugin that does not answer before the
// load's deadline is one diagnostic, at the block it was asked about.
func TestCheckTargetsNoAnswer(t *testing.T) {
	blocks := []config.Plugin{fakePlugin(t, "fake", `{"machines":["m1"]}`)}
	h, _ := newHost(t, blocks...)
	job := func(name, args string) *config.Job {
		return &config.Job{Name: name, Target: config.Target{Plugin: "fake", Args: json.RawMessage(args)}}
	}
	// Started (and configured) before the short deadline below.
	if diags := h.CheckTargets(ctx(t), &config.Config{Plugins: blocks, Jobs: []*config.Job{job("warm", `{}`)}}); len(diags) != 0 {
		t.Fatalf("a good block: %v", diags)
	}
	c, cancel := context.WithTimeout(ctx(t), 200*time.Millisecond)
	defer cancel()
	jobs := []*config.Job{job("a", `{}`), job("b", `{"block":true}`), job("c", `{"block":true,"x":1}`), job("d", `{"bad":1}`)}
	diags := h.CheckTargets(c, &config.Config{Plugins: blocks, Jobs: jobs})
	if len(diags) != 1 {
		t.Fatalf("%d diagnostics, want 1: %v", len(diags), diags)
	}
	// What follows is the deadline or the stream's cancel, whichever
	// side's timer fired first.
	if d := diags[0].Detail; !strings.HasPrefix(d, `job "b": its target plugin did not answer the check`) {
		t.Errorf("diagnostic %q, want job b's, saying the plugin did not answer", d)
	}
}
