package sdk_test

import (
	"context"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk"
	"github.com/saltpeter/saltpeter/sdk/target"
)

// thisHost is a target that runs everything on the machine it runs on,
// and cannot start anything: a skeleton.
type thisHost struct{ log hclog.Logger }

func (t *thisHost) Configure(context.Context, []byte) error { return nil }

func (t *thisHost) Resolve(context.Context, target.ResolveRequest) ([]string, error) {
	h, err := os.Hostname()
	return []string{h}, err
}

func (t *thisHost) Dispatch(_ context.Context, req target.DispatchRequest) (target.DispatchResult, error) {
	t.log.Info("would start the wrapper", "run_id", req.RunID, "machine", req.Machine)
	return target.DispatchResult{}, nil
}

// A whole target plugin's main.
func ExampleServe() {
	sdk.Serve("this-host", sdk.WithTarget(func(log hclog.Logger) (target.Target, error) {
		return &thisHost{log: log}, nil
	}))
}
