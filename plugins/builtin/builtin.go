package builtin

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/plugins/email"
	execnotifier "github.com/saltpeter/saltpeter/plugins/exec"
	"github.com/saltpeter/saltpeter/plugins/local"
	"github.com/saltpeter/saltpeter/plugins/postgres"
	"github.com/saltpeter/saltpeter/plugins/salt"
	"github.com/saltpeter/saltpeter/plugins/slack"
	"github.com/saltpeter/saltpeter/plugins/sqlite"
	sshtarget "github.com/saltpeter/saltpeter/plugins/ssh"
	"github.com/saltpeter/saltpeter/plugins/webhook"
	"github.com/saltpeter/saltpeter/sdk"
	"github.com/saltpeter/saltpeter/sdk/notifier"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/target"
)

// targets are the built-in target plugins by name.
var targets = map[string]func(hclog.Logger) (target.Target, error){
	local.Name:     func(l hclog.Logger) (target.Target, error) { return local.New(l), nil },
	salt.Name:      func(l hclog.Logger) (target.Target, error) { return salt.New(l), nil },
	sshtarget.Name: func(l hclog.Logger) (target.Target, error) { return sshtarget.New(l), nil },
}

// stores are the built-in store plugins by name.
var stores = map[string]func(hclog.Logger) (store.Store, error){
	sqlite.Name:   func(l hclog.Logger) (store.Store, error) { return sqlite.NewPlugin(l), nil },
	postgres.Name: func(l hclog.Logger) (store.Store, error) { return postgres.NewPlugin(l), nil },
}

// notifiers are the built-in notifier plugins by name. The core starts
// one process of a notifier plugin per notifier block that uses it.
var notifiers = map[string]func(hclog.Logger) (notifier.Notifier, error){
	webhook.Name:      func(l hclog.Logger) (notifier.Notifier, error) { return webhook.New(l), nil },
	slack.Name:        func(l hclog.Logger) (notifier.Notifier, error) { return slack.New(l), nil },
	email.Name:        func(l hclog.Logger) (notifier.Notifier, error) { return email.New(l), nil },
	execnotifier.Name: func(l hclog.Logger) (notifier.Notifier, error) { return execnotifier.New(l), nil },
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
	case sdk.KindStore:
		for n := range stores {
			names = append(names, n)
		}
	case sdk.KindNotifier:
		for n := range notifiers {
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
	case sdk.KindStore:
		f, ok := stores[name]
		if !ok {
			return fmt.Errorf("no built-in %s plugin %q (built-in: %s)", kind, name, strings.Join(Names(kind), ", "))
		}
		sdk.Serve(name, sdk.WithStore(f))
		return nil
	case sdk.KindNotifier:
		f, ok := notifiers[name]
		if !ok {
			return fmt.Errorf("no built-in %s plugin %q (built-in: %s)", kind, name, strings.Join(Names(kind), ", "))
		}
		sdk.Serve(name, sdk.WithNotifier(f))
		return nil
	}
	return fmt.Errorf("no built-in plugins of kind %q", kind)
}

// CheckTargetArgs checks a job's target block for the built-in target
// name in this process, without starting the plugin or reaching any
// machine: what `saltpeter validate` and a configuration load can tell
// before a run. It returns nil for a target that cannot check, and an
// error for an unknown target.
func CheckTargetArgs(ctx context.Context, name string, args []byte) error {
	f, ok := targets[name]
	if !ok {
		return fmt.Errorf("no built-in target plugin %q (built-in: %s)", name, strings.Join(Names(sdk.KindTarget), ", "))
	}
	t, err := f(hclog.NewNullLogger())
	if err != nil {
		return err
	}
	if c, ok := t.(target.ArgsChecker); ok {
		return c.CheckArgs(ctx, args)
	}
	return nil
}
