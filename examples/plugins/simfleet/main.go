// Command simfleet is an example third-party target plugin: it pretends
// every machine a job names is real, and runs one wrapper per machine on
// this host. It shows a whole plugin built on the SDK alone, and lets a
// laptop try fleet behaviour (many machines per run, killing them all)
// without a fleet.
//
//	plugin "target" "simfleet" {
//	  path   = "/usr/local/bin/simfleet"
//	  config { wrapper = "/usr/local/bin/saltpeter-wrapper" }
//	}
//	job "demo" {
//	  target "simfleet" { machines = ["web1", "web2", "web3"] }
//	  ...
//	}
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk"
	"github.com/saltpeter/saltpeter/sdk/launch"
	"github.com/saltpeter/saltpeter/sdk/target"
)

type fleet struct {
	log     hclog.Logger
	wrapper string
}

func (f *fleet) Configure(_ context.Context, config []byte) error {
	var c struct {
		Wrapper string `json:"wrapper"`
	}
	dec := json.NewDecoder(strings.NewReader(string(config)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return fmt.Errorf("simfleet config: %w", err)
	}
	if c.Wrapper == "" {
		return errors.New("simfleet config: wrapper (the saltpeter-wrapper path) is required")
	}
	f.wrapper = c.Wrapper
	return nil
}

func (f *fleet) Resolve(_ context.Context, req target.ResolveRequest) ([]string, error) {
	machines, err := decodeArgs(req.Args)
	if err != nil {
		return nil, fmt.Errorf("simfleet arguments of %s: %w", req.Job, err)
	}
	return machines, nil
}

// CheckArgs implements target.ArgsChecker, so that a mistake in a job's
// target block is reported when the core loads its configuration.
func (f *fleet) CheckArgs(_ context.Context, args []byte) error {
	_, err := decodeArgs(args)
	return err
}

// decodeArgs reads a target block: machines, a non-empty list of names.
func decodeArgs(b []byte) ([]string, error) {
	var args struct {
		Machines []string `json:"machines"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&args); err != nil {
		return nil, fmt.Errorf("the block takes machines = [\"name\", ...]: %w", err)
	}
	if len(args.Machines) == 0 {
		return nil, errors.New("machines names no machine")
	}
	return args.Machines, nil
}

// Dispatch starts the wrapper here under the machine's name; the SDK's
// launch package does what every local start needs (exact environment, no
// leaked descriptors, waiting for the detach line).
func (f *fleet) Dispatch(ctx context.Context, req target.DispatchRequest) (target.DispatchResult, error) {
	path := req.WrapperPath
	if path == "" {
		path = f.wrapper
	}
	env, err := launch.Environ(req.Env)
	if err != nil {
		return target.DispatchResult{}, err
	}
	log := f.log.With("run_id", req.RunID, "machine", req.Machine)
	res, err := launch.Start(ctx, log, launch.Command{Path: path, Env: env, Protocol: req.Protocol})
	if err != nil {
		return res, fmt.Errorf("dispatch %s to %s: %w", req.RunID, req.Machine, err)
	}
	return res, nil
}

func main() {
	sdk.Serve("simfleet", sdk.WithTarget(func(log hclog.Logger) (target.Target, error) {
		return &fleet{log: log}, nil
	}))
}
