package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/sdk"
	"github.com/saltpeter/saltpeter/sdk/notifier"
)

// A notifier block is an instance of a notifier plugin: its name is the
// block's, its plugin a built-in notifier or one a plugin "notifier"
// block declares with a path, its config the block's. Each instance is a
// process of its own, keyed {notifier, block name} among the host's
// plugins, so two blocks of the webhook plugin are two webhook processes,
// each configured once with its own block: a slow or crashed receiver's
// process holds up no other's, and a plugin keeps one config, as every
// kind does.

// declareNotifierPlugin records a plugin "notifier" block: the program of
// the notifier blocks that name it.
func (h *Host) declareNotifierPlugin(programs map[string]config.Plugin, p config.Plugin) error {
	if _, dup := programs[p.Name]; dup {
		return fmt.Errorf("%s: plugin %q %q is declared twice", p.Range, p.Kind, p.Name)
	}
	if p.Path == "" && !slices.Contains(h.cfg.Builtins(p.Kind), p.Name) {
		return fmt.Errorf("%s: plugin %q %q has no path and is not built in (built-in %s plugins: %s)",
			p.Range, p.Kind, p.Name, p.Kind, strings.Join(h.cfg.Builtins(p.Kind), ", "))
	}
	programs[p.Name] = p
	return nil
}

// addNotifiers adds one managed plugin per notifier block. A block whose
// plugin is neither built in nor declared is refused (config.Load
// refuses it first; this is for hosts made otherwise).
func (h *Host) addNotifiers(blocks []config.Notifier, programs map[string]config.Plugin) error {
	for _, n := range blocks {
		k := key{sdk.KindNotifier, n.Name}
		if _, dup := h.plugins[k]; dup {
			return fmt.Errorf("%s: notifier %q is declared twice", n.Range, n.Name)
		}
		path := ""
		if p, ok := programs[n.Plugin]; ok {
			path = p.Path
		} else if !slices.Contains(h.cfg.Builtins(sdk.KindNotifier), n.Plugin) {
			return fmt.Errorf("%s: notifier %q: plugin %q is neither built in (built-in notifiers: %s) nor declared by a plugin %q %q block",
				n.Range, n.Name, n.Plugin, strings.Join(h.cfg.Builtins(sdk.KindNotifier), ", "), sdk.KindNotifier, n.Plugin)
		}
		m := h.newManaged(sdk.KindNotifier, n.Name, path, n.Config)
		m.plugin = n.Plugin
		h.plugins[k] = m
	}
	return nil
}

// Notifier returns the notifier of the notifier block called name: its
// plugin's process, started on first use and configured with the block's
// config. The returned Notifier outlives restarts of the process behind
// it: a process that died is started again at the next call, and a
// Notify that failed because its process died is retried once on the new
// one. That retry may deliver an event twice (the first process may have
// delivered it just before it died), which the notifier kind allows:
// every event carries its id, for receivers to drop a duplicate.
func (h *Host) Notifier(ctx context.Context, name string) (notifier.Notifier, error) {
	h.mu.Lock()
	closed := h.closed
	m, ok := h.plugins[key{sdk.KindNotifier, name}]
	h.mu.Unlock()
	switch {
	case closed:
		return nil, errors.New("plugin host is closed")
	case !ok:
		// Permanent: a block removed by a reload leaves notifications
		// queued for it, and no retry can bring it back.
		return nil, notifier.Permanent(fmt.Errorf("no notifier %q: no notifier block declares it", name))
	}
	if _, err := m.get(ctx); err != nil {
		return nil, err
	}
	return &hostedNotifier{m: m}, nil
}

// hostedNotifier is a notifier block's plugin as the core sees it: each
// call goes to the block's current process, restarted when it died.
type hostedNotifier struct {
	m *managed
}

var _ notifier.Notifier = (*hostedNotifier)(nil)

// Configure reconfigures the notifier; the config is kept for restarts
// once the plugin accepted it.
func (n *hostedNotifier) Configure(ctx context.Context, config []byte) error {
	_, err := n.m.call(ctx, func(impl any) error { return impl.(notifier.Notifier).Configure(ctx, config) })
	if err == nil {
		n.m.setConfig(config)
	}
	return err
}

// Notify implements notifier.Notifier; see Host.Notifier for its retry.
func (n *hostedNotifier) Notify(ctx context.Context, ev notifier.Event) error {
	retried, err := n.m.call(ctx, func(impl any) error { return impl.(notifier.Notifier).Notify(ctx, ev) })
	if retried {
		n.m.log.Warn("notification retried on a restarted plugin; it may have been delivered twice",
			"event_id", ev.ID, "error", err)
	}
	return err
}
