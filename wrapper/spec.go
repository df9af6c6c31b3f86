package wrapper

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/saltpeter/saltpeter/sdk/wire"
	"github.com/saltpeter/saltpeter/wrapper/proc"
)

// Defaults where the spec leaves a field empty (wire-protocol.md).
const (
	defaultHeartbeat  = 5 * time.Second
	defaultKillSignal = "SIGTERM"
	defaultGrace      = 5 * time.Second
)

// killPolicy is a parsed kill block.
type killPolicy struct {
	signal syscall.Signal
	name   string // canonical, for killed frames and notes
	grace  time.Duration
}

// jobSpec is wire.Spec parsed: durations and signals checked once, before
// the job starts.
type jobSpec struct {
	opts         proc.Options
	timeout      time.Duration // 0: none
	noOutput     time.Duration // 0: none
	timeoutText  string        // as the job gave them, for the notes
	noOutputText string
	kill         killPolicy
	heartbeat    time.Duration
	keepChildren bool
}

// parseSpec checks the spec from the connect ack; env is the wrapper's own
// environment, the base of the job's.
func parseSpec(s *wire.Spec, env []string) (jobSpec, error) {
	if s == nil {
		return jobSpec{}, errors.New("connect ack carries no spec")
	}
	if s.Command == "" {
		return jobSpec{}, errors.New("spec has no command")
	}
	js := jobSpec{
		opts: proc.Options{
			Command: s.Command,
			Cwd:     s.Cwd,
			User:    s.User,
			Env:     jobEnv(env, s.Env),
		},
		keepChildren: s.KeepChildren,
		timeoutText:  s.Timeout,
		noOutputText: s.NoOutputTimeout,
	}
	var errs []error
	opt := func(field, v string, def time.Duration) time.Duration {
		if v == "" {
			return def
		}
		d, err := wire.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("spec %s: %w", field, err))
		}
		return d
	}
	js.timeout = opt("timeout", s.Timeout, 0)
	js.noOutput = opt("no_output_timeout", s.NoOutputTimeout, 0)
	js.heartbeat = opt("heartbeat", s.Heartbeat, defaultHeartbeat)
	if js.heartbeat <= 0 {
		js.heartbeat = defaultHeartbeat
	}
	kp, err := defaultKillPolicy().override(s.Kill.Signal, s.Kill.Grace)
	if err != nil {
		errs = append(errs, fmt.Errorf("spec kill: %w", err))
	}
	js.kill = kp
	if err := errors.Join(errs...); err != nil {
		return jobSpec{}, err
	}
	return js, nil
}

func defaultKillPolicy() killPolicy {
	return killPolicy{signal: syscall.SIGTERM, name: defaultKillSignal, grace: defaultGrace}
}

// override returns p with signal and grace replaced where they are set: the
// job's kill block over the defaults, a kill command over the job's.
func (p killPolicy) override(signal, grace string) (killPolicy, error) {
	if signal != "" {
		sig, name, err := parseSignal(signal)
		if err != nil {
			return p, err
		}
		p.signal, p.name = sig, name
	}
	if grace != "" {
		d, err := wire.ParseDuration(grace)
		if err != nil {
			return p, fmt.Errorf("grace: %w", err)
		}
		p.grace = d
	}
	return p, nil
}

// parseSignal maps a signal name to its number and canonical spelling.
func parseSignal(name string) (syscall.Signal, string, error) {
	n, ok := wire.SignalNumber(name)
	if !ok {
		return 0, "", fmt.Errorf("unknown signal %q", name)
	}
	return syscall.Signal(n), wire.SignalName(n), nil
}
