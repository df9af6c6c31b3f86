package pluginhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/sdk"
)

// Apply brings a reloaded configuration's target plugin blocks into
// force, and returns a function that puts the previous ones back (for a
// reload refused later on). A new block is added, to start on first use;
// a changed config block is handed to the running plugin's Configure at
// once (or kept for its next start), so that a plugin that refuses it
// refuses the reload. A block whose path changed, or that is gone while
// its plugin still runs, needs the plugin's process replaced under runs
// in flight: that is refused, with what to do. Store blocks are the
// server's business (the store cannot change under a running core).
func (h *Host) Apply(ctx context.Context, blocks []config.Plugin) (undo func(context.Context), diags hcl.Diagnostics) {
	var changes []change
	undo = func(ctx context.Context) { h.undo(ctx, changes) }
	fail := func(r hcl.Range, summary string, err error) (func(context.Context), hcl.Diagnostics) {
		undo(ctx)
		d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: err.Error() + "."}
		if r.Filename != "" {
			d.Subject = &r
		}
		return nil, hcl.Diagnostics{d}
	}

	seen := map[string]bool{}
	for _, b := range blocks {
		if b.Kind != sdk.KindTarget {
			continue
		}
		seen[b.Name] = true
		conf := []byte(b.Config)
		if len(conf) == 0 {
			conf = []byte("{}")
		}
		h.mu.Lock()
		m, ok := h.plugins[key{b.Kind, b.Name}]
		h.mu.Unlock()
		switch {
		case !ok:
			if b.Path == "" && !slices.Contains(h.cfg.Builtins(b.Kind), b.Name) {
				return fail(b.Range, "Unknown plugin", fmt.Errorf("plugin %q %q has no path and is not built in (built-in %s plugins: %s)",
					b.Kind, b.Name, b.Kind, strings.Join(h.cfg.Builtins(b.Kind), ", ")))
			}
			m = h.newManaged(b.Kind, b.Name, b.Path, conf)
			h.mu.Lock()
			h.plugins[key{b.Kind, b.Name}] = m
			h.mu.Unlock()
			changes = append(changes, change{m: m, added: true})
			h.log.Info("plugin block added", "kind", b.Kind, "name", b.Name)
		case m.path != b.Path:
			return fail(b.Range, "Plugin path changed", fmt.Errorf("plugin %q %q: its path changed from %q to %q, which takes a restart of the core",
				b.Kind, b.Name, m.path, b.Path))
		default:
			old := m.currentConfig()
			if bytes.Equal(old, conf) {
				continue
			}
			if err := m.reconfigure(ctx, conf); err != nil {
				return fail(b.Range, "Plugin refused its config", fmt.Errorf("plugin %q %q refused its new config: %w", b.Kind, b.Name, err))
			}
			changes = append(changes, change{m: m, old: old})
			h.log.Info("plugin reconfigured", "kind", b.Kind, "name", b.Name)
		}
	}
	// A built-in whose block is gone goes back to an empty config. A
	// block removed from a third party's plugin: its process may serve
	// runs in flight, and no job can name it any more (config.Load
	// checks), so it is left as it is until the next restart.
	h.mu.Lock()
	var gone []string
	var emptied []*managed
	for k, m := range h.plugins {
		switch {
		case k.kind != sdk.KindTarget || seen[k.name]:
		case m.path != "":
			gone = append(gone, k.name)
		default:
			emptied = append(emptied, m)
		}
	}
	h.mu.Unlock()
	for _, m := range emptied {
		old := m.currentConfig()
		if bytes.Equal(old, []byte("{}")) {
			continue
		}
		if err := m.reconfigure(ctx, []byte("{}")); err != nil {
			return fail(hcl.Range{}, "Plugin refused its config", fmt.Errorf("plugin %q %q: its block is gone, and it refuses to run without one: %w", m.kind, m.name, err))
		}
		changes = append(changes, change{m: m, old: old})
		h.log.Info("plugin block removed; the plugin runs with an empty config", "kind", m.kind, "name", m.name)
	}
	if len(gone) > 0 {
		slices.Sort(gone)
		h.log.Warn("plugin blocks removed; their plugins stay until the core restarts", "names", strings.Join(gone, " "))
	}
	return undo, nil
}

// change is one thing Apply or ApplyNotifiers did: a plugin added, or
// reconfigured from old.
type change struct {
	m     *managed
	old   []byte
	added bool
}

// undo puts changes back, last first: an added plugin is dropped (and
// stopped: CheckTargets may have started it), a reconfigured one gets
// its old config again.
func (h *Host) undo(ctx context.Context, changes []change) {
	for _, c := range slices.Backward(changes) {
		if c.added {
			h.mu.Lock()
			delete(h.plugins, key{c.m.kind, c.m.name})
			h.mu.Unlock()
			c.m.stop()
			continue
		}
		if err := c.m.reconfigure(ctx, c.old); err != nil {
			c.m.log.Error("put the previous config back after a refused reload", "error", err)
		}
	}
}

// currentConfig is the config the plugin is (or will be) configured with.
func (m *managed) currentConfig() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.config
}

// reconfigure hands a running plugin its new config, and keeps it for the
// plugin's next start; a plugin not running just keeps it. The start lock
// is held, so that a start meanwhile cannot configure with the old one.
func (m *managed) reconfigure(ctx context.Context, conf []byte) error {
	select {
	case m.lock <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("reconfigure %s plugin %s: %w", m.kind, m.name, ctx.Err())
	}
	defer func() { <-m.lock }()
	m.mu.Lock()
	inst := m.inst
	m.mu.Unlock()
	if inst != nil && !inst.client.Exited() {
		c, ok := inst.impl.(configurer)
		if !ok {
			return errors.New("the plugin takes no config")
		}
		if err := c.Configure(ctx, conf); err != nil {
			return err
		}
	}
	m.setConfig(conf)
	return nil
}

// ApplyNotifiers brings a reloaded configuration's notifier blocks into
// force, as Apply does for targets: a changed config goes to the running
// plugin's Configure (refused: the reload is refused), a new block is
// added; a block whose plugin or program changed takes a restart. A
// removed block's process stays until the core restarts; notifications
// still queued for it fail after their attempts, each logged.
func (h *Host) ApplyNotifiers(ctx context.Context, plugins []config.Plugin, blocks []config.Notifier) (undo func(context.Context), diags hcl.Diagnostics) {
	var changes []change
	undo = func(ctx context.Context) { h.undo(ctx, changes) }
	fail := func(r hcl.Range, summary string, err error) (func(context.Context), hcl.Diagnostics) {
		undo(ctx)
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: err.Error() + ".", Subject: &r}}
	}
	programs := map[string]string{}
	for _, p := range plugins {
		if p.Kind == sdk.KindNotifier {
			programs[p.Name] = p.Path
		}
	}
	for _, n := range blocks {
		conf := []byte(n.Config)
		if len(conf) == 0 {
			conf = []byte("{}")
		}
		path, declared := programs[n.Plugin]
		if !declared && !slices.Contains(h.cfg.Builtins(sdk.KindNotifier), n.Plugin) {
			return fail(n.Range, "Unknown notifier plugin", fmt.Errorf("notifier %q: plugin %q is neither built in nor declared", n.Name, n.Plugin))
		}
		h.mu.Lock()
		m, ok := h.plugins[key{sdk.KindNotifier, n.Name}]
		h.mu.Unlock()
		switch {
		case !ok:
			m = h.newManaged(sdk.KindNotifier, n.Name, path, conf)
			m.plugin = n.Plugin
			h.mu.Lock()
			h.plugins[key{sdk.KindNotifier, n.Name}] = m
			h.mu.Unlock()
			changes = append(changes, change{m: m, added: true})
			h.log.Info("notifier added", "name", n.Name, "plugin", n.Plugin)
		case m.plugin != n.Plugin || m.path != path:
			return fail(n.Range, "Notifier plugin changed", fmt.Errorf("notifier %q: its plugin changed from %q to %q (or its program), which takes a restart of the core",
				n.Name, m.plugin, n.Plugin))
		default:
			old := m.currentConfig()
			if bytes.Equal(old, conf) {
				continue
			}
			if err := m.reconfigure(ctx, conf); err != nil {
				return fail(n.Range, "Notifier refused its config", fmt.Errorf("notifier %q refused its new config: %w", n.Name, err))
			}
			changes = append(changes, change{m: m, old: old})
			h.log.Info("notifier reconfigured", "name", n.Name)
		}
	}
	return undo, nil
}
