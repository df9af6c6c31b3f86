package pluginhost

import (
	"context"

	"github.com/saltpeter/saltpeter/sdk/target"
)

// hostedTarget is a target plugin as the core sees it: each call goes to
// the plugin's current process, restarted when it died.
type hostedTarget struct {
	m *managed
}

var _ target.Target = (*hostedTarget)(nil)

// Configure reconfigures the plugin; the config is kept for restarts once
// the plugin accepted it.
func (t *hostedTarget) Configure(ctx context.Context, config []byte) error {
	_, err := t.m.call(ctx, func(impl any) error { return impl.(target.Target).Configure(ctx, config) })
	if err == nil {
		t.m.setConfig(config)
	}
	return err
}

// Resolve implements target.Target.
func (t *hostedTarget) Resolve(ctx context.Context, req target.ResolveRequest) ([]string, error) {
	var machines []string
	_, err := t.m.call(ctx, func(impl any) error {
		var err error
		machines, err = impl.(target.Target).Resolve(ctx, req)
		return err
	})
	return machines, err
}

// Dispatch implements target.Target.
func (t *hostedTarget) Dispatch(ctx context.Context, req target.DispatchRequest) (target.DispatchResult, error) {
	var res target.DispatchResult
	_, err := t.m.call(ctx, func(impl any) error {
		var err error
		res, err = impl.(target.Target).Dispatch(ctx, req)
		return err
	})
	return res, err
}

// CheckArgs implements target.ArgsChecker: the plugin's own check of a
// target block, or target.ErrCannotCheck when it has none.
func (t *hostedTarget) CheckArgs(ctx context.Context, args []byte) error {
	_, err := t.m.call(ctx, func(impl any) error {
		c, ok := impl.(target.ArgsChecker)
		if !ok {
			return target.ErrCannotCheck
		}
		return c.CheckArgs(ctx, args)
	})
	return err
}

var _ target.ArgsChecker = (*hostedTarget)(nil)
