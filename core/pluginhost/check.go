package pluginhost

import (
	"context"
	"fmt"
	"slices"

	"github.com/hashicorp/hcl/v2"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/plugins/builtin"
	"github.com/saltpeter/saltpeter/sdk"
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

func targetDiag(j *config.Job, err error) *hcl.Diagnostic {
	r := j.Target.Range
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid target block",
		Detail: fmt.Sprintf("job %q: %v.", j.Name, err), Subject: &r}
}
