// Package sdk is what a Saltpeter plugin author imports: the handshake a
// plugin shares with the core, the names of the plugin kinds, and Serve,
// the one entry point that serves a plugin of any kind over go-plugin's
// gRPC transport. GRPCDialOptions are the core's side of the gRPC
// settings Serve gives a plugin's server.
//
// A whole target plugin:
//
//	func main() {
//		sdk.Serve("example", sdk.WithTarget(func(log hclog.Logger) (target.Target, error) {
//			return &myTarget{log: log}, nil
//		}))
//	}
//
// A plugin may serve several kinds at once, each option adding one:
//
//	sdk.Serve("example", sdk.WithTarget(newTarget), sdk.WithStore(newStore))
//
// Each kind lives in its own package (sdk/target and sdk/store today;
// notifier later), laid out alike: the interface, plugin.go (the go-plugin adapter),
// client.go, server.go, proto/ and testing.go. The generated protobuf code
// is internal: authors see plain Go types only. sdk/sdktest holds the
// conformance suites every implementation of a kind runs.
//
// The SDK tunes gRPC for the whole process that imports it (see
// sdk/internal/grpcbuf): its codec takes the place of gRPC's proto codec,
// the same for every message but the store's output batches, which it
// encodes and decodes without copying their bytes; GRPCDialOptions and
// Serve make its buffer pool, which does not zero buffers, gRPC's default,
// and size the connection's windows and buffers for a local socket that
// carries output (see grpcpool.go).
//
// A plugin never writes to its standard output (go-plugin's handshake
// channel); Serve gives the factory an hclog logger that writes JSON to
// standard error, which the core folds into its own log. A served plugin
// exits by itself when the core that started it goes away.
package sdk
