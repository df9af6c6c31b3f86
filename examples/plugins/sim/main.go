package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk"
	"github.com/saltpeter/saltpeter/sdk/target"
)

// maxMachines bounds a target block's machines: a typo should not make a
// run of a billion machines.
const maxMachines = 1_000_000

type sim struct {
	log hclog.Logger

	mu sync.Mutex
	lg *loadgen // nil until configured
}

func (s *sim) Configure(_ context.Context, config []byte) error {
	var c struct {
		Loadgen string `json:"loadgen"`
	}
	dec := json.NewDecoder(bytes.NewReader(config))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return fmt.Errorf("sim config: %w", err)
	}
	network, addr, err := splitAddr(c.Loadgen)
	if err != nil {
		return fmt.Errorf("sim config: loadgen: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lg != nil {
		s.lg.close()
	}
	// Dialled at the first dispatch: the load generator may start after
	// the core.
	s.lg = newLoadgen(network, addr, s.log)
	return nil
}

// splitAddr reads "unix:/path", "tcp:host:port" or "host:port".
func splitAddr(a string) (network, addr string, err error) {
	switch {
	case a == "":
		return "", "", errors.New(`required: "unix:/path/to/socket" or "host:port"`)
	case strings.HasPrefix(a, "unix:"):
		if a == "unix:" {
			return "", "", errors.New("unix: names no socket path")
		}
		return "unix", strings.TrimPrefix(a, "unix:"), nil
	case strings.HasPrefix(a, "tcp:"):
		a = strings.TrimPrefix(a, "tcp:")
	}
	if !strings.Contains(a, ":") {
		return "", "", fmt.Errorf("%q is neither unix:/path nor host:port", a)
	}
	return "tcp", a, nil
}

func (s *sim) Resolve(_ context.Context, req target.ResolveRequest) ([]string, error) {
	machines, err := decodeArgs(req.Args)
	if err != nil {
		return nil, fmt.Errorf("sim arguments of %s: %w", req.Job, err)
	}
	return machines, nil
}

// CheckArgs implements target.ArgsChecker, so that a mistake in a job's
// target block is reported when the core loads its configuration.
func (s *sim) CheckArgs(_ context.Context, args []byte) error {
	_, err := decodeArgs(args)
	return err
}

// decodeArgs reads a target block: machines = N (named sim-00001 …)
// and/or names = [...], at least one machine, no name twice.
func decodeArgs(b []byte) ([]string, error) {
	var args struct {
		Machines int      `json:"machines"`
		Names    []string `json:"names"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&args); err != nil {
		return nil, fmt.Errorf("the block takes machines = N and/or names = [\"name\", ...]: %w", err)
	}
	if args.Machines < 0 || args.Machines > maxMachines {
		return nil, fmt.Errorf("machines = %d: want 0 to %d", args.Machines, maxMachines)
	}
	out := make([]string, 0, args.Machines+len(args.Names))
	for i := 1; i <= args.Machines; i++ {
		out = append(out, fmt.Sprintf("sim-%05d", i))
	}
	seen := make(map[string]bool, len(out)+len(args.Names))
	for _, m := range out {
		seen[m] = true
	}
	for _, n := range args.Names {
		if n == "" {
			return nil, errors.New("names holds an empty name")
		}
		if seen[n] {
			return nil, fmt.Errorf("machine %q named twice", n)
		}
		seen[n] = true
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("the block names no machine: set machines = N or names = [...]")
	}
	return out, nil
}

// Dispatch hands the dispatch to the load generator and returns its
// answer: its detail, or its refusal as the error.
func (s *sim) Dispatch(ctx context.Context, req target.DispatchRequest) (target.DispatchResult, error) {
	s.mu.Lock()
	lg := s.lg
	s.mu.Unlock()
	if lg == nil {
		return target.DispatchResult{}, errors.New("sim: dispatch before Configure")
	}
	detail, err := lg.dispatch(ctx, req)
	if err != nil {
		return target.DispatchResult{}, fmt.Errorf("dispatch %s to %s: %w", req.RunID, req.Machine, err)
	}
	return target.DispatchResult{Detail: detail}, nil
}

func main() {
	sdk.Serve("sim", sdk.WithTarget(func(log hclog.Logger) (target.Target, error) {
		return &sim{log: log}, nil
	}))
}
