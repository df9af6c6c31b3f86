// Package target is the target plugin kind: the Target interface a plugin
// implements (target.go), and the go-plugin adapter that carries it over
// gRPC: plugin.go (Plugin, the adapter), client.go (GRPCClient, the core's
// side), server.go (GRPCServer, the plugin's side), proto/ (the service;
// its generated code is internal) and testing.go (TestGRPCConn, a real
// in-process connection for tests).
//
// A plugin author implements Target and serves it with
// sdk.Serve(name, sdk.WithTarget(factory)); sdk/sdktest.TestTarget checks
// an implementation against the contract, directly and over the adapter.
package target
