// Package wrapper is the program that runs one job on one machine for the
// core: it detaches from the target plugin that started it, dials the core
// over WebSocket (wire protocol v2, ../../shared/spec/wire-protocol.md),
// starts the job through wrapper/proc, streams its output loss-free across
// dropped connections, obeys kill and signal commands, enforces the job's
// timeouts itself, and reports how the job ended.
//
// The pieces, each in its own file:
//   - env.go: the dispatch environment (Config) and the job's environment.
//   - detach.go: re-executing itself in a session of its own, or, when
//     the target started it so, detaching in place.
//   - spool.go: the sequenced output buffer, in memory then on disk, kept
//     until the core acks each chunk.
//   - outbox.go: the control frames that must reach the core (start,
//     killed, error, complete) across reconnects.
//   - conn.go: dialing, the connect handshake, and one connection's read
//     and write pumps.
//   - run.go: the whole run: first connect, start, reconnects, the end.
//   - supervise.go: the job's life: timeouts, kill and signal commands,
//     leftovers, the complete frame.
//   - procs.go: one P, until the job's output is chatty.
//
// It imports only the standard library, sdk/wire, wrapper/proc, gorilla
// websocket, hclog and x/sys: never core/ or plugins/.
package wrapper
