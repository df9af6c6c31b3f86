package pluginhost

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/sdk/target"
)

// TestApply: a reload's plugin blocks reach the running plugin without a
// restart; a config the plugin refuses, or a changed path, refuses the
// reload and leaves the plugin as it was; undo puts the previous config
// back; a new block can be used at once.
func TestApply(t *testing.T) {
	fake := fakePlugin(t, "fake", `{"machines":["m1"]}`)
	h, _ := newHost(t, fake)
	tgt, err := h.Target(ctx(t), "fake")
	if err != nil {
		t.Fatal(err)
	}
	pid := mustPID(t, h, "fake")
	machines := func(tgt target.Target, want ...string) {
		t.Helper()
		got, err := tgt.Resolve(ctx(t), target.ResolveRequest{Job: "j"})
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("Resolve = %q, %v; want %q", got, err, want)
		}
	}
	with := func(p config.Plugin, conf string) config.Plugin {
		p.Config = []byte(conf)
		return p
	}

	undo, diags := h.Apply(ctx(t), []config.Plugin{with(fake, `{"machines":["m2"]}`)})
	if diags.HasErrors() {
		t.Fatalf("Apply: %v", diags)
	}
	machines(tgt, "m2")
	if got := mustPID(t, h, "fake"); got != pid {
		t.Errorf("the plugin was restarted (pid %d, then %d) for a new config", pid, got)
	}
	undo(ctx(t))
	machines(tgt, "m1")

	tests := []struct {
		name   string
		blocks []config.Plugin
		want   string
	}{
		{"refused config", []config.Plugin{with(fake, `{"machines":[]}`)}, "refused its new config"},
		{"path changed", []config.Plugin{{Kind: "target", Name: "fake", Path: "/elsewhere/fake", Config: fake.Config}}, "takes a restart"},
		{"unknown built-in", []config.Plugin{fake, {Kind: "target", Name: "nope"}}, "has no path and is not built in"},
		{"a second change undone with the first", []config.Plugin{
			with(fakePlugin(t, "added", `{"machines":["a1"]}`), `{"machines":["a1"]}`),
			with(fake, `{"machines":[]}`)}, "refused its new config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := h.Apply(ctx(t), tc.blocks)
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.want) {
				t.Fatalf("Apply = %v, want an error containing %q", diags, tc.want)
			}
			machines(tgt, "m1")
			if _, err := h.Target(ctx(t), "added"); err == nil {
				t.Error("a block added by a refused reload stayed")
			}
		})
	}

	_, diags = h.Apply(ctx(t), []config.Plugin{fake, fakePlugin(t, "added", `{"machines":["a1"]}`)})
	if diags.HasErrors() {
		t.Fatalf("Apply with a new block: %v", diags)
	}
	added, err := h.Target(ctx(t), "added")
	if err != nil {
		t.Fatalf("Target(added): %v", err)
	}
	machines(added, "a1")
}

// TestApplyNotifiers: a reload's notifier blocks reach the running
// notifier without a restart (its events go to the new URL); a new block
// is usable at once; a changed plugin refuses the reload; undo puts the
// previous config back.
func TestApplyNotifiers(t *testing.T) {
	first, second, added := newHook(t, http.StatusOK), newHook(t, http.StatusOK), newHook(t, http.StatusOK)
	ops := config.Notifier{Name: "ops", Plugin: "webhook", Config: first.config()}
	h, _ := newNotifierHost(t, nil, ops)
	send := func(name, id string) {
		t.Helper()
		n, err := h.Notifier(ctx(t), name)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Notify(ctx(t), event(id)); err != nil {
			t.Fatalf("Notify %s via %s: %v", id, name, err)
		}
	}
	send("ops", "e1")

	moved := ops
	moved.Config = second.config()
	undo, diags := h.ApplyNotifiers(ctx(t), nil, []config.Notifier{moved, {Name: "new", Plugin: "webhook", Config: added.config()}})
	if diags.HasErrors() {
		t.Fatalf("ApplyNotifiers: %v", diags)
	}
	send("ops", "e2")
	send("new", "e3")
	if launches := notifierLaunches(h, "ops"); launches != 1 {
		t.Errorf("ops was started %d times for a new config, want once", launches)
	}
	undo(ctx(t))
	send("ops", "e4")
	got := func(hk *hook) (ids []string) {
		for _, ev := range hk.events() {
			ids = append(ids, ev.ID)
		}
		return ids
	}
	if a, b, c := got(first), got(second), got(added); !slices.Equal(a, []string{"e1", "e4"}) || !slices.Equal(b, []string{"e2"}) || !slices.Equal(c, []string{"e3"}) {
		t.Fatalf("first URL got %v, second %v, added %v; want [e1 e4], [e2], [e3]", a, b, c)
	}
	if _, err := h.Notifier(ctx(t), "new"); err == nil {
		t.Error("a notifier added by an undone reload stayed")
	}

	other := ops
	other.Plugin = "slack"
	if _, diags := h.ApplyNotifiers(ctx(t), nil, []config.Notifier{other}); !diags.HasErrors() || !strings.Contains(diags.Error(), "takes a restart") {
		t.Fatalf("a changed plugin: %v, want it refused", diags)
	}
}
