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
	return []grpc.DialOption{
		experimental.WithBufferPool(grpcbuf.Pool),
		grpc.WithInitialWindowSize(streamWindow), grpc.WithInitialConnWindowSize(connWindow),
		grpc.WithReadBufferSize(ioBuffer), grpc.WithWriteBufferSize(ioBuffer),
	}
}

func grpcServerOptions() []grpc.ServerOption {
	installPool()
	return []grpc.ServerOption{
		experimental.BufferPool(grpcbuf.Pool),
		grpc.InitialWindowSize(streamWindow), grpc.InitialConnWindowSize(connWindow),
		grpc.ReadBufferSize(ioBuffer), grpc.WriteBufferSize(ioBuffer),
	}
}

// A plugin's connection is a local socket that carries a job's output to
// the store at hundreds of MiB a second, in batches of 64 KiB chunks.
// gRPC's defaults are made for the network: a 64 KiB window that grows
// only as its pings measure a round trip (on a socket with none, the
// sender waits on the receiver's window updates every few chunks), and
// 32 KiB buffers, a system call on each side for every two 16 KiB
// frames. A window of a few batches and buffers of four chunks took the
// core's CPU a MiB of output from 0.66 to 0.55 ms and the store's from
// 0.95 to 0.85, stored 610 -> 655 MiB/s (BenchmarkOutputThroughput/sqlite,
// ten interleaved runs each way). What they cost is memory: the buffers
// once a connection on each side, and what a stream's receiver has not
// yet read, at most connWindow a connection; small calls are unchanged.
const (
	streamWindow = 4 << 20
	connWindow   = 16 << 20
	ioBuffer     = 256 << 10
)
