package store

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/saltpeter/saltpeter/sdk/store/internal/storepb"
)

// Kind is the name of this plugin kind, under which a plugin serves it and
// the core dispenses it.
const Kind = "store"

// Plugin is the go-plugin adapter of the store kind. A plugin serves its
// Impl with it (sdk.Serve does that); the core dispenses a Store client
// (a *GRPCClient) from it. Over gRPC only.
type Plugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is the plugin's implementation; only the serving side sets it.
	Impl Store
}

// GRPCServer registers Impl's gRPC service.
func (p *Plugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("store plugin: no implementation to serve")
	}
	storepb.RegisterStoreServer(s, &GRPCServer{Impl: p.Impl})
	return nil
}

// GRPCClient returns a Store that calls the plugin over c.
func (p *Plugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return newGRPCClient(c), nil
}

var _ plugin.GRPCPlugin = &Plugin{}
