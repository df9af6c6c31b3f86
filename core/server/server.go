package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/saltpeter/saltpeter/core/api"
	"github.com/saltpeter/saltpeter/core/audit"
	"github.com/saltpeter/saltpeter/core/auth"
	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/core/control"
	"github.com/saltpeter/saltpeter/core/events"
	"github.com/saltpeter/saltpeter/core/gcfloor"
	"github.com/saltpeter/saltpeter/core/hub"
	"github.com/saltpeter/saltpeter/core/killq"
	"github.com/saltpeter/saltpeter/core/metrics"
	"github.com/saltpeter/saltpeter/core/notify"
	"github.com/saltpeter/saltpeter/core/pluginhost"
	"github.com/saltpeter/saltpeter/core/retention"
	"github.com/saltpeter/saltpeter/core/runner"
	"github.com/saltpeter/saltpeter/core/schedule"
	"github.com/saltpeter/saltpeter/core/store/memory"
	"github.com/saltpeter/saltpeter/core/ui"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// Options start a core.
type Options struct {
	ConfigPath string
	Logger     hclog.Logger
	// Ready, if set, receives the address the core listens on once it
	// serves.
	Ready func(addr string)
}

// Run serves until ctx ends or a fatal error.
func Run(ctx context.Context, opts Options) error {
	log := opts.Logger
	conf, err := load(opts.ConfigPath)
	if err != nil {
		return err
	}
	if err := api.CheckListen(conf.Core.Listen, conf.Core.APITokens); err != nil {
		return err
	}
	if err := os.MkdirAll(conf.Core.DataDir, 0o700); err != nil {
		return fmt.Errorf("make data dir: %w", err)
	}
	secretPath := conf.Core.SecretFile
	if secretPath == "" {
		secretPath = filepath.Join(conf.Core.DataDir, "secret")
	}
	secret, err := auth.LoadOrCreateSecret(secretPath)
	if err != nil {
		return fmt.Errorf("load site secret: %w", err)
	}
	tokens := auth.NewTokens(secret)

	ln, err := net.Listen("tcp", conf.Core.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", conf.Core.Listen, err)
	}
	defer ln.Close()
	tlsOn := conf.Core.TLSCert != ""
	urls := advertised(conf.Core.Advertise, ln.Addr().String(), tlsOn)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	bus := events.New()
	kills := killq.New()
	storePlug, err := storePlugin(conf)
	if err != nil {
		return err
	}
	pluginBlocks := conf.Plugins
	if storePlug != nil {
		pluginBlocks = append(slices.Clone(conf.Plugins), *storePlug)
	}
	plugins, err := pluginhost.New(pluginhost.Config{Logger: log.Named("plugins"), Plugins: pluginBlocks, Notifiers: conf.Notifiers})
	if err != nil {
		return fmt.Errorf("start plugin host: %w", err)
	}
	defer plugins.Close()
	if err := checkTargets(ctx, plugins, conf); err != nil {
		return err
	}
	// Checked: from here on its diagnostics are not printed again.
	conf.ReleaseSyntax()
	st, err := openStore(ctx, plugins, storePlug)
	if err != nil {
		return err
	}
	// Deferred after plugins.Close, so it runs first: the store plugin
	// closes its database before the host stops the process.
	defer st.Close()
	var h *hub.Hub
	mx := metrics.New(metrics.Config{PerMachine: conf.Core.MetricsPerMachine, MaxMachineSeries: conf.Core.MetricsMaxMachines,
		HubCounts: func() (int64, int64) { return h.Counts() }, PluginStarts: plugins.Starts})
	st = mx.Store(st)

	firings := make(chan schedule.Firing)
	sched := schedule.NewScheduler(schedule.Config{Logger: log.Named("schedule"), Firings: firings})

	var run *runner.Runner
	var reloading sync.Mutex
	h = hub.New(hub.Config{
		Logger: log.Named("hub"), Store: st, Tokens: tokens, Kills: kills.C(), Publish: bus.Publish,
		OnFinal:          func(runID, machine, status string) { run.MachineFinal(runID, machine, status) },
		LegacyWrappers:   conf.Core.LegacyWrappers,
		HeartbeatTimeout: conf.Core.HeartbeatTimeout,
		OnKilled:         mx.Killed,
		// A restart under a fleet has every wrapper reconnect at once;
		// once they are back, what the storm allocated goes back to the
		// system rather than staying resident (BenchmarkFleetRestart,
		// 12,000 machines: 321–430 MiB resident without, 146–292 with).
		OnTakenOver: func() {
			go func() {
				gcfloor.Settle()
				log.Info("heap settled after the takeover")
			}()
		},
	})
	deliver := notify.NewDeliverer(notify.Config{Logger: log.Named("notify"), Store: st, Notifiers: plugins, Owner: leaseOwner(),
		OnResult: mx.Notified})
	deliver.SetPolicies(retryPolicies(conf))
	run = runner.New(runner.Config{
		Logger: log.Named("runner"), Store: st, Hub: h, Targets: plugins, Tokens: tokens, Kills: kills,
		Scheduler: sched, Publish: bus.Publish, URLs: urls, CAFile: conf.Core.WrapperCAFile,
		CoreURL: baseURL(urls[0]), Notified: deliver.Wake, OnRunEnd: mx.RunEnded, OnFired: mx.Fired,
		Load: func() (*config.Config, error) {
			// A SIGHUP and an API reload at once must not interleave
			// their plugin changes and undos.
			reloading.Lock()
			defer reloading.Unlock()
			next, err := reload(ctx, opts.ConfigPath, plugins, conf.StoreOrDefault())
			if err == nil {
				deliver.SetPolicies(retryPolicies(next))
			}
			return next, err
		},
	}, conf)
	// Every operator action goes through ctl, which records it in the
	// audit log, whichever surface asked.
	auditLog := audit.New(st, log.Named("audit"), nil)
	ctl := audit.Control(settling{run}, auditLog)
	a := api.New(api.Config{Logger: log.Named("api"), Control: ctl, Store: st, Events: bus, Audit: auditLog, Wrappers: h, Metrics: mx.Handler(),
		Tokens: conf.Core.APITokens, Listen: ln.Addr().String(), SessionKey: auth.DeriveKey(secret, "api session cookies")})

	mux := http.NewServeMux()
	mux.Handle("/api/", a.Handler())
	mux.Handle("/healthz", a.Handler())
	mux.Handle("/ws", a.Handler())
	mux.Handle("/metrics", a.Handler())
	mux.Handle("/", ui.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})}

	// Each part reports when it returns; before shutdown that is a
	// failure, whatever it returned.
	type stopped struct {
		part string
		err  error
	}
	stops := make(chan stopped, 4)
	parts := 0
	goPart := func(name string, f func() error) {
		parts++
		go func() { stops <- stopped{name, f()} }()
	}
	go kills.Run(ctx.Done())
	if keep := conf.StoreOrDefault().Retention; keep > 0 {
		go retention.Run(ctx, log.Named("retention"), st, keep, retention.Interval(keep), nil)
	}
	goPart("hub", func() error { return h.Run(ctx) })
	// Machines a previous core left in flight get their heartbeat clocks
	// back before anything fires or dispatches.
	if n, err := h.Recover(ctx, conf.Core.ConnectDeadline); err != nil {
		return fmt.Errorf("take over runs in flight: %w", err)
	} else if n > 0 {
		log.Info("took over machines in flight", "machines", n)
	}
	goPart("scheduler", func() error { return sched.Run(ctx) })
	goPart("runner", func() error { return run.Run(ctx, firings) })
	goPart("notifications", func() error { return deliver.Run(ctx) })
	goPart("http server", func() error {
		var err error
		if tlsOn {
			srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			err = srv.ServeTLS(ln, conf.Core.TLSCert, conf.Core.TLSKey)
		} else {
			err = srv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		return err
	})
	log.Info("core serving", "addr", ln.Addr().String(), "wrapper_urls", strings.Join(urls, " "), "jobs", len(conf.Jobs))
	if opts.Ready != nil {
		opts.Ready(ln.Addr().String())
	}
	// Loading and scheduling the jobs was the burst; what it left goes
	// back to the system rather than waiting for the heap to reach the
	// collector's floor.
	go gcfloor.Settle()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var failed error
serve:
	for {
		select {
		case <-hup:
			if err := ctl.Reload(audit.WithSource(ctx, audit.Source{Via: audit.ViaSignal}), "SIGHUP"); err != nil {
				var ce *control.ConfigError
				if errors.As(err, &ce) {
					log.Error("reload refused, the running configuration stays", "diagnostics", ce.Diagnostics)
				} else {
					log.Error("reload failed", "error", err)
				}
			}
		case st := <-stops:
			parts--
			failed = fmt.Errorf("%s stopped: %w", st.part, st.err)
			if st.err == nil {
				failed = fmt.Errorf("%s stopped unexpectedly", st.part)
			}
			break serve
		case <-ctx.Done():
			break serve
		}
	}
	// Stop taking requests, then wait for every part to return, so that
	// nothing writes to the store or calls a plugin while they close.
	cancel()
	shutdown(srv, log)
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for parts > 0 {
		select {
		case st := <-stops:
			parts--
			if st.err != nil && !errors.Is(st.err, context.Canceled) {
				log.Warn("part stopped with an error", "part", st.part, "error", st.err)
			}
		case <-timeout.C:
			log.Warn("parts still running after 10s, stopping anyway", "parts", parts)
			parts = 0
		}
	}
	log.Info("core stopped")
	return failed
}

// settling hands a reload's garbage back to the system, as the core does
// startup's (see gcfloor.Settle): a reload parses and schedules every job
// again.
type settling struct{ control.Control }

func (s settling) Reload(ctx context.Context, by string) error {
	err := s.Control.Reload(ctx, by)
	if err == nil {
		go gcfloor.Settle()
	}
	return err
}

func shutdown(srv *http.Server, log hclog.Logger) {
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "error", err)
	}
}

// load reads and validates the configuration; diagnostics become a
// control.ConfigError carrying their text.
func load(path string) (*config.Config, error) {
	conf, diags := config.Load(path)
	if !diags.HasErrors() {
		diags = append(diags, pluginhost.CheckBuiltinTargets(context.Background(), conf)...)
	}
	if diags.HasErrors() {
		return nil, configError(conf, diags)
	}
	return conf, nil
}

// checkTargetsTimeout bounds the start and checks of third parties'
// target plugins at a load.
const checkTargetsTimeout = 30 * time.Second

// checkTargets has the third parties' target plugins check their jobs'
// blocks (Host.CheckTargets), at start and at every reload, so that a bad
// block is refused then rather than failing its first run.
func checkTargets(ctx context.Context, plugins *pluginhost.Host, conf *config.Config) error {
	ctx, cancel := context.WithTimeout(ctx, checkTargetsTimeout)
	defer cancel()
	if diags := plugins.CheckTargets(ctx, conf); diags.HasErrors() {
		return configError(conf, diags)
	}
	return nil
}

// reload loads the configuration again for a running core: its target
// plugin blocks and notifier blocks are applied to the running plugins
// (Host.Apply, Host.ApplyNotifiers) and its target blocks checked; a refusal puts the plugins back as they were.
// The store cannot change under a running core: a changed store block
// refuses the reload rather than being silently ignored.
func reload(ctx context.Context, path string, plugins *pluginhost.Host, running config.Store) (*config.Config, error) {
	conf, err := load(path)
	if err != nil {
		return nil, err
	}
	if now := conf.StoreOrDefault(); !sameStore(now, running) {
		return nil, configError(conf, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Store changed",
			Detail: "The store block's kind, path, dsn, synchronous or retention differs from the core's: they change only at a restart of the core (saltpeter serve). Its max_output_per_machine applies at a reload, to the runs that start after it."}})
	}
	actx, cancel := context.WithTimeout(ctx, checkTargetsTimeout)
	defer cancel()
	undo, diags := plugins.Apply(actx, conf.Plugins)
	if diags.HasErrors() {
		return nil, configError(conf, diags)
	}
	undoNotifiers, diags := plugins.ApplyNotifiers(actx, conf.Plugins, conf.Notifiers)
	if diags.HasErrors() {
		undo(actx)
		return nil, configError(conf, diags)
	}
	if err := checkTargets(ctx, plugins, conf); err != nil {
		undoNotifiers(actx)
		undo(actx)
		return nil, err
	}
	conf.ReleaseSyntax()
	return conf, nil
}

// sameStore reports whether two store blocks name the same store, kept the
// same way: all but the output cap, which each run takes when it starts.
func sameStore(a, b config.Store) bool {
	a.MaxOutputPerMachine, b.MaxOutputPerMachine = 0, 0
	return a == b
}

func configError(conf *config.Config, diags hcl.Diagnostics) error {
	var b strings.Builder
	files := map[string]*hcl.File(nil)
	if conf != nil {
		files = conf.Files
	}
	_ = config.WriteDiagnostics(&b, files, diags)
	return &control.ConfigError{Diagnostics: b.String()}
}

// storePlugin turns the store block into the plugin block of the store
// plugin that serves it; nil for the in-process memory store. Without a
// store block the store is SQLite in the data directory.
func storePlugin(conf *config.Config) (*config.Plugin, error) {
	s := conf.StoreOrDefault()
	if s.Kind == config.StoreMemory {
		return nil, nil
	}
	c := map[string]any{}
	switch s.Kind {
	case config.StoreSQLite:
		c["path"] = s.Path
		if s.Synchronous != "" {
			c["synchronous"] = s.Synchronous
		}
	case config.StorePostgres:
		c["dsn"] = s.DSN
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode the store block: %w", err)
	}
	return &config.Plugin{Kind: "store", Name: s.Kind, Config: b}, nil
}

// openStore starts the store plugin (or the memory store) and waits until
// it opened its database: a store that cannot open stops the core at
// start, naming the file or server, rather than leaving it half-working.
func openStore(ctx context.Context, plugins *pluginhost.Host, block *config.Plugin) (store.Store, error) {
	if block == nil {
		return memory.New(), nil
	}
	st, err := plugins.Store(ctx, block.Name)
	if err != nil {
		return nil, fmt.Errorf("open the %s store: %w", block.Name, err)
	}
	if err := st.Ping(ctx); err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("open the %s store: %w", block.Name, err)
	}
	return st, nil
}

// retryPolicies are the notifier blocks' delivery attempts and back-off.
func retryPolicies(conf *config.Config) map[string]notify.Policy {
	p := make(map[string]notify.Policy, len(conf.Notifiers))
	for _, n := range conf.Notifiers {
		p[n.Name] = notify.Policy{Attempts: n.Attempts, Backoff: n.Backoff}
	}
	return p
}

// leaseOwner names this core process's leases on the notification
// outbox: unique per process, even for two cores on one host.
func leaseOwner() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/%d/%x", host, os.Getpid(), b)
}

// baseURL is the core's own URL for links in notifications: the first
// advertised wrapper URL, as http(s) and without /ws.
func baseURL(ws string) string {
	u, err := url.Parse(ws)
	if err != nil {
		return ""
	}
	switch u.Scheme {
	case "wss":
		u.Scheme = "https"
	default:
		u.Scheme = "http"
	}
	u.Path = strings.TrimSuffix(u.Path, "/ws")
	return u.String()
}

// advertised returns the URLs wrappers dial, each ending in /ws.
func advertised(adv []string, bound string, tlsOn bool) []string {
	if len(adv) == 0 {
		host, port, _ := net.SplitHostPort(bound)
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			if h, err := os.Hostname(); err == nil {
				host = h
			}
		}
		scheme := "ws"
		if tlsOn {
			scheme = "wss"
		}
		adv = []string{scheme + "://" + net.JoinHostPort(host, port)}
	}
	out := make([]string, len(adv))
	for i, u := range adv {
		u = strings.TrimRight(u, "/")
		if !strings.HasSuffix(u, "/ws") {
			u += "/ws"
		}
		out[i] = u
	}
	return out
}
