package target

import (
	"context"
	"errors"
)

// ErrUnreachable is a Dispatch error (wrap it) saying the machine itself
// could not be reached (no route, refused connection, wrong host key, a
// minion that does not answer): the core records the machine as error
// (255). Any other Dispatch error means the machine was reached but the
// wrapper did not start (missing, broken, refused): not_started (254).
// It crosses the plugin boundary: errors.Is finds it in what the core's
// client returns.
var ErrUnreachable = errors.New("machine unreachable")

// Target resolves a job's target block to machines and starts the wrapper
// on one of them. Implementations are safe for concurrent use: the core
// dispatches to many machines at once.
type Target interface {
	// Configure hands the plugin its plugin block's config (a JSON object,
	// "{}" when there is none). It is called once, before anything else,
	// and again after the plugin is restarted.
	Configure(ctx context.Context, config []byte) error
	// Resolve returns the machines a job's target block names.
	Resolve(ctx context.Context, req ResolveRequest) ([]string, error)
	// Dispatch starts the wrapper on one machine and returns once the
	// wrapper said it detached (or failed to). An error wrapping
	// ErrUnreachable says the machine could not be reached.
	Dispatch(ctx context.Context, req DispatchRequest) (DispatchResult, error)
}

// ArgsChecker is the optional ability of a target to check a job's target
// block without reaching any machine, so that a missing or wrong-typed
// argument is a diagnostic, with the block's file and line, when the
// configuration is loaded or reloaded (and, for built-in targets, by
// `saltpeter validate`) rather than an error at the first run. It must be
// quick and touch nothing outside the process, and its answer must depend
// on args alone: the core asks once for blocks that are the same JSON.
type ArgsChecker interface {
	CheckArgs(ctx context.Context, args []byte) error
}

// ErrCannotCheck is what the core's client answers CheckArgs with when the
// plugin's target is not an ArgsChecker: no objection, and no check.
var ErrCannotCheck = errors.New("the target plugin does not check target blocks")

// ResolveRequest asks which machines a job's target block names.
type ResolveRequest struct {
	Job string
	// Args is the job's target block as a JSON object.
	Args []byte
}

// DispatchRequest asks for the wrapper to be started on one machine.
type DispatchRequest struct {
	Job     string
	RunID   string
	Machine string
	Args    []byte
	// WrapperPath is the wrapper program to start; empty: the plugin's
	// default (for local, saltpeter-wrapper beside the core's binary or
	// on PATH).
	WrapperPath string
	// Protocol is the wrapper's protocol: 2 for ours, which prints
	// wire.DetachedLine once detached; 1 for an older wrapper, which the
	// plugin must detach itself and cannot wait for.
	Protocol int
	// Env is the whole dispatch environment (SP_*). It holds a secret
	// token: a plugin must never put it on a command line or in a log.
	Env map[string]string
}

// DispatchResult says what the plugin learnt while starting the wrapper.
type DispatchResult struct {
	// Detail is the wrapper's detach line or other note, for the log.
	Detail string
}
