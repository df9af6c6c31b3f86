// Package archtest holds no code: its test keeps the boundaries between
// the repository's parts that make each easy to change alone. The SDK
// imports nothing else of ours, so that a third party's plugin builds
// against it alone; a plugin imports the SDK (and its own packages),
// as a third party's would; the wrapper imports only the wire protocol,
// so that it stays small and speaks to any core of the same protocol.
// The core may import anything.
package archtest
