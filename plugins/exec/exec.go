package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/notifier"
)

// Name is the plugin's name.
const Name = "exec"

// DefaultTimeout bounds one run of the program when the config sets none.
const DefaultTimeout = 30 * time.Second

// ExitTempFail is sysexits.h's EX_TEMPFAIL: "try again later". It is
// retried like any exit code not in permanent_exit_codes, and may not be
// listed there.
const ExitTempFail = 75

// excerptBytes is how much of the end of the program's standard error an
// error quotes, and of its standard output the log gets.
const excerptBytes = 2048

// waitDelay bounds the wait for the program's pipes once its process
// group was killed: a grandchild that left the group may hold them open.
const waitDelay = 2 * time.Second

// hiddenEnv are the plugin's own variables that the program must not
// see: go-plugin's, and the core's cookie (with it, a Saltpeter plugin
// run as the command would think a core started it).
var hiddenEnv = []string{"SALTPETER_PLUGIN", "SALTPETER_PLUGIN_LOG_LEVEL", "PLUGIN_MIN_PORT", "PLUGIN_MAX_PORT", "PLUGIN_PROTOCOL_VERSIONS", "PLUGIN_CLIENT_CERT", "PLUGIN_UNIX_SOCKET_DIR", "PLUGIN_UNIX_SOCKET_GROUP"}

// Notifier is the exec notifier. It is safe for concurrent use: each
// Notify runs its own process.
type Notifier struct {
	log  hclog.Logger
	conf atomic.Pointer[config]
}

// New returns an exec notifier that logs to log.
func New(log hclog.Logger) *Notifier {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Notifier{log: log}
}

var _ notifier.Notifier = (*Notifier)(nil)

type fileConfig struct {
	Command            []string          `json:"command"`
	Env                map[string]string `json:"env"`
	Timeout            string            `json:"timeout"`
	PermanentExitCodes []int             `json:"permanent_exit_codes"`
}

type config struct {
	path      string
	args      []string
	env       []string
	timeout   time.Duration
	permanent []int
}

// Configure implements notifier.Notifier.
func (n *Notifier) Configure(_ context.Context, raw []byte) error {
	c, err := parseConfig(raw)
	if err != nil {
		return fmt.Errorf("exec notifier config: %w", err)
	}
	n.conf.Store(c)
	n.log.Debug("exec configured", "path", c.path, "timeout_ms", c.timeout.Milliseconds())
	return nil
}

func parseConfig(raw []byte) (*config, error) {
	var fc fileConfig
	if err := notifier.DecodeConfig(raw, &fc); err != nil {
		return nil, err
	}
	var errs []error
	c := &config{timeout: DefaultTimeout}
	if len(fc.Command) == 0 || fc.Command[0] == "" {
		errs = append(errs, errors.New(`command is required: the program and its arguments, such as ["/usr/local/bin/page-oncall", "--team", "ops"]`))
	} else {
		path, err := osexec.LookPath(fc.Command[0])
		if err != nil {
			errs = append(errs, fmt.Errorf("command: %w", err))
		}
		c.path, c.args = path, fc.Command[1:]
	}
	for k, v := range fc.Env {
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00"):
			errs = append(errs, fmt.Errorf("env: %q is not a variable name", k))
		case strings.Contains(v, "\x00"):
			errs = append(errs, fmt.Errorf("env: %s holds a NUL byte", k))
		case slices.Contains(hiddenEnv, k):
			errs = append(errs, fmt.Errorf("env: %s is the core's", k))
		default:
			c.env = append(c.env, k+"="+v)
		}
	}
	slices.Sort(c.env)
	if fc.Timeout != "" {
		d, err := time.ParseDuration(fc.Timeout)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("timeout: %w", err))
		case d <= 0:
			errs = append(errs, fmt.Errorf("timeout %q: want a positive duration", fc.Timeout))
		default:
			c.timeout = d
		}
	}
	for _, code := range fc.PermanentExitCodes {
		switch {
		case code <= 0 || code > 255:
			errs = append(errs, fmt.Errorf("permanent_exit_codes: %d is not a failing exit code (1 to 255)", code))
		case code == ExitTempFail:
			errs = append(errs, fmt.Errorf("permanent_exit_codes: %d is EX_TEMPFAIL, which says to try again", code))
		default:
			c.permanent = append(c.permanent, code)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// Notify implements notifier.Notifier: one run of the program.
func (n *Notifier) Notify(ctx context.Context, ev notifier.Event) error {
	c := n.conf.Load()
	if c == nil {
		return errors.New("exec notifier: not configured")
	}
	if err := n.run(ctx, c, ev); err != nil {
		return fmt.Errorf("exec %s for %s (attempt %d): %w", c.path, ev.ID, ev.Attempt, err)
	}
	return nil
}

func (n *Notifier) run(ctx context.Context, c *config, ev notifier.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	input, err := json.Marshal(ev)
	if err != nil {
		return notifier.Permanent(fmt.Errorf("encode event: %w", err))
	}
	runCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	cmd := osexec.CommandContext(runCtx, c.path, c.args...)
	cmd.Env = environ(c, ev)
	// A group of its own, so that the kill reaches what it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	stdout, stderr := &tail{max: excerptBytes}, &tail{max: excerptBytes}
	streams, err := attach(cmd, input, stdout, stderr)
	if err != nil {
		return err
	}

	start := time.Now()
	if err := cmd.Start(); err != nil {
		streams.close()
		return fmt.Errorf("start: %w", err)
	}
	streams.started()
	err = cmd.Wait()
	// Whatever the program left running in its group goes with it, and
	// lets go of the pipes.
	_ = killGroup(cmd.Process.Pid)
	streams.finish(waitDelay)
	n.log.Debug("notification program ended", "event_id", ev.ID, "pid", cmd.Process.Pid,
		"duration_ms", time.Since(start).Milliseconds(), "error", err, "stdout", stdout.String())

	switch {
	case err == nil:
		// Delivered, even if the context ended meanwhile.
		return nil
	case ctx.Err() != nil:
		// The core's own cancellation or deadline, not the program's.
		return fmt.Errorf("killed: %w", ctx.Err())
	case runCtx.Err() != nil:
		return fmt.Errorf("timed out after %s; its process group was killed%s", c.timeout, quote(stderr))
	}
	var exit *osexec.ExitError
	if !errors.As(err, &exit) {
		return fmt.Errorf("wait: %w%s", err, quote(stderr))
	}
	code := exit.ExitCode()
	if code < 0 {
		return fmt.Errorf("%s%s", exit, quote(stderr)) // "signal: killed"
	}
	err = fmt.Errorf("exit code %d%s", code, quote(stderr))
	if slices.Contains(c.permanent, code) {
		return notifier.Permanent(err)
	}
	return err
}

// pipes are the program's standard streams. They are *os.File on the
// program's side, so that exec.Cmd.Wait returns when the program exits,
// not when the last process holding a pipe lets go of it: the notifier
// reads them itself, and stops at finish.
type pipes struct {
	child   []*os.File // the program's ends, closed here once it started
	parent  []*os.File // ours
	copiers sync.WaitGroup
}

// attach gives cmd pipes for its standard streams: input is written to
// its standard input, its output and error go to the tails.
func attach(cmd *osexec.Cmd, input []byte, stdout, stderr io.Writer) (*pipes, error) {
	p := &pipes{}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	p.child, p.parent = append(p.child, inR), append(p.parent, inW)
	cmd.Stdin = inR
	p.copiers.Go(func() {
		_, _ = inW.Write(input) // a program that reads none gets EPIPE
		_ = inW.Close()
	})
	for _, dst := range []io.Writer{stdout, stderr} {
		r, w, err := os.Pipe()
		if err != nil {
			p.close()
			return nil, fmt.Errorf("pipe: %w", err)
		}
		p.child, p.parent = append(p.child, w), append(p.parent, r)
		p.copiers.Go(func() { _, _ = io.Copy(dst, r) })
	}
	cmd.Stdout, cmd.Stderr = p.child[1], p.child[2]
	return p, nil
}

// started closes the program's ends in this process: the pipes then end
// when the program's processes are gone.
func (p *pipes) started() {
	for _, f := range p.child {
		_ = f.Close()
	}
}

// finish waits up to d for the copies to end, then cuts them off.
func (p *pipes) finish(d time.Duration) {
	done := make(chan struct{})
	go func() {
		p.copiers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
	p.close()
	<-done
}

func (p *pipes) close() {
	for _, f := range append(p.child, p.parent...) {
		_ = f.Close()
	}
}

// environ is the program's environment: the plugin's, less the core's
// variables, with the config's env and the event's variables over it.
func environ(c *config, ev notifier.Event) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(hiddenEnv, k) {
			env = append(env, kv)
		}
	}
	env = append(env, c.env...)
	return append(env,
		"SALTPETER_EVENT_ID="+ev.ID,
		"SALTPETER_EVENT_KIND="+string(ev.Kind),
		"SALTPETER_JOB="+ev.Job,
		"SALTPETER_RUN_ID="+ev.RunID,
	)
}

// killGroup kills the process group led by pid; one already gone is no
// error.
func killGroup(pid int) error {
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// quote renders the end of the program's standard error for an error.
func quote(t *tail) string {
	s := strings.TrimSpace(t.String())
	if s == "" {
		return ""
	}
	return "; stderr: " + s
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu   sync.Mutex
	max  int
	buf  []byte
	lost bool
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.lost = true
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(bytes.ToValidUTF8(t.buf, []byte("?")))
	if t.lost {
		s = "…" + s
	}
	return s
}
