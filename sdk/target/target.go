package target

import "context"

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
	// wrapper said it detached (or failed to).
	Dispatch(ctx context.Context, req DispatchRequest) (DispatchResult, error)
}

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
