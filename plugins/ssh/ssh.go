package sshtarget

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/ssh"

	"github.com/saltpeter/saltpeter/sdk/launch"
	"github.com/saltpeter/saltpeter/sdk/target"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// Name is the plugin's name.
const Name = "ssh"

const (
	// maxStderr bounds the excerpt of the remote stderr in an error.
	maxStderr = 2048
	// lineGrace is how long the session's output is still awaited once
	// the remote command exited, and how long a wrapper that detached
	// or was killed gets to report its exit.
	lineGrace = 2 * time.Second
)

// Target is the ssh target. It is safe for concurrent use.
type Target struct {
	log hclog.Logger
	// wrapperDir holds the wrappers deploy_wrapper copies ("": beside
	// this executable).
	wrapperDir string

	sums *localSums

	mu   sync.RWMutex
	cfg  *settings
	pool *pool
}

// New returns an ssh target that logs to log. It needs Configure before
// anything else.
func New(log hclog.Logger) *Target {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Target{log: log, sums: &localSums{}}
}

var _ target.Target = (*Target)(nil)

// Configure takes the plugin block's config (see the package doc). A new
// config closes the connections made with the old one.
func (t *Target) Configure(_ context.Context, config []byte) error {
	s, err := parseConfig(config)
	if err != nil {
		return fmt.Errorf("ssh target config: %w", err)
	}
	p := newPool(t.log, s.dial)
	t.mu.Lock()
	old := t.pool
	t.cfg, t.pool = s, p
	t.mu.Unlock()
	if old != nil {
		old.close()
	}
	t.log.Debug("configured", "user", s.user, "key_file", s.keyFile, "known_hosts", s.knownHosts,
		"deploy_wrapper", s.deploy, "port", s.port)
	return nil
}

// Close closes the pooled connections. Dispatches after it fail.
func (t *Target) Close() error {
	t.mu.RLock()
	p := t.pool
	t.mu.RUnlock()
	if p != nil {
		p.close()
	}
	return nil
}

func (t *Target) current() (*settings, *pool, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.cfg == nil {
		return nil, nil, errors.New("the ssh target is not configured")
	}
	return t.cfg, t.pool, nil
}

// Resolve returns the hosts of the job's target block, as written.
func (t *Target) Resolve(_ context.Context, req target.ResolveRequest) ([]string, error) {
	hosts, err := parseHosts(req.Args)
	if err != nil {
		return nil, fmt.Errorf("job %s: ssh target block: %w", req.Job, err)
	}
	return hosts, nil
}

// CheckArgs implements target.ArgsChecker: the block's hosts, checked
// without dialling any.
func (t *Target) CheckArgs(_ context.Context, args []byte) error {
	if _, err := parseHosts(args); err != nil {
		return fmt.Errorf("ssh target block: %w", err)
	}
	return nil
}

var _ target.ArgsChecker = (*Target)(nil)

// Dispatch starts the wrapper on req.Machine over SSH.
func (t *Target) Dispatch(ctx context.Context, req target.DispatchRequest) (target.DispatchResult, error) {
	res, err := t.dispatch(ctx, req)
	if err != nil {
		return res, fmt.Errorf("dispatch %s to %s: %w", req.RunID, req.Machine, err)
	}
	return res, nil
}

func (t *Target) dispatch(ctx context.Context, req target.DispatchRequest) (target.DispatchResult, error) {
	if err := ctx.Err(); err != nil {
		return target.DispatchResult{}, err
	}
	s, p, err := t.current()
	if err != nil {
		return target.DispatchResult{}, err
	}
	addr, err := hostAddr(req.Machine, s.port)
	if err != nil {
		return target.DispatchResult{}, err
	}
	wrapper := req.WrapperPath
	if wrapper == "" {
		wrapper = defaultWrapper
	}
	if err := checkWrapperPath(wrapper); err != nil {
		return target.DispatchResult{}, err
	}
	log := t.log.With("job", req.Job, "run_id", req.RunID, "machine", req.Machine, "wrapper", wrapper, "protocol", req.Protocol)

	var command string
	var stdin []byte
	switch req.Protocol {
	case wire.ProtocolV2, 0:
		command = v2Command(wrapper)
		stdin, err = launch.EnvRecords(req.Env)
	case wire.ProtocolV1:
		command = v1Command
		stdin, err = v1Script(wrapper, req.Env)
	default:
		err = fmt.Errorf("unsupported wrapper protocol %d", req.Protocol)
	}
	if err != nil {
		return target.DispatchResult{}, err
	}

	h, err := p.host(addr)
	if err != nil {
		return target.DispatchResult{}, err
	}
	if s.deploy && req.Protocol != wire.ProtocolV1 {
		// The deployed wrapper is ours: a protocol 1 one is not.
		if wrapper, err = t.deploy(ctx, log, p, h, req.Machine, wrapper); err != nil {
			return target.DispatchResult{}, err
		}
		command = v2Command(wrapper)
	}
	c, sess, release, err := t.open(ctx, p, h, req.Machine)
	if err != nil {
		return target.DispatchResult{}, err
	}
	defer release()
	r := &remote{log: log, conn: c, sess: sess, wrapper: wrapper, token: req.Env[wire.EnvToken]}
	if req.Protocol == wire.ProtocolV1 {
		r.want, r.protocol1 = v1Started, true
	} else {
		r.want = wire.DetachedLine
	}
	return r.start(ctx, command, stdin)
}

// open opens a session to h, on its pooled connection or, when that one
// turns out broken, on a new one.
func (t *Target) open(ctx context.Context, p *pool, h *host, machine string) (*conn, *ssh.Session, func(), error) {
	for attempt := 1; ; attempt++ {
		c, fresh, err := p.get(ctx, h, machine)
		if err != nil {
			return nil, nil, nil, err
		}
		sess, release, err := p.session(ctx, h, c)
		if err == nil {
			return c, sess, release, nil
		}
		if ctx.Err() != nil {
			return nil, nil, nil, ctx.Err()
		}
		var refused *ssh.OpenChannelError
		if errors.As(err, &refused) {
			// sshd answered, and said no (its MaxSessions, say): the
			// connection is fine, and shared.
			return nil, nil, nil, fmt.Errorf("ssh %s: open a session: %w", h.addr, err)
		}
		// The connection failed under us: close it so that get dials
		// again, unless it was new already.
		_ = c.client.Close()
		<-c.done
		if fresh || attempt == 3 {
			return nil, nil, nil, fmt.Errorf("%w: ssh %s: open a session: %w", target.ErrUnreachable, h.addr, err)
		}
		t.log.Debug("pooled connection failed; dialling again", "addr", h.addr, "error", err)
	}
}
