package sdk

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
)

// bufferPool holds the buffers both ends of a plugin's gRPC connection
// marshal and read messages into. gRPC's default pool serves a message
// from the smallest of its tiers that holds it (256 B, 4, 16 and 32 KiB,
// 1 MiB) and zeroes the buffer's whole capacity on every Get: a message of
// a little over 32 KiB, such as a chunk of output on its way to the store,
// cost the zeroing of a megabyte, more than the store's own work on it. A
// tier at every power of two up to 4 MiB (the largest message gRPC takes
// by default) bounds that at twice the message. The options that set a
// pool are in gRPC's experimental package: should they go, this file is
// what changes.
var bufferPool = func() mem.BufferPool {
	exps := []uint8{8}
	for e := uint8(12); e <= 22; e++ {
		exps = append(exps, e)
	}
	p, err := mem.NewBinaryTieredBufferPool(exps...)
	if err != nil {
		panic(fmt.Sprintf("sdk: gRPC buffer pool: %v", err))
	}
	return p
}()

// GRPCDialOptions are the options the core dials a plugin with, beside
// go-plugin's own; Serve gives the plugin's server their counterpart.
func GRPCDialOptions() []grpc.DialOption {
	return []grpc.DialOption{experimental.WithBufferPool(bufferPool)}
}

func grpcServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{experimental.BufferPool(bufferPool)}
}
