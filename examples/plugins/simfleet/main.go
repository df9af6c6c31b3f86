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
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk"
	"github.com/saltpeter/saltpeter/sdk/target"
	"github.com/saltpeter/saltpeter/sdk/wire"
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
	var args struct {
		Machines []string `json:"machines"`
	}
	if err := json.Unmarshal(req.Args, &args); err != nil {
		return nil, fmt.Errorf("simfleet arguments of %s: %w", req.Job, err)
	}
	return args.Machines, nil
}

// Dispatch starts the wrapper with the dispatch environment (never on its
// command line: it holds a token) and waits for it to say it detached.
func (f *fleet) Dispatch(ctx context.Context, req target.DispatchRequest) (target.DispatchResult, error) {
	path := req.WrapperPath
	if path == "" {
		path = f.wrapper
	}
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range req.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return target.DispatchResult{}, fmt.Errorf("stdout of %s: %w", path, err)
	}
	if err := cmd.Start(); err != nil {
		return target.DispatchResult{}, fmt.Errorf("start %s for %s: %w", path, req.Machine, err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	werr := cmd.Wait()
	if !strings.HasPrefix(line, wire.DetachedLine) {
		return target.DispatchResult{}, fmt.Errorf("wrapper for %s did not detach (%v): %q", req.Machine, werr, line)
	}
	f.log.Info("wrapper started", "run_id", req.RunID, "machine", req.Machine)
	return target.DispatchResult{Detail: strings.TrimSpace(line)}, nil
}

func main() {
	sdk.Serve("simfleet", sdk.WithTarget(func(log hclog.Logger) (target.Target, error) {
		return &fleet{log: log}, nil
	}))
}
