package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/plugins/builtin"
	"github.com/saltpeter/saltpeter/sdk"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/target"
)

// Config configures a Host.
type Config struct {
	// Logger receives the host's log and, named plugin.KIND.NAME, each
	// plugin's.
	Logger hclog.Logger
	// Plugins are the configuration's plugin blocks. Built-in targets
	// need none.
	Plugins []config.Plugin
	// Notifiers are the configuration's notifier blocks: each is served
	// by a process of its own (see Host.Notifier).
	Notifiers []config.Notifier
	// Executable serves the built-in plugins; default os.Executable().
	Executable string
	// BuiltinArgs are Executable's arguments for a built-in plugin;
	// default `plugin KIND NAME`.
	BuiltinArgs func(kind, name string) []string
	// Builtins names the built-in plugins of a kind; default
	// builtin.Names.
	Builtins func(kind string) []string
	// Env is added to every plugin's environment, over the core's own.
	Env []string
	// StartTimeout bounds a plugin's start; default 30s.
	StartTimeout time.Duration
}

// Host starts, configures, restarts and stops plugins. It is safe for
// concurrent use.
type Host struct {
	cfg Config
	log hclog.Logger
	// pdeathsig is the signal the kernel sends a plugin when the thread
	// that started it ends. Go starts processes from arbitrary threads and
	// ends a thread only when a goroutine locked to it exits unlocked,
	// which nothing in the core does; the plugin's own watch (sdk.Serve)
	// covers the rest.
	pdeathsig syscall.Signal

	mu      sync.Mutex
	closed  bool
	plugins map[key]*managed
}

type key struct{ kind, name string }

// New checks the plugin blocks and returns a host. It starts nothing:
// plugins start on first use.
func New(cfg Config) (*Host, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("plugin host: find own binary: %w", err)
		}
		cfg.Executable = exe
	}
	if cfg.BuiltinArgs == nil {
		cfg.BuiltinArgs = func(kind, name string) []string { return []string{"plugin", kind, name} }
	}
	if cfg.Builtins == nil {
		cfg.Builtins = builtin.Names
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	h := &Host{cfg: cfg, log: cfg.Logger, pdeathsig: syscall.SIGKILL, plugins: map[key]*managed{}}
	programs := map[string]config.Plugin{} // notifier plugins, by name
	for _, p := range cfg.Plugins {
		if p.Kind == sdk.KindNotifier {
			if err := h.declareNotifierPlugin(programs, p); err != nil {
				return nil, err
			}
			continue
		}
		if p.Kind != sdk.KindTarget && p.Kind != sdk.KindStore {
			h.log.Debug("plugin kind not hosted, ignoring", "kind", p.Kind, "name", p.Name)
			continue
		}
		k := key{p.Kind, p.Name}
		if _, dup := h.plugins[k]; dup {
			return nil, fmt.Errorf("%s: plugin %q %q is declared twice", p.Range, p.Kind, p.Name)
		}
		if p.Path == "" && !slices.Contains(cfg.Builtins(p.Kind), p.Name) {
			return nil, fmt.Errorf("%s: plugin %q %q has no path and is not built in (built-in %s plugins: %s)",
				p.Range, p.Kind, p.Name, p.Kind, strings.Join(cfg.Builtins(p.Kind), ", "))
		}
		h.plugins[k] = h.newManaged(p.Kind, p.Name, p.Path, p.Config)
	}
	if err := h.addNotifiers(cfg.Notifiers, programs); err != nil {
		return nil, err
	}
	return h, nil
}

// Target returns the target plugin called name, started and configured.
// The returned Target outlives restarts of the plugin behind it.
func (h *Host) Target(ctx context.Context, name string) (target.Target, error) {
	m, err := h.lookup(sdk.KindTarget, name)
	if err != nil {
		return nil, err
	}
	if _, err := m.get(ctx); err != nil {
		return nil, err
	}
	return &hostedTarget{m: m}, nil
}

// Store returns the store plugin called name, started and configured
// with its plugin block's config (see store.Configurer). The returned
// Store outlives restarts of the plugin behind it; a call that failed
// because the plugin died is retried once on the restarted plugin (see
// hostedStore for why that is safe for each method).
func (h *Host) Store(ctx context.Context, name string) (store.Store, error) {
	m, err := h.lookup(sdk.KindStore, name)
	if err != nil {
		return nil, err
	}
	if _, err := m.get(ctx); err != nil {
		return nil, err
	}
	return &hostedStore{m: m}, nil
}

// PID returns the process id of the running plugin kind/name.
func (h *Host) PID(kind, name string) (int, bool) {
	h.mu.Lock()
	m := h.plugins[key{kind, name}]
	h.mu.Unlock()
	if m == nil {
		return 0, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.inst == nil || m.inst.client.Exited() {
		return 0, false
	}
	return m.inst.pid, true
}

// Starts returns how many times each plugin, by kind and name, was
// started: more than once is a restart (for metrics).
func (h *Host) Starts() map[[2]string]int {
	h.mu.Lock()
	ms := make(map[key]*managed, len(h.plugins))
	for k, m := range h.plugins {
		ms[k] = m
	}
	h.mu.Unlock()
	out := make(map[[2]string]int, len(ms))
	for k, m := range ms {
		m.mu.Lock()
		if m.launches > 0 {
			out[[2]string{k.kind, k.name}] = m.launches
		}
		m.mu.Unlock()
	}
	return out
}

// Close stops every plugin and waits for them to exit; the host starts
// none after it.
func (h *Host) Close() error {
	h.mu.Lock()
	h.closed = true
	ms := make([]*managed, 0, len(h.plugins))
	for _, m := range h.plugins {
		ms = append(ms, m)
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Go(m.stop)
	}
	wg.Wait()
	return nil
}

func (h *Host) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// lookup finds a configured plugin, or a built-in one without a block.
func (h *Host) lookup(kind, name string) (*managed, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("plugin host is closed")
	}
	if m, ok := h.plugins[key{kind, name}]; ok {
		return m, nil
	}
	if !slices.Contains(h.cfg.Builtins(kind), name) {
		return nil, fmt.Errorf("no %s plugin %q: it is not built in (built-in: %s) and no plugin %q %q block declares it",
			kind, name, strings.Join(h.cfg.Builtins(kind), ", "), kind, name)
	}
	m := h.newManaged(kind, name, "", nil)
	h.plugins[key{kind, name}] = m
	return m, nil
}
