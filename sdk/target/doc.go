// Package target is the target plugin kind: the Target interface a plugin
// implements (target.go), and the go-plugin adapter that carries it over
// gRPC: plugin.go (Plugin, the adapter), client.go (GRPCClient, the core's
// side), server.go (GRPCServer, the plugin's side), batch.go (the
// client's batching of Resolve and Dispatch calls into the service's
// Calls stream, falling back to one call each for a plugin without it),
// proto/ (the service; its generated code is internal) and testing.go
// (TestGRPCConn, a real in-process connection for tests).
//
// A plugin author implements Target and serves it with
// sdk.Serve(name, sdk.WithTarget(factory)); sdk/sdktest.TestTarget checks
// an implementation against the contract, directly and over the adapter.
package target
