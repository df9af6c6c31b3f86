// Package sdktest holds the conformance suites a plugin implementation
// runs in its own tests, as Vault's logical.TestStorage does for storage
// backends: TestTarget for a target.Target, TestStore for a store.Store.
// Run them on the implementation directly and over the gRPC adapter (for
// targets, target.TestGRPCConn), so the wire is checked too.
package sdktest
