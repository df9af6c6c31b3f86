package sdk

import (
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"

	"github.com/saltpeter/saltpeter/sdk/internal/grpcbuf"
)

// The proto codec marshals and unmarshals through gRPC's process-wide
// default pool, which no dial or server option reaches.
var installPool = sync.OnceFunc(func() { experimental.SetDefaultBufferPool(grpcbuf.Pool) })

// GRPCDialOptions are the options the core dials a plugin with, beside
// go-plugin's own; Serve gives the plugin's server their counterpart.
// Both also make grpcbuf.Pool gRPC's default pool in their process. The
// options that set a pool are in gRPC's experimental package: should
// they go, this file is what changes.
func GRPCDialOptions() []grpc.DialOption {
	installPool()
	return []grpc.DialOption{experimental.WithBufferPool(grpcbuf.Pool)}
}

func grpcServerOptions() []grpc.ServerOption {
	installPool()
	return []grpc.ServerOption{experimental.BufferPool(grpcbuf.Pool)}
}
