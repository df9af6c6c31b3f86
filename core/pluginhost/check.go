package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/hashicorp/hcl/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/plugins/builtin"
	"github.com/saltpeter/saltpeter/sdk"
	"github.com/saltpeter/saltpeter/sdk/target"
)

// CheckBuiltinTargets checks every job's target block whose target is a
// built-in plugin, in this process (see builtin.CheckTargetArgs): a
// missing or wrong-typed argument is a diagnostic at the block, for
// `saltpeter validate` and for every load of the configuration. A target
// configured with a path (a third party's) is checked by its running
// plugin instead (Host.CheckTargets).
func CheckBuiltinTargets(ctx context.Context, conf *config.Config) hcl.Diagnostics {
	builtins := builtin.Names(sdk.KindTarget)
	var diags hcl.Diagnostics
	for _, j := range conf.Jobs {
		name := j.Target.Plugin
		if third(conf, name) || !slices.Contains(builtins, name) {
			continue
		}
		if err := builtin.CheckTargetArgs(ctx, name, j.Target.Args); err != nil {
			diags = append(diags, targetDiag(j, err))
		}
	}
	return diags
}

// third reports whether target name is configured with a program of its
// own.
func third(conf *config.Config, name string) bool {
	for _, p := range conf.Plugins {
		if p.Kind == config.KindTarget && p.Name == name && p.Path != "" {
			return true
		}
	}
	return false
}

// CheckTargets checks every job's target block whose target is a third
// party's (configured with a path) with that plugin, started and
// configured: what `saltpeter validate` cannot know without running it.
// A plugin that cannot start or refuses its configuration is a
// diagnostic at the first job that uses it; one that does not check
// blocks (target.ErrCannotCheck) passes. Built-in targets are checked in
// this process by CheckBuiltinTargets. Plugins no job uses stay stopped.
//
// A plugin is asked once for blocks that are the same JSON
// (target.ArgsChecker depends on nothing else): a fleet's jobs mostly
// share a handful of blocks, and a reload of thousands of jobs on a busy
// core must not be thousands of calls in a row. A plugin that does not
// answer (ctx ends, or its process is gone) is one diagnostic, at the
// block it was asked about, not one for every block after it.
func (h *Host) CheckTargets(ctx context.Context, conf *config.Config) hcl.Diagnostics {
	var diags hcl.Diagnostics
	checkers := map[string]target.ArgsChecker{}
	broken := map[string]bool{}
	checked := map[[2]string]error{} // plugin and block → the plugin's answer
	for _, j := range conf.Jobs {
		name := j.Target.Plugin
		if !third(conf, name) || broken[name] {
			continue
		}
		c, ok := checkers[name]
		if !ok {
			t, err := h.Target(ctx, name)
			if err != nil {
				broken[name] = true
				diags = append(diags, targetDiag(j, fmt.Errorf("its target plugin cannot check the block: %w", err)))
				continue
			}
			if c, ok = t.(target.ArgsChecker); !ok {
				broken[name] = true
				continue
			}
			checkers[name] = c
		}
		key := [2]string{name, string(j.Target.Args)}
		err, ok := checked[key]
		if !ok {
			err = c.CheckArgs(ctx, j.Target.Args)
			if noAnswer(ctx, err) {
				broken[name] = true
				diags = append(diags, targetDiag(j, fmt.Errorf("its target plugin did not answer the check, and its blocks from here on were not checked: %w", err)))
				continue
			}
			checked[key] = err
		}
		switch {
		case errors.Is(err, target.ErrCannotCheck):
			broken[name] = true // it will not check the next block either
		case err != nil:
			diags = append(diags, targetDiag(j, err))
		}
	}
	return diags
}

// noAnswer reports whether err is the plugin not answering rather than
// its answer: the load's deadline, which the plugin's side may see a
// moment before the core's, or the plugin gone.
func noAnswer(ctx context.Context, err error) bool {
	return err != nil && (ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) || status.Code(err) == codes.Unavailable)
}

func targetDiag(j *config.Job, err error) *hcl.Diagnostic {
	r := j.Target.Range
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid target block",
		Detail: fmt.Sprintf("job %q: %v.", j.Name, err), Subject: &r}
}
