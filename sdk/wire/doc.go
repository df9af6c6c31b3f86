// Package wire owns the wrapper ↔ core wire protocol (v1 and v2) as data:
// the frame shapes, the binary output frame, the dispatch environment, the
// exit codes and reasons, signal names and the duration syntax the spec
// uses. It does no I/O and imports only the standard library, so the
// wrapper, the core and third-party wrappers can all share it.
//
// The contract itself is ../shared/spec/wire-protocol.md; this package is
// its Go spelling.
package wire
