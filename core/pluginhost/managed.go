package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/saltpeter/saltpeter/sdk"
	"github.com/saltpeter/saltpeter/sdk/notifier"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/target"
)

// managed is one configured plugin and its current process, if any.
type managed struct {
	host       *Host
	kind, name string
	// plugin is the plugin the process serves: the name itself, but for
	// a notifier block, whose name is the block's and whose plugin is the
	// block's plugin attribute.
	plugin string
	path   string // empty: built-in
	log    hclog.Logger

	// lock serialises starts and stops; a channel so that waiting for it
	// honours a context.
	lock chan struct{}

	mu       sync.Mutex // guards the fields below
	config   []byte
	inst     *instance
	launches int
}

// instance is one run of a plugin process.
type instance struct {
	client *plugin.Client
	// impl is the dispensed client of the plugin's kind: a target.Target,
	// a store.Store or a notifier.Notifier.
	impl any
	pid  int
}

// configurer is how the host hands a plugin its config, whatever its
// kind: target.Target and notifier.Notifier have Configure, and a store's
// client forwards it to the store when the store is a store.Configurer.
type configurer interface {
	Configure(ctx context.Context, config []byte) error
}

func (h *Host) newManaged(kind, name, path string, config []byte) *managed {
	if len(config) == 0 {
		config = []byte("{}")
	}
	return &managed{
		host:   h,
		kind:   kind,
		name:   name,
		plugin: name,
		path:   path,
		log:    h.log.Named("plugin." + kind + "." + name),
		lock:   make(chan struct{}, 1),
		config: config,
	}
}

// get returns the running instance, starting one if there is none or the
// last one died.
func (m *managed) get(ctx context.Context) (*instance, error) {
	select {
	case m.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("start %s plugin %s: %w", m.kind, m.name, ctx.Err())
	}
	defer func() { <-m.lock }()

	if m.host.isClosed() {
		return nil, errors.New("plugin host is closed")
	}
	m.mu.Lock()
	inst := m.inst
	m.mu.Unlock()
	if inst != nil && !inst.client.Exited() {
		return inst, nil
	}
	if inst != nil {
		m.log.Warn("plugin exited; starting it again", "pid", inst.pid)
		inst.client.Kill() // collects its goroutines; the process is gone
	}
	inst, err := m.start(ctx)
	m.mu.Lock()
	m.inst = inst
	m.mu.Unlock()
	return inst, err
}

// start launches, connects and configures a plugin process.
func (m *managed) start(ctx context.Context) (*instance, error) {
	h := m.host
	var cmd *exec.Cmd
	if m.path == "" {
		cmd = exec.Command(h.cfg.Executable, h.cfg.BuiltinArgs(m.kind, m.plugin)...)
	} else {
		cmd = exec.Command(m.path)
	}
	cmd.Env = append(os.Environ(), sdk.EnvLogLevel+"="+logLevel(m.log))
	cmd.Env = append(cmd.Env, h.cfg.Env...)
	// A process group of its own: a signal meant for the core's group (a
	// terminal's Ctrl-C, an init system's SIGTERM) reaches the core, which
	// then stops its plugins in order, not the plugins behind its back.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: h.pdeathsig, Setpgid: true}

	m.mu.Lock()
	m.launches++
	config := m.config
	m.mu.Unlock()

	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          plugin.PluginSet{target.Kind: &target.Plugin{}, store.Kind: &store.Plugin{}, notifier.Kind: &notifier.Plugin{}},
		Cmd:              cmd,
		SkipHostEnv:      true, // cmd.Env has it, under Config.Env
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           m.log,
		StartTimeout:     h.cfg.StartTimeout,
		// A plugin exits when its last connection from the core closes
		// (sdk.Serve); an idle channel must not close it.
		GRPCDialOptions: append(sdk.GRPCDialOptions(), grpc.WithIdleTimeout(0)),
	})
	fail := func(what string, err error) (*instance, error) {
		client.Kill()
		return nil, fmt.Errorf("%s %s plugin %s (%s): %w", what, m.kind, m.name, cmd.Path, err)
	}
	rpc, err := client.Client()
	if err != nil {
		return fail("start", err)
	}
	raw, err := rpc.Dispense(m.kind)
	if err != nil {
		return fail("connect to", err)
	}
	c, ok := raw.(configurer)
	if !ok {
		return fail("connect to", fmt.Errorf("dispensed %T", raw))
	}
	inst := &instance{client: client, impl: raw}
	if rc := client.ReattachConfig(); rc != nil {
		inst.pid = rc.Pid
	}
	if err := c.Configure(ctx, config); err != nil {
		return fail("configure", err)
	}
	m.log.Info("plugin ready", "pid", inst.pid)
	return inst, nil
}

// logLevel is the level a plugin should log at: the host logger's.
func logLevel(l hclog.Logger) string {
	if lvl := l.GetLevel(); lvl != hclog.NoLevel {
		return lvl.String()
	}
	return hclog.Info.String()
}

// call runs f on the running plugin's client; when f fails because the
// plugin died, it starts the plugin again and runs f once more, and
// retried says so (the first try may have had its effect before the
// plugin died).
func (m *managed) call(ctx context.Context, f func(impl any) error) (retried bool, err error) {
	inst, err := m.get(ctx)
	if err != nil {
		return false, err
	}
	err = f(inst.impl)
	if err == nil || !m.died(ctx, inst, err) {
		return false, err
	}
	m.log.Warn("plugin died during a call; starting it again to retry", "pid", inst.pid, "error", err)
	m.drop(inst)
	again, startErr := m.get(ctx)
	if startErr != nil {
		return true, fmt.Errorf("%s plugin %s died (%w), and starting it again failed: %v", m.kind, m.name, err, startErr)
	}
	if err = f(again.impl); err != nil && m.died(ctx, again, err) {
		m.drop(again)
		return true, fmt.Errorf("%s plugin %s died twice in a row: %w", m.kind, m.name, err)
	}
	return true, err
}

// running returns the current instance without starting one.
func (m *managed) running() *instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.inst == nil || m.inst.client.Exited() {
		return nil
	}
	return m.inst
}

// died tells whether err came from inst's process being gone rather than
// from the plugin's answer.
func (m *managed) died(ctx context.Context, inst *instance, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	// A store's errors say whether the store itself answered: a store
	// whose database is down answers "unavailable" and is alive.
	var answered interface{ PluginAnswered() bool }
	if errors.As(err, &answered) && answered.PluginAnswered() {
		return inst.client.Exited()
	}
	return inst.client.Exited() || status.Code(err) == codes.Unavailable
}

// drop stops inst if it is still the current instance.
func (m *managed) drop(inst *instance) {
	m.lock <- struct{}{}
	defer func() { <-m.lock }()
	m.mu.Lock()
	current := m.inst == inst
	if current {
		m.inst = nil
	}
	m.mu.Unlock()
	if current {
		inst.client.Kill()
	}
}

// stop kills the running instance, if any, and waits for it to exit.
func (m *managed) stop() {
	m.lock <- struct{}{}
	defer func() { <-m.lock }()
	m.mu.Lock()
	inst := m.inst
	m.inst = nil
	m.mu.Unlock()
	if inst != nil {
		inst.client.Kill()
		m.log.Debug("plugin stopped", "pid", inst.pid)
	}
}

// setConfig keeps a new config for later starts.
func (m *managed) setConfig(config []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.config = config
}
