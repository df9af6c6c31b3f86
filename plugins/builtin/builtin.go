package builtin

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/plugins/local"
	"github.com/saltpeter/saltpeter/sdk"
	"github.com/saltpeter/saltpeter/sdk/target"
)

// targets are the built-in target plugins by name.
var targets = map[string]func(hclog.Logger) (target.Target, error){
	local.Name: func(l hclog.Logger) (target.Target, error) { return local.New(l), nil },
}

// Names returns the built-in plugins of kind, sorted; none for a kind
// without built-ins.
func Names(kind string) []string {
	var names []string
	switch kind {
	case sdk.KindTarget:
		for n := range targets {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Serve serves the built-in plugin kind/name until the core stops it (see
// sdk.Serve). It returns an error, without serving, when there is no such
// plugin.
func Serve(kind, name string) error {
	switch kind {
	case sdk.KindTarget:
		f, ok := targets[name]
		if !ok {
			return fmt.Errorf("no built-in %s plugin %q (built-in: %s)", kind, name, strings.Join(Names(kind), ", "))
		}
		sdk.Serve(name, sdk.WithTarget(f))
		return nil
	}
	return fmt.Errorf("no built-in plugins of kind %q", kind)
}
