package sdk

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/saltpeter/saltpeter/sdk/notifier"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/target"
)

// ServeOption configures Serve.
type ServeOption func(*serveConfig)

type serveConfig struct {
	target   func(hclog.Logger) (target.Target, error)
	store    func(hclog.Logger) (store.Store, error)
	notifier func(hclog.Logger) (notifier.Notifier, error)
	level    hclog.Level
}

// WithTarget makes the plugin serve the target kind. Serve calls factory
// once, before it answers the core, with the plugin's logger; an error
// from it ends the plugin with that error logged.
func WithTarget(factory func(hclog.Logger) (target.Target, error)) ServeOption {
	return func(c *serveConfig) { c.target = factory }
}

// WithStore makes the plugin serve the store kind. Serve calls factory
// once, before it answers the core, with the plugin's logger; an error
// from it ends the plugin with that error logged. The store gets its
// plugin block's config later, through Configure, when it implements
// store.Configurer.
func WithStore(factory func(hclog.Logger) (store.Store, error)) ServeOption {
	return func(c *serveConfig) { c.store = factory }
}

// WithNotifier makes the plugin serve the notifier kind. Serve calls
// factory once, before it answers the core, with the plugin's logger; an
// error from it ends the plugin with that error logged. The core starts
// one process per notifier block and hands it the block's config through
// Configure.
func WithNotifier(factory func(hclog.Logger) (notifier.Notifier, error)) ServeOption {
	return func(c *serveConfig) { c.notifier = factory }
}

// WithLogLevel sets the plugin logger's level, overriding the level the
// core asks for through EnvLogLevel (default info).
func WithLogLevel(level hclog.Level) ServeOption {
	return func(c *serveConfig) { c.level = level }
}

// hostWatchInterval is how often a served plugin checks that the process
// that started it is still its parent.
const hostWatchInterval = 500 * time.Millisecond

// Serve serves the plugin called name with every kind an option names,
// over gRPC, until the core stops it; it exits the process when it cannot
// serve (no kind, a factory error, not started by a core) and when the
// core that started it dies: its parent process changes, or the core's
// gRPC connection closes. Call it from main and do nothing after it.
//
// Everything the plugin logs goes to standard error as hclog JSON, which
// the core reads into its own log; standard output belongs to go-plugin.
func Serve(name string, opts ...ServeOption) {
	cfg := serveConfig{level: hclog.Info}
	if lvl := hclog.LevelFromString(os.Getenv(EnvLogLevel)); lvl != hclog.NoLevel {
		cfg.level = lvl
	}
	for _, o := range opts {
		o(&cfg)
	}
	// The logger holds the real standard error: plugin.Serve later points
	// os.Stderr at a pipe of its own.
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      cfg.level,
		Output:     os.Stderr,
		JSONFormat: true,
	})

	if os.Getenv(Handshake.MagicCookieKey) != Handshake.MagicCookieValue {
		fmt.Fprintf(os.Stderr, "%s is a Saltpeter plugin: the Saltpeter core starts it, not a person.\n", name)
		os.Exit(1)
	}

	w := newHostWatch(logger)
	go w.watchParent(os.Getppid(), hostWatchInterval)

	plugins, err := pluginSet(cfg, logger)
	if err != nil {
		logger.Error("cannot serve plugin", "error", err)
		os.Exit(1)
	}

	logger.Debug("serving plugin", "kinds", kinds(plugins))
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugins,
		Logger:          logger,
		GRPCServer: func(o []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(append(o, grpc.StatsHandler(w)), grpcServerOptions()...)...)
		},
	})
	logger.Debug("plugin stopped by the core")
}

// pluginSet calls each configured kind's factory.
func pluginSet(cfg serveConfig, logger hclog.Logger) (plugin.PluginSet, error) {
	ps := plugin.PluginSet{}
	if cfg.target != nil {
		impl, err := cfg.target(logger)
		if err != nil {
			return nil, fmt.Errorf("create %s plugin: %w", KindTarget, err)
		}
		if impl == nil {
			return nil, fmt.Errorf("create %s plugin: factory returned no implementation", KindTarget)
		}
		ps[KindTarget] = &target.Plugin{Impl: impl}
	}
	if cfg.store != nil {
		impl, err := cfg.store(logger)
		if err != nil {
			return nil, fmt.Errorf("create %s plugin: %w", KindStore, err)
		}
		if impl == nil {
			return nil, fmt.Errorf("create %s plugin: factory returned no implementation", KindStore)
		}
		ps[KindStore] = &store.Plugin{Impl: impl}
	}
	if cfg.notifier != nil {
		impl, err := cfg.notifier(logger)
		if err != nil {
			return nil, fmt.Errorf("create %s plugin: %w", KindNotifier, err)
		}
		if impl == nil {
			return nil, fmt.Errorf("create %s plugin: factory returned no implementation", KindNotifier)
		}
		ps[KindNotifier] = &notifier.Plugin{Impl: impl}
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("no plugin kind to serve: pass an option such as WithTarget, WithStore or WithNotifier")
	}
	return ps, nil
}

// kinds lists a plugin set's kinds, for logs.
func kinds(ps plugin.PluginSet) string {
	var k []string
	for name := range ps {
		k = append(k, name)
	}
	sort.Strings(k)
	return strings.Join(k, ",")
}
