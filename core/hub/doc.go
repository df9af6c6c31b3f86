// Package hub owns the core's side of the wrapper wire protocol (v1 and
// v2): the /ws endpoint where wrappers connect, the per-(run, machine)
// connection state, output and result storage, heartbeats and their
// timeouts, and delivery of kill and signal commands.
//
// Shape (after gorilla/websocket's chat example): one hub goroutine (Run)
// owns every (run, machine) state and the kill queue; each connection has
// one read pump (the ServeHTTP goroutine) and one write pump with a
// bounded send channel. A connection whose send channel is full is
// dropped rather than allowed to block anyone: the wrapper resumes.
//
// Store writes happen off the hub goroutine, so a slow store never stalls
// other connections:
//   - writes caused by a frame (output, start, heartbeat, complete, error,
//     the running status at connect) are made by that connection's read
//     pump, in frame order, and the ack is sent only after the write
//     returned;
//   - writes the hub decides by itself (lost after a heartbeat timeout,
//     not_started after the connect deadline) run in a goroutine the hub
//     starts and whose result it receives as a message;
//   - Fail writes in its caller's goroutine.
//
// Races between these writers (a complete arriving as the hub declares the
// machine lost) are settled by the store's OnlyIfNotFinal: the first
// final write wins; a complete that loses to lost is recorded beside it
// as the late result.
package hub
