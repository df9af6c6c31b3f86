package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/launch"
	"github.com/saltpeter/saltpeter/sdk/target"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// Name is the plugin's name.
const Name = "local"

// Target is the local target. It is safe for concurrent use.
type Target struct {
	log hclog.Logger

	mu sync.Mutex
	// spare is the default wrapper started ahead of the next dispatch,
	// nil when none is; refilling, while one is to be started, is closed
	// once it is there (or could not be started). pending is what it is
	// to be started for while it waits for dispatching to pause, since
	// lastDispatch (see refill).
	spare        *spare
	refilling    chan struct{}
	pending      *pendingSpare
	lastDispatch time.Time
	quiet        time.Duration // spareQuiet but in tests
}

// New returns a local target that logs to log.
func New(log hclog.Logger) *Target {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Target{log: log, quiet: spareQuiet}
}

var _ target.Target = (*Target)(nil)

// Configure accepts an empty object only.
func (t *Target) Configure(_ context.Context, config []byte) error {
	if err := decodeEmpty(config); err != nil {
		return fmt.Errorf("local target config: %w", err)
	}
	return nil
}

// Resolve returns this machine's hostname.
func (t *Target) Resolve(_ context.Context, req target.ResolveRequest) ([]string, error) {
	if err := decodeEmpty(req.Args); err != nil {
		return nil, fmt.Errorf("job %s: local target block: %w", req.Job, err)
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("local target: hostname: %w", err)
	}
	return []string{host}, nil
}

// CheckArgs implements target.ArgsChecker: the local target takes no
// arguments.
func (t *Target) CheckArgs(_ context.Context, args []byte) error {
	if err := decodeEmpty(args); err != nil {
		return fmt.Errorf("local target block: %w", err)
	}
	return nil
}

var _ target.ArgsChecker = (*Target)(nil)

// decodeEmpty accepts nothing, null or an object without keys.
func decodeEmpty(b []byte) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	if len(m) > 0 {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return fmt.Errorf("unknown setting %s: the local target takes none", strings.Join(keys, ", "))
	}
	return nil
}

// Dispatch starts the wrapper on this machine.
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
	if err := decodeEmpty(req.Args); err != nil {
		return target.DispatchResult{}, fmt.Errorf("local target block: %w", err)
	}
	if host, err := os.Hostname(); err == nil && req.Machine != host {
		return target.DispatchResult{}, fmt.Errorf("the local target runs jobs on %s only, not on %q", host, req.Machine)
	}
	path, err := launch.WrapperPath(req.WrapperPath)
	if err != nil {
		return target.DispatchResult{}, err
	}
	env, err := launch.Environ(req.Env)
	if err != nil {
		return target.DispatchResult{}, err
	}
	log := t.log.With("job", req.Job, "run_id", req.RunID, "machine", req.Machine, "wrapper", path, "protocol", req.Protocol)
	if (req.Protocol == wire.ProtocolV2 || req.Protocol == 0) && req.WrapperPath == "" {
		// The default wrapper: a spare, started ahead, takes the
		// dispatch, and the next dispatch gets the next spare.
		shared := sharedEnv(req.Env)
		defer t.refill(path, shared)
		if s := t.takeSpare(path, shared); s != nil {
			res, err := s.dispatch(ctx, log, req.Env)
			if !errors.Is(err, errSpareGone) {
				return res, err
			}
			log.Warn("the spare wrapper was gone; starting one afresh", "error", err)
		}
	}
	// The wrapper is this process's child: it is started detached, and
	// runs its job in place (protocol 1 ignores Detached).
	return launch.Start(ctx, log, launch.Command{Path: path, Env: env, Protocol: req.Protocol, Detached: true,
		OneP: req.WrapperPath == ""})
}
