package target

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/saltpeter/saltpeter/sdk/target/internal/targetpb"
)

// Kind is the name of this plugin kind, under which a plugin serves it and
// the core dispenses it.
const Kind = "target"

// Plugin is the go-plugin adapter of the target kind. A plugin serves its
// Impl with it (sdk.Serve does that); the core dispenses a Target client
// from it. Over gRPC only.
type Plugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is the plugin's implementation; only the serving side sets it.
	Impl Target
}

// GRPCServer registers Impl's gRPC service.
func (p *Plugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("target plugin: no implementation to serve")
	}
	targetpb.RegisterTargetServer(s, &GRPCServer{Impl: p.Impl})
	return nil
}

// GRPCClient returns a Target that calls the plugin over c.
func (p *Plugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return newGRPCClient(targetpb.NewTargetClient(c)), nil
}

var _ plugin.GRPCPlugin = &Plugin{}
