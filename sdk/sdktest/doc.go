// Package sdktest holds the conformance suites a plugin implementation
// runs in its own tests, as Vault's logical.TestStorage does for storage
// backends. TestTarget checks a target.Target against the contract of the
// target kind; run it on the implementation directly and over the gRPC
// adapter (target.TestGRPCConn), so the wire is checked too.
package sdktest
