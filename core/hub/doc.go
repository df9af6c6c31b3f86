// Package hub owns the core's side of the wrapper wire protocol (v1 and
// v2): the /ws endpoint where wrappers connect, the per-(run, machine)
// connection state, output and result storage, heartbeats and their
// timeouts, and delivery of kill and signal commands.
//
// Shape (after gorilla/websocket's chat example): one hub goroutine (Run)
// owns every (run, machine) state and the kill queue; each connection has
// one reader goroutine for its whole life, which handles frames other
// than output itself and writes its own replies, a handler goroutine that
// stores output in batches while the reader reads on, and a writer
// goroutine for the hub's commands with a bounded send channel; these two
// run only while they have work, so that an idle connection (most are: a
// wrapper sends a heartbeat every few seconds) holds one goroutine with a
// shallow stack and a 1 KiB read buffer. A connection whose send channel
// is full is dropped rather than allowed to block anyone: the wrapper
// resumes.
//
// Binding a connection to its (run, machine) costs O(1) whatever the
// run's size: the hub decides from its own state, made by Expect (the
// runner's, with the spec), by Recover after a restart (one read of the
// runs in flight) or by a rebuild from the store for a machine it does
// not know (another core's, say), whose reads of a run the connections
// share. One conditional write per bind, the running status or a resume's
// heartbeat, written only if the machine is not final, lets the store
// veto a state another core or Fail made stale. The connect ack's
// next_seq is the hub's count of the output stored, moved on before each
// ack; it starts from the store's when the hub learns of the machine, so
// output a wrapper stored through another core meanwhile is not in it:
// such a wrapper re-sends from its first unacked chunk, which the store
// takes as duplicates up to its own count (a v1 sync that would answer -1
// asks the store first). A connection not bound within
// Config.BindTimeout is closed.
//
// The stored heartbeat time is for the operator; it is written every half
// heartbeat timeout, not every heartbeat (see heartbeatWriteEvery).
//
// The hub's tick (every half resend interval) resends only to the
// machines given a command; every machine is swept for its deadlines
// (connect deadline, heartbeat timeout, job timeout) a twentieth of the
// heartbeat timeout apart, at most a second (see sweepTicks), so that an
// idle fleet costs a visit a second per machine, not four.
//
// Store writes happen off the hub goroutine, so a slow store never stalls
// other connections:
//   - writes caused by a frame (output, start, heartbeat, complete, error,
//     the running status at connect) are made by that connection's reader
//     or handler, in frame order, and the ack is sent only after the write
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
